package secrets_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
	"github.com/webordinary/hermes/internal/secrets"
)

const arnBase = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"

// fakeSM speaks Secrets Manager's wire protocol (AWS JSON 1.1): POST /,
// X-Amz-Target secretsmanager.GetSecretValue, a JSON body {SecretId},
// the answer {ARN, Name, SecretString, VersionId, VersionStages,
// CreatedDate}; errors are 400 {"__type": …, "message": …}. Secrets are
// found by name or by ARN (name plus a random suffix).
type fakeSM struct {
	mu      sync.Mutex
	secrets map[string]string // by name; a value "!binary" is a binary secret
	calls   map[string]int    // by SecretId
	down    bool              // answer 500s
}

func newFake(t *testing.T, secrets map[string]string) (*fakeSM, *httptest.Server) {
	f := &fakeSM{secrets: secrets, calls: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/" {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		if got := r.Header.Get("X-Amz-Target"); got != "secretsmanager.GetSecretValue" {
			t.Errorf("X-Amz-Target %q", got)
		}
		if got := r.Header.Get("Content-Type"); got != "application/x-amz-json-1.1" {
			t.Errorf("Content-Type %q", got)
		}
		if !strings.Contains(r.Header.Get("Authorization"), "/secretsmanager/aws4_request") {
			t.Errorf("not signed for secretsmanager: %q", r.Header.Get("Authorization"))
		}
		var in struct{ SecretId string }
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &in); err != nil {
			t.Errorf("body %s: %v", b, err)
		}
		f.mu.Lock()
		f.calls[in.SecretId]++
		down := f.down
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		fail := func(status int, typ, msg string) {
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
		}
		if down {
			fail(500, "InternalServiceError", "try again")
			return
		}
		name := in.SecretId
		if strings.HasPrefix(name, arnBase) {
			name = strings.TrimPrefix(name, arnBase)
			name = name[:strings.LastIndex(name, "-")]
		}
		v, ok := f.secrets[name]
		if !ok {
			fail(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
			return
		}
		out := map[string]any{
			"ARN": arnBase + name + "-AbCdEf", "Name": name, "VersionId": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111",
			"VersionStages": []string{"AWSCURRENT"}, "CreatedDate": 1.523477145713e9,
		}
		if v == "!binary" {
			out["SecretBinary"] = "AAEC"
		} else {
			out["SecretString"] = v
		}
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func TestResolve(t *testing.T) {
	f, srv := newFake(t, map[string]string{
		"prod/hermes/slack": "xoxb-secret-token",
		"prod/hermes":       `{"SLACK_BOT_TOKEN":"xoxb-from-json","TWILIO_AUTH_TOKEN":"tw-secret","PORT":8080,"DEBUG":true,"nested":{"a":1}}`,
		"prod/binary":       "!binary",
	})
	r := secrets.NewResolver(awsx.Emulator(srv.URL))
	ctx := context.Background()
	for _, c := range []struct {
		name, in, want string
		kind           hermes.Kind // when an error is wanted
	}{
		{"a plain value", "plain-value", "plain-value", 0},
		{"empty", "", "", 0},
		{"by name", "secretsmanager:prod/hermes/slack", "xoxb-secret-token", 0},
		{"by ARN", arnBase + "prod/hermes/slack-AbCdEf", "xoxb-secret-token", 0},
		{"by ARN after the prefix", "secretsmanager:" + arnBase + "prod/hermes/slack-AbCdEf", "xoxb-secret-token", 0},
		{"a JSON key", "secretsmanager:prod/hermes#SLACK_BOT_TOKEN", "xoxb-from-json", 0},
		{"a JSON key of an ARN", arnBase + "prod/hermes-AbCdEf#TWILIO_AUTH_TOKEN", "tw-secret", 0},
		{"a number", "secretsmanager:prod/hermes#PORT", "8080", 0},
		{"a boolean", "secretsmanager:prod/hermes#DEBUG", "true", 0},
		{"an object field", "secretsmanager:prod/hermes#nested", "", hermes.Invalid},
		{"a missing key", "secretsmanager:prod/hermes#NOPE", "", hermes.Invalid},
		{"a key of a non-JSON secret", "secretsmanager:prod/hermes/slack#x", "", hermes.Invalid},
		{"an unknown secret", "secretsmanager:prod/none", "", hermes.NotFound},
		{"a binary secret", "secretsmanager:prod/binary", "", hermes.Invalid},
		{"no name", "secretsmanager:", "", hermes.Invalid},
		{"an empty key", "secretsmanager:prod/hermes#", "", hermes.Invalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := r.Resolve(ctx, c.in)
			if c.kind != 0 || err != nil {
				if err == nil || hermes.ErrorKind(err) != c.kind {
					t.Fatalf("%q: %v (kind %v), want kind %v", c.in, err, hermes.ErrorKind(err), c.kind)
				}
				for _, secret := range []string{"xoxb", "tw-secret", "8080"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("the error shows the secret: %v", err)
					}
				}
				return
			}
			if got != c.want {
				t.Fatalf("%q → %q, want %q", c.in, got, c.want)
			}
		})
	}
	if n := f.calls["prod/hermes"]; n != 1 {
		t.Errorf("prod/hermes fetched %d times, want once (cached)", n)
	}
}

