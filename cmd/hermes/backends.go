package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/config"
	"github.com/webordinary/hermes/internal/sqlite"
)

// This file is the only place that switches on backend names.

// openStore opens the configured store.
func openStore(ctx context.Context, cfg config.Config) (hermes.Store, error) {
	switch cfg.Store {
	case "sqlite":
		return sqlite.Open(ctx, filepath.Join(cfg.DataDir, "hermes.db"))
	}
	return nil, fmt.Errorf("HERMES_STORE=%s: this build has no %s adapter yet; use sqlite", cfg.Store, cfg.Store)
}

// checkBackends refuses backends this build cannot run yet, so that a
// configuration asking for them fails at start rather than later.
func checkBackends(cfg config.Config) error {
	for _, b := range []struct{ name, value, embedded string }{
		{"HERMES_QUEUE", cfg.Queue, "sqlite"},
		{"HERMES_RUNNER", cfg.Runner, "local"},
		{"HERMES_MAILER", cfg.Mailer, "outbox"},
	} {
		if b.value != b.embedded {
			return fmt.Errorf("%s=%s: this build has no %s adapter yet; use %s", b.name, b.value, b.value, b.embedded)
		}
	}
	return nil
}
