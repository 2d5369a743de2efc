package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/logctx"
	"github.com/webordinary/hermes/internal/worker"
)

// containerIDVar names the container a worker works for.
const containerIDVar = "HERMES_CONTAINER_ID"

// claudeBinVar overrides the Claude Code CLI of claude agents.
const claudeBinVar = "HERMES_CLAUDE_BIN"

// runWorker is `hermes worker`: the program of one edit container
// (internal/worker). It is configured by the environment like serve, plus
// HERMES_CONTAINER_ID and, for claude agents, HERMES_CLAUDE_BIN (the CLI;
// "claude" on PATH by default). It keeps its clone in
// $HERMES_DATA_DIR/workspaces/{containerId}, publishes previews into
// $HERMES_DATA_DIR/previews (served by serve at /preview/…, linked under
// HERMES_PUBLIC_URL), follows the project's busy policy, agent, build and
// push settings, and works through the container's input queue until it
// has been idle for HERMES_IDLE_TIMEOUT, a control job deactivates it, or
// ctx ends (SIGTERM). The local runner of serve starts it as a child
// process; on AWS it is the edit container's command.
func runWorker(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 {
		return usageError{"worker takes no arguments; it is configured by the environment"}
	}
	id := getenv(containerIDVar)
	if id == "" {
		return usageError{containerIDVar + " is required: the id of the container this worker runs (clientId_projectId_userId)"}
	}
	if !validContainerID(id) {
		return usageError{fmt.Sprintf("%s=%q is not a container id (1–%d characters of a-z, 0-9, _ and -)", containerIDVar, id, hermes.MaxContainerIDLen)}
	}
	cfg, getenv, err := loadConfig(ctx, getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if err := checkBackends(cfg); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := logctx.New(stdout, cfg.LogFormat, cfg.LogLevel)
	store, queues, err := openBackends(ctx, cfg, breakerOptions(cfg, nil))
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()
	c, err := store.GetContainer(ctx, id)
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	p, err := store.GetProject(ctx, c.ClientID, c.ProjectID)
	if err != nil {
		return fmt.Errorf("project %s/%s of container %s: %w", c.ClientID, c.ProjectID, id, err)
	}
	data, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	ws := &worker.Workspace{
		Dir: filepath.Join(data, "workspaces", id), Project: p, Log: log,
		ClaudeBin:   getenv(claudeBinVar),
		PreviewRoot: filepath.Join(data, "previews"),
		PublicURL:   cfg.PublicURL,
	}
	loop := &worker.Loop{
		Store: store, Queues: queues, ContainerID: id,
		Workspace:   ws,
		Clock:       hermes.Clock(nil),
		Log:         log,
		IdleTimeout: cfg.IdleTimeout,
		Visibility:  cfg.JobVisibility,
		QueuePrefix: cfg.QueuePrefix,
	}
	log.Info("worker configuration", "container_id", id, "project", p.ClientID+"/"+p.ID, "agent", p.Agent.Kind,
		"busyPolicy", p.BusyPolicy, "build", p.Build != nil, "push", p.Push, "previews", ws.PreviewRoot)
	if err := loop.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// validContainerID reports whether s has the form of hermes.ContainerID:
// 1–MaxContainerIDLen characters of a-z, 0-9, "_" and "-".
func validContainerID(s string) bool {
	if s == "" || len(s) > hermes.MaxContainerIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