func TestResolveUnavailable(t *testing.T) {
	f, srv := newFake(t, map[string]string{"x": "y"})
	f.down = true
	_, err := secrets.NewResolver(awsx.Emulator(srv.URL)).Resolve(context.Background(), "secretsmanager:x")
	if !hermes.IsKind(err, hermes.Unavailable) {
		t.Fatal(err)
	}
}

func TestEnv(t *testing.T) {
	_, srv := newFake(t, map[string]string{
		"prod/hermes": `{"SLACK_BOT_TOKEN":"xoxb-from-json","TWILIO_AUTH_TOKEN":"tw-secret"}`,
		"prod/keys":   "hk_0123456789abcdef=admin",
	})
	vars := map[string]string{
		"PORT":              "3000",
		"SLACK_BOT_TOKEN":   "secretsmanager:prod/hermes#SLACK_BOT_TOKEN",
		"TWILIO_AUTH_TOKEN": arnBase + "prod/hermes-AbCdEf#TWILIO_AUTH_TOKEN",
		"HERMES_API_KEYS":   "secretsmanager:prod/keys",
		"SMTP_URL":          "secretsmanager:prod/missing",
	}
	opened := 0
	env := secrets.NewEnv(context.Background(), func(k string) string { return vars[k] }, func() (*secrets.Resolver, error) {
		opened++
		return secrets.NewResolver(awsx.Emulator(srv.URL)), nil
	})
	for k, want := range map[string]string{
		"PORT": "3000", "SLACK_BOT_TOKEN": "xoxb-from-json", "TWILIO_AUTH_TOKEN": "tw-secret",
		"HERMES_API_KEYS": "hk_0123456789abcdef=admin", "SMTP_URL": "", "UNSET": "",
	} {
		if got := env.Getenv(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	env.Getenv("SMTP_URL")
	err := env.Err()
	if err == nil || !strings.HasPrefix(err.Error(), "SMTP_URL: ") || !hermes.IsKind(err, hermes.NotFound) || strings.Count(err.Error(), "\n") != 0 {
		t.Fatalf("Err() = %v", err)
	}
	if got := strings.Join(env.Resolved(), ","); got != "HERMES_API_KEYS,SLACK_BOT_TOKEN,TWILIO_AUTH_TOKEN" {
		t.Errorf("Resolved() = %s", got)
	}
	if opened != 1 {
		t.Errorf("resolver opened %d times", opened)
	}

	// Without references, AWS is never touched.
	plain := secrets.NewEnv(context.Background(), func(string) string { return "x" }, func() (*secrets.Resolver, error) {
		t.Fatal("opened without a reference")
		return nil, errors.New("no")
	})
	if plain.Getenv("A") != "x" || plain.Err() != nil {
		t.Fatal("plain")
	}
}
