package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/config"
	"github.com/webordinary/hermes/internal/slack"
	"github.com/webordinary/hermes/internal/smtpout"
	"github.com/webordinary/hermes/internal/sqlite"
	"github.com/webordinary/hermes/internal/twilio"
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

// openSenders returns the reply transport of each configured channel.
// Channels without one keep their replies in the outbox (listed by
// GET /api/outbox, and logged).
func openSenders(cfg config.Config) (map[string]hermes.Sender, error) {
	senders := map[string]hermes.Sender{}
	switch cfg.Mailer {
	case "smtp":
		s, err := smtpout.New(cfg.SMTPURL)
		if err != nil {
			return nil, err
		}
		senders[hermes.ChannelEmail] = s
	}
	if cfg.Twilio.AccountSID != "" && cfg.Twilio.AuthToken != "" {
		senders[hermes.ChannelSMS] = &twilio.Client{BaseURL: cfg.Twilio.APIURL, AccountSID: cfg.Twilio.AccountSID, AuthToken: cfg.Twilio.AuthToken}
	}
	if cfg.Slack.BotToken != "" {
		senders[hermes.ChannelChat] = &slack.Client{BaseURL: cfg.Slack.APIURL, BotToken: cfg.Slack.BotToken}
	}
	return senders, nil
}

// checkBackends refuses backends this build cannot run yet, so that a
// configuration asking for them fails at start rather than later.
func checkBackends(cfg config.Config) error {
	for _, b := range []struct{ name, value, embedded string }{
		{"HERMES_QUEUE", cfg.Queue, "sqlite"},
		{"HERMES_RUNNER", cfg.Runner, "local"},
	} {
		if b.value != b.embedded {
			return fmt.Errorf("%s=%s: this build has no %s adapter yet; use %s", b.name, b.value, b.value, b.embedded)
		}
	}
	if cfg.Mailer == "ses" {
		return fmt.Errorf("HERMES_MAILER=ses: this build has no ses adapter yet; use outbox or smtp")
	}
	return nil
}
