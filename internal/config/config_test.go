package config_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes/internal/config"
)

func load(t *testing.T, m map[string]string) (config.Config, error) {
	t.Helper()
	return config.Load(config.Getenv(m, nil))
}

func TestDefaults(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"port", c.Port, 3000},
		{"data dir", c.DataDir, "./data"},
		{"public url", c.PublicURL, "http://localhost:3000"},
		{"ttl", c.SessionTTL, 30 * time.Minute},
		{"approval ttl", c.ApprovalTTL, 24 * time.Hour},
		{"idle", c.IdleTimeout, 20 * time.Minute},
		{"queue clean-up", c.QueueCleanupAfter, 7 * 24 * time.Hour},
		{"smtp", c.SMTPAddr, "127.0.0.1:2525"},
		{"store", c.Store, "sqlite"},
		{"queue", c.Queue, "sqlite"},
		{"runner", c.Runner, "local"},
		{"mailer", c.Mailer, "outbox"},
		{"from", c.FromEmail, "hermes@localhost"},
		{"table", c.DynamoDBTable, "webordinary-edit-sessions"},
		{"cluster", c.ECSClusterName, "webordinary-edit-cluster"},
		{"service", c.ECSServiceName, "webordinary-edit-service"},
		{"twilio", c.Twilio.APIURL, "https://api.twilio.com"},
		{"slack", c.Slack.APIURL, "https://slack.com/api"},
		{"env", c.Env, "development"},
		{"keys", len(c.APIKeys), 0},
		{"jwt", c.JWT.Enabled(), false},
		{"breaker", c.Breaker, config.Breaker{Failures: 5, Cooldown: 30 * time.Second}},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestValues(t *testing.T) {
	c, err := load(t, map[string]string{
		"PORT": "8080", "BASE_PATH": "/hermes", "NODE_ENV": "production", "SESSION_TTL": "90s", "HERMES_APPROVAL_TTL": "2h",
		"HERMES_API_KEYS":  "0123456789abcdef=admin, fedcba9876543210=client:amelia",
		"HERMES_SMTP_ADDR": "off", "SMTP_URL": "smtps://u:p@mail.example.com:465", "HERMES_MAILER": "smtp",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 8080 || c.BasePath != "/hermes" || c.Env != "production" || c.SessionTTL != 90*time.Second ||
		c.ApprovalTTL != 2*time.Hour || c.SMTPAddr != "" || c.SMTPURL.Host != "mail.example.com:465" || c.PublicURL != "http://localhost:8080/hermes" {
		t.Fatalf("unexpected config %+v", c)
	}
	if len(c.APIKeys) != 2 || !c.APIKeys[0].Scope.Admin || c.APIKeys[1].Scope.ClientID != "amelia" {
		t.Fatalf("keys %+v", c.APIKeys)
	}
	for v, want := range map[string]time.Duration{"0": 0, "0s": 0, "36h": 36 * time.Hour} {
		c, err := load(t, map[string]string{"HERMES_QUEUE_CLEANUP_AFTER": v})
		if err != nil || c.QueueCleanupAfter != want {
			t.Errorf("HERMES_QUEUE_CLEANUP_AFTER=%s: %v %v, want %v", v, c.QueueCleanupAfter, err, want)
		}
	}
}

func TestErrorsNameTheVariable(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"port", map[string]string{"PORT": "x"}, []string{"PORT"}},
		{"several at once", map[string]string{"PORT": "-1", "SESSION_TTL": "0s", "HERMES_LOG_LEVEL": "loud"}, []string{"PORT", "SESSION_TTL", "HERMES_LOG_LEVEL"}},
		{"env", map[string]string{"HERMES_ENV": "staging"}, []string{"HERMES_ENV"}},
		{"approval ttl", map[string]string{"HERMES_APPROVAL_TTL": "30s"}, []string{"HERMES_APPROVAL_TTL"}},
		{"queue clean-up", map[string]string{"HERMES_QUEUE_CLEANUP_AFTER": "7d"}, []string{"HERMES_QUEUE_CLEANUP_AFTER"}},
		{"queue clean-up negative", map[string]string{"HERMES_QUEUE_CLEANUP_AFTER": "-1h"}, []string{"HERMES_QUEUE_CLEANUP_AFTER"}},
		{"node env", map[string]string{"NODE_ENV": "staging"}, []string{"NODE_ENV"}},
		{"base path", map[string]string{"BASE_PATH": "/a/../b"}, []string{"BASE_PATH"}},
		{"base path slash", map[string]string{"BASE_PATH": "/hermes/"}, []string{"BASE_PATH"}},
		{"public url", map[string]string{"HERMES_PUBLIC_URL": "ftp://x"}, []string{"HERMES_PUBLIC_URL"}},
		{"host", map[string]string{"HERMES_HOST": "example.com"}, []string{"HERMES_HOST"}},
		{"smtp addr", map[string]string{"HERMES_SMTP_ADDR": "2525"}, []string{"HERMES_SMTP_ADDR"}},
		{"from", map[string]string{"HERMES_FROM_EMAIL": "Hermes <h@x.com>"}, []string{"HERMES_FROM_EMAIL"}},
		{"mailer without url", map[string]string{"HERMES_MAILER": "smtp"}, []string{"HERMES_MAILER"}},
		{"backend", map[string]string{"HERMES_QUEUE": "kafka"}, []string{"HERMES_QUEUE"}},
		{"key format", map[string]string{"HERMES_API_KEYS": "justakey"}, []string{"HERMES_API_KEYS", "entry 1"}},
		{"key duplicate", map[string]string{"HERMES_API_KEYS": "0123456789abcdef=admin,0123456789abcdef=client:a"}, []string{"entry 2"}},
		{"key scope", map[string]string{"HERMES_API_KEYS": "0123456789abcdef=client:Not Valid"}, []string{"HERMES_API_KEYS"}},
		{"jwt short secret", map[string]string{"HERMES_JWT_SECRET": "short"}, []string{"HERMES_JWT_SECRET"}},
		{"jwt no audience", map[string]string{"HERMES_JWT_SECRET": strings.Repeat("k", 32), "HERMES_JWT_ISSUER": "i"}, []string{"HERMES_JWT_AUDIENCE"}},
		{"jwt issuer alone", map[string]string{"HERMES_JWT_ISSUER": "i", "HERMES_JWT_AUDIENCE": "a"}, []string{"HERMES_JWT_SECRET"}},
		{"jwt bad key", map[string]string{"HERMES_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"}, []string{"HERMES_JWT_PUBLIC_KEY"}},
		{"jwt key file", map[string]string{"HERMES_JWT_PUBLIC_KEY": "/nonexistent.pem"}, []string{"HERMES_JWT_PUBLIC_KEY"}},
		{"twilio url", map[string]string{"TWILIO_API_URL": "not a url"}, []string{"TWILIO_API_URL"}},
		{"ecs required", map[string]string{"HERMES_RUNNER": "ecs"}, []string{"ECS_TASK_DEFINITION", "ECS_SUBNETS"}},
		{"ecs subnet", map[string]string{"ECS_SUBNETS": "subnet-0123456789abcdef0,vpc-1"}, []string{"ECS_SUBNETS", "vpc-1"}},
		{"ecs security group", map[string]string{"ECS_SECURITY_GROUPS": "default"}, []string{"ECS_SECURITY_GROUPS"}},
		{"ecs capacity", map[string]string{"ECS_CAPACITY_PROVIDER": "FARGATE_SPOT:x"}, []string{"ECS_CAPACITY_PROVIDER"}},
		{"ecs public ip", map[string]string{"ECS_ASSIGN_PUBLIC_IP": "maybe"}, []string{"ECS_ASSIGN_PUBLIC_IP"}},
		{"breaker failures", map[string]string{"HERMES_BREAKER_FAILURES": "0"}, []string{"HERMES_BREAKER_FAILURES"}},
		{"breaker cooldown", map[string]string{"HERMES_BREAKER_COOLDOWN": "5ms"}, []string{"HERMES_BREAKER_COOLDOWN"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.env)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}

// Secrets never appear in configuration errors.
func TestErrorsHideSecrets(t *testing.T) {
	_, err := load(t, map[string]string{
		"SMTP_URL":        "ftp://user:hunter2-secret@host",
		"HERMES_API_KEYS": "hunter2-secret-key=root",
	})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
}

func TestJWTPublicKeyFromFile(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	p := filepath.Join(t.TempDir(), "jwt.pem")
	os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	c, err := load(t, map[string]string{"HERMES_JWT_PUBLIC_KEY": p, "HERMES_JWT_ISSUER": "i", "HERMES_JWT_AUDIENCE": "a"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.JWT.Enabled() || c.JWT.PublicKey.N.Cmp(k.N) != 0 {
		t.Fatal("public key not loaded")
	}
}

func TestECS(t *testing.T) {
	c, err := load(t, map[string]string{"HERMES_RUNNER": "ecs", "ECS_TASK_DEFINITION": "hermes-worker:7",
		"ECS_SUBNETS": "subnet-0123456789abcdef0, subnet-11111111", "ECS_SECURITY_GROUPS": "sg-0123456789abcdef0",
		"ECS_ASSIGN_PUBLIC_IP": "true", "ECS_CAPACITY_PROVIDER": "FARGATE_SPOT:3,FARGATE:1:1"})
	if err != nil {
		t.Fatal(err)
	}
	e := c.ECS
	if e.TaskDefinition != "hermes-worker:7" || e.ContainerName != "worker" || len(e.Subnets) != 2 || e.Subnets[1] != "subnet-11111111" ||
		len(e.SecurityGroups) != 1 || !e.AssignPublicIP || len(e.CapacityProviders) != 2 ||
		e.CapacityProviders[0] != (config.CapacityProvider{Name: "FARGATE_SPOT", Weight: 3}) ||
		e.CapacityProviders[1] != (config.CapacityProvider{Name: "FARGATE", Weight: 1, Base: 1}) {
		t.Fatalf("%+v", e)
	}
	c, err = load(t, nil)
	if err != nil || c.ECS.TaskDefinition != "" || c.ECS.CapacityProviders != nil || c.ECS.AssignPublicIP {
		t.Fatalf("defaults %+v %v", c.ECS, err)
	}
}
