package main

import (
	"context"
	"fmt"

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
	env := secrets.NewEnv(ctx, getenv, func() (*secrets.Resolver, error) {
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
	cfg, err := config.Load(env.Getenv)
	if serr := env.Err(); serr != nil {
		return cfg, env.Getenv, fmt.Errorf("secrets:\n%w", serr)
	}
	return cfg, env.Getenv, err
}
