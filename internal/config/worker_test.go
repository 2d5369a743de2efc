package config

import (
	"strings"
	"testing"
)

func TestPreviewAndGit(t *testing.T) {
	c, err := Load(Getenv(map[string]string{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Preview != (Preview{Prefix: "{client}/{project}/{thread}/"}) || c.Git != (Git{Username: "x-access-token"}) {
		t.Errorf("defaults: %+v, %+v", c.Preview, c.Git)
	}
	c, err = Load(Getenv(map[string]string{
		"HERMES_PREVIEW_BUCKET": "amelia-previews.example", "HERMES_PREVIEW_PREFIX": "previews/{client}-{project}/{thread}/",
		"HERMES_S3_PATH_STYLE": "on", "HERMES_GIT_TOKEN": " ghs_abc123\n", "HERMES_GIT_USERNAME": "hermes-bot",
	}, nil))
	if err != nil || c.Preview != (Preview{Bucket: "amelia-previews.example", Prefix: "previews/{client}-{project}/{thread}/", PathStyle: true}) ||
		c.Git != (Git{Token: "ghs_abc123", Username: "hermes-bot"}) {
		t.Errorf("set: %+v, %+v, %v", c.Preview, c.Git, err)
	}
	for _, tc := range []struct{ name, value, want string }{
		{"HERMES_PREVIEW_BUCKET", "Amelia_Previews", "not an S3 bucket name"},
		{"HERMES_PREVIEW_BUCKET", "a..b", "not an S3 bucket name"},
		{"HERMES_PREVIEW_PREFIX", "{client}/{project}/{thread}", "must end with /"},
		{"HERMES_PREVIEW_PREFIX", "{client}/{project}/", "must contain {thread}"},
		{"HERMES_PREVIEW_PREFIX", "{client}/{user}/{thread}/", "placeholder other than"},
		{"HERMES_S3_PATH_STYLE", "maybe", "not on or off"},
		{"HERMES_GIT_TOKEN", "ghs_secret\rX-Evil: 1", "control characters"},
		{"HERMES_GIT_USERNAME", "user:name", "colon"},
	} {
		_, err := Load(Getenv(map[string]string{tc.name: tc.value}, nil))
		if err == nil || !strings.Contains(err.Error(), tc.name+":") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: %v, want an error saying %q", tc.name, tc.value, err, tc.want)
		}
		if tc.name == "HERMES_GIT_TOKEN" && err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("the token is echoed: %v", err)
		}
	}
}
