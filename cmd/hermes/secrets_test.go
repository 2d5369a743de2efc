package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/webordinary/hermes/internal/config"
)

// TestLoadConfigSecrets: variables given as Secrets Manager references are
// resolved before the configuration is validated; an unresolvable one
// stops the start, naming the variable and never a value.
func TestLoadConfigSecrets(t *testing.T) {
	store := map[string]string{
		"prod/hermes": `{"SLACK_SIGNING_SECRET":"slack-signing-secret-value","SLACK_BOT_TOKEN":"xoxb-bot-token"}`,
		"prod/keys":   "hk_admin_key_0123456789=admin",
	}
	srv := fakeSecretsManager(t, store)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_SESSION_TOKEN", "")
	vars := map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_SECRETS_MANAGER": srv.URL,
		"HERMES_API_KEYS":      "secretsmanager:prod/keys",
		"SLACK_SIGNING_SECRET": "secretsmanager:prod/hermes#SLACK_SIGNING_SECRET",
		"SLACK_BOT_TOKEN":      "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/hermes#SLACK_BOT_TOKEN",
	}
	getenv := config.Getenv(vars, nil)
	cfg, env, err := loadConfig(context.Background(), getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Slack.SigningSecret != "slack-signing-secret-value" || cfg.Slack.BotToken != "xoxb-bot-token" {
		t.Errorf("slack %+v", cfg.Slack)
	}
	if len(cfg.APIKeys) != 1 || cfg.APIKeys[0].Hash != sha256.Sum256([]byte("hk_admin_key_0123456789")) || !cfg.APIKeys[0].Scope.Admin {
		t.Errorf("API keys %+v", cfg.APIKeys)
	}
	if env("SLACK_BOT_TOKEN") != "xoxb-bot-token" {
		t.Error("the returned getenv does not resolve")
	}

	vars["SMTP_URL"] = "secretsmanager:prod/smtp"
	vars["HERMES_MAILER"] = "smtp"
	_, _, err = loadConfig(context.Background(), getenv)
	if err == nil || !strings.Contains(err.Error(), "SMTP_URL: ") || !strings.Contains(err.Error(), "prod/smtp does not exist") {
		t.Fatalf("a missing secret: %v", err)
	}
	for _, v := range []string{"slack-signing-secret-value", "xoxb-bot-token", "hk_admin_key"} {
		if strings.Contains(err.Error(), v) {
			t.Errorf("the error shows a secret: %v", err)
		}
	}
}

// fakeSecretsManager answers GetSecretValue from store (secret name →
// SecretString) as Secrets Manager does (AWS JSON 1.1).
func fakeSecretsManager(t *testing.T, store map[string]string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ SecretId string }
		if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" || json.NewDecoder(r.Body).Decode(&in) != nil {
			w.WriteHeader(400)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		v, ok := store[strings.TrimPrefix(in.SecretId, "arn:aws:secretsmanager:us-east-1:123456789012:secret:")]
		if !ok {
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + in.SecretId + "-AbCdEf",
			"Name": in.SecretId, "SecretString": v, "VersionId": "v1"})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestResolveProcessSecrets: the worker resolves the secret references of
// its process environment (the agents' credentials, which the ECS runner
// passes as references) in place; plain values stay; an unresolvable
// reference names its variable and never a value.
func TestResolveProcessSecrets(t *testing.T) {
	srv := fakeSecretsManager(t, map[string]string{"prod/claude": `{"key":"sk-ant-secret-value"}`})
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", srv.URL)
	t.Setenv("ANTHROPIC_API_KEY", "secretsmanager:prod/claude#key")
	t.Setenv("CLAUDE_CODE_OAUTH_TOKEN", "plain-token")
	if err := resolveProcessSecrets(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := os.Getenv("ANTHROPIC_API_KEY"); got != "sk-ant-secret-value" {
		t.Errorf("ANTHROPIC_API_KEY = %q", got)
	}
	if got := os.Getenv("CLAUDE_CODE_OAUTH_TOKEN"); got != "plain-token" {
		t.Errorf("a plain value changed: %q", got)
	}
	t.Setenv("HERMES_GIT_TOKEN", "secretsmanager:prod/missing")
	err := resolveProcessSecrets(context.Background())
	if err == nil || !strings.Contains(err.Error(), "HERMES_GIT_TOKEN") || strings.Contains(err.Error(), "sk-ant") {
		t.Fatalf("a missing secret: %v", err)
	}
}
