package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
	"github.com/webordinary/hermes/internal/config"
	"github.com/webordinary/hermes/internal/logctx"
	"github.com/webordinary/hermes/internal/s3site"
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
// HERMES_PUBLIC_URL) or, with HERMES_PREVIEW_BUCKET, to S3 (linked by the
// project's preview template; openPublisher), authenticates git to http(s)
// repositories with HERMES_GIT_TOKEN as HERMES_GIT_USERNAME, follows the
// project's busy policy, agent, build and push settings, and works through the container's input queue until it
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
	if err := resolveProcessSecrets(ctx); err != nil {
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
	pub, previews, err := openPublisher(ctx, cfg, getenv, log)
	if err != nil {
		return err
	}
	ws := &worker.Workspace{
		Dir: filepath.Join(data, "workspaces", id), Project: p, Log: log,
		ClaudeBin:   getenv(claudeBinVar),
		Publisher:   pub,
		PreviewRoot: filepath.Join(data, "previews"),
		PublicURL:   cfg.PublicURL,
		GitToken:    cfg.Git.Token, GitUsername: cfg.Git.Username,
	}
	if pub == nil {
		previews = ws.PreviewRoot
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
		"busyPolicy", p.BusyPolicy, "build", p.Build != nil, "push", p.Push, "previews", previews, "gitToken", cfg.Git.Token != "")
	if err := loop.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// openPublisher returns the publisher of previews and where it puts
// them: with HERMES_PREVIEW_BUCKET, that bucket under the key prefix of
// HERMES_PREVIEW_PREFIX (s3site: the default credential chain, AWS_REGION,
// AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, path-style addressing with
// HERMES_S3_PATH_STYLE, the s3 circuit breaker); without it nil, and the
// worker publishes into the data directory that serve serves.
func openPublisher(ctx context.Context, cfg config.Config, getenv func(string) string, log *slog.Logger) (worker.Publisher, string, error) {
	pc := cfg.Preview
	if pc.Bucket == "" {
		return nil, "", nil
	}
	ac, err := awsConfig(ctx, cfg)
	if err != nil {
		return nil, "", fmt.Errorf("previews: %w", err)
	}
	endpoint := getenv("AWS_ENDPOINT_URL_S3")
	if endpoint == "" {
		endpoint = getenv("AWS_ENDPOINT_URL")
	}
	breaker := awsx.NewBreaker("s3", breakerOptions(cfg, &breakerStates{log: log}))
	pub := s3site.New(ac, breaker, pc.Bucket, pc.Prefix, func(o *s3.Options) {
		o.UsePathStyle = pc.PathStyle
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	pub.Log = log
	return pub, "s3://" + pc.Bucket + "/" + pc.Prefix, nil
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
