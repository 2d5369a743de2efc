package main

import (
	"io"
	"strings"
	"testing"
)

func TestWorkerNeedsContainerID(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, id, want string
	}{
		{"missing", "", "HERMES_CONTAINER_ID is required"},
		{"invalid", "Amelia/site", `HERMES_CONTAINER_ID="Amelia/site" is not a container id`},
		{"too long", strings.Repeat("a", 57), "is not a container id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{"HERMES_DATA_DIR": dir}
			if tc.id != "" {
				vars["HERMES_CONTAINER_ID"] = tc.id
			}
			err := run(t.Context(), []string{"worker"}, env(vars), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) || exitCode(err) != 2 {
				t.Fatalf("err %v (exit %d), want one containing %q with exit 2", err, exitCode(err), tc.want)
			}
		})
	}
}

func TestWorkerUnknownContainer(t *testing.T) {
	vars := map[string]string{"HERMES_DATA_DIR": t.TempDir(), "HERMES_CONTAINER_ID": "amelia_site_scott"}
	err := run(t.Context(), []string{"worker"}, env(vars), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "container amelia_site_scott") {
		t.Fatalf("err %v, want one naming the unknown container", err)
	}
}
