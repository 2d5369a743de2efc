package main

import (
	"context"
	"fmt"
	"io"
)

// setup creates whatever the configured backends need — the DynamoDB table
// with its indexes and TTL setting, the SQLite database's schema — and is
// idempotent: running it again changes nothing. `serve` on the embedded
// defaults needs no setup (it migrates SQLite itself).
func setup(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 {
		return usageError{"setup takes no arguments; it is configured by the environment"}
	}
	cfg, _, err := loadConfig(ctx, getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if err := checkBackends(cfg); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if err := setupBackends(ctx, cfg, stdout); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	fmt.Fprintln(stdout, "setup done")
	return nil
}
