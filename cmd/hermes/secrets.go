package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/webordinary/hermes/internal/awsx"
	"github.com/webordinary/hermes/internal/config"
	"github.com/webordinary/hermes/internal/secrets"
)

// loadConfig reads the configuration through getenv, where any variable
// may be a Secrets Manager reference (secretsmanager:NAME, a secret ARN,
// either with #KEY for a field of a JSON secret; internal/secrets). The
// references are resolved as the configuration is read, before it is
// validated; a reference that cannot be resolved stops the start with an
// error naming the variable and the secret, never a value. It returns the
// resolving getenv for whatever reads the environment later (the worker
// variables of the local runner).
//
// Secrets Manager is called only when a reference is present, in
// AWS_REGION, through the default credential chain; AWS_ENDPOINT_URL_SECRETS_MANAGER
// or AWS_ENDPOINT_URL (read through getenv too) override its endpoint.
func loadConfig(ctx context.Context, getenv func(string) string) (config.Config, func(string) string, error) {
	env := secretsEnv(ctx, getenv)
	cfg, err := config.Load(env.Getenv)
	if serr := env.Err(); serr != nil {
		return cfg, env.Getenv, fmt.Errorf("secrets:\n%w", serr)
	}
	return cfg, env.Getenv, err
}

// secretsEnv wraps getenv so that its values may be secret references,
// resolved with a Secrets Manager client made on the first reference.
func secretsEnv(ctx context.Context, getenv func(string) string) *secrets.Env {
	return secrets.NewEnv(ctx, getenv, func() (*secrets.Resolver, error) {
		endpoint := getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER")
		if endpoint == "" {
			endpoint = getenv("AWS_ENDPOINT_URL")
		}
		ac, err := awsx.Load(ctx, awsx.Options{Region: getenv("AWS_REGION"), Endpoint: endpoint})
		if err != nil {
			return nil, err
		}
		return secrets.NewResolver(ac), nil
	})
}

// resolveProcessSecrets replaces the secret references among the
// process's own environment variables by their values. The worker runs it
// at start: its agents take some variables from the process environment
// rather than the configuration (the claude agent's ANTHROPIC_API_KEY,
// CLAUDE_CODE_OAUTH_TOKEN…), and the ECS runner passes such secrets to
// its tasks as references (never as values in RunTask's overrides). An
// unresolvable reference is an error naming the variable, never a value.
func resolveProcessSecrets(ctx context.Context) error {
	env := secretsEnv(ctx, os.Getenv)
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if !secrets.IsRef(v) {
			continue
		}
		if r := env.Getenv(k); r != "" {
			if err := os.Setenv(k, r); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
	}
	if err := env.Err(); err != nil {
		return fmt.Errorf("secrets:\n%w", err)
	}
	return nil
}
