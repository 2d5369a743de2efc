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

// openBackends opens the configured store and queues. The embedded
// defaults share one SQLite database.
func openBackends(ctx context.Context, cfg config.Config) (hermes.Store, hermes.Queues, error) {
	if cfg.Store != "sqlite" {
		return nil, nil, fmt.Errorf("HERMES_STORE=%s: this build has no %s adapter yet; use sqlite", cfg.Store, cfg.Store)
	}
	db, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "hermes.db"))
	if err != nil {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	return db, db, nil // HERMES_QUEUE=sqlite: checkBackends allows nothing else yet
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
