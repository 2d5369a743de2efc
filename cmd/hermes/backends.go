package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
	"github.com/webordinary/hermes/internal/bedrock"
	"github.com/webordinary/hermes/internal/config"
	"github.com/webordinary/hermes/internal/dynamo"
	"github.com/webordinary/hermes/internal/ecs"
	"github.com/webordinary/hermes/internal/emailin"
	"github.com/webordinary/hermes/internal/local"
	"github.com/webordinary/hermes/internal/metrics"
	"github.com/webordinary/hermes/internal/s3mail"
	"github.com/webordinary/hermes/internal/secrets"
	"github.com/webordinary/hermes/internal/sesout"
	"github.com/webordinary/hermes/internal/slack"
	"github.com/webordinary/hermes/internal/smtpout"
	"github.com/webordinary/hermes/internal/sqlite"
	"github.com/webordinary/hermes/internal/sqs"
	"github.com/webordinary/hermes/internal/twilio"
)

// This file is the only place that switches on backend names.

// openBackends opens the configured store and queues. The embedded
// defaults share one SQLite database; HERMES_STORE=dynamodb keeps the store
// in the DYNAMODB_TABLE_NAME table (made by `hermes setup`). breakers
// configures the circuit breakers of DynamoDB and SQS.
func openBackends(ctx context.Context, cfg config.Config, breakers awsx.BreakerOptions) (hermes.Store, hermes.Queues, error) {
	var store hermes.Store
	if cfg.Store == "dynamodb" {
		ac, err := awsConfig(ctx, cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("store: %w", err)
		}
		ds := dynamo.New(dynamo.NewClient(ac), cfg.DynamoDBTable, dynamo.Options{Breaker: awsx.NewBreaker("dynamodb", breakers)})
		if err := ds.Ping(ctx); err != nil {
			return nil, nil, fmt.Errorf("store: DynamoDB table %s: %w (does it exist? run hermes setup)", cfg.DynamoDBTable, err)
		}
		store = ds
	}
	if cfg.Queue == "sqs" {
		queues, err := openSQS(ctx, cfg, breakers)
		if err == nil && store == nil {
			var db *sqlite.DB
			if db, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, "hermes.db")); err == nil {
				return db, queues, nil
			}
			err = fmt.Errorf("store: %w", err)
		}
		if err != nil {
			if store != nil {
				store.Close()
			}
			return nil, nil, err
		}
		return store, queues, nil
	}
	// HERMES_QUEUE=sqlite: the queues are in the SQLite database (with the
	// store, unless it is DynamoDB).
	db, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "hermes.db"))
	if err != nil {
		if store != nil {
			store.Close()
		}
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	if store == nil {
		return db, db, nil
	}
	return store, db, nil
}

// workerVars are the variables a worker gets from Hermes's environment:
// the configuration of its store, queues and logs, where its data and
// previews live, and what its agent needs — never Hermes's API keys or
// channel secrets. The ECS runner passes the same as task overrides.
var workerVars = []string{
	"HERMES_ENV", "NODE_ENV", "HERMES_STORE", "HERMES_QUEUE", "HERMES_QUEUE_PREFIX", "HERMES_LOG_FORMAT", "HERMES_LOG_LEVEL",
	"HERMES_PUBLIC_URL", "PORT", "BASE_PATH", "HERMES_IDLE_TIMEOUT", "HERMES_JOB_VISIBILITY", "HERMES_CLAUDE_BIN",
	"AWS_REGION", "DYNAMODB_TABLE_NAME", "ANTHROPIC_API_KEY", "CLAUDE_CODE_USE_BEDROCK", "HERMES_BREAKER_FAILURES", "HERMES_BREAKER_COOLDOWN",
	"HERMES_PREVIEW_BUCKET", "HERMES_PREVIEW_PREFIX", "HERMES_S3_PATH_STYLE", "HERMES_GIT_TOKEN", "HERMES_GIT_USERNAME",
}

// secretWorkerVars are the workerVars that hold secrets. The ECS runner
// passes them to tasks as they were given — a Secrets Manager reference
// stays one, resolved by the worker with its task role — because
// RunTask's environment overrides can be read back by anyone allowed to
// describe the task.
var secretWorkerVars = []string{"ANTHROPIC_API_KEY", "HERMES_GIT_TOKEN"}

// processVars are the process's own plumbing, passed on from Hermes's
// process environment when the configuration does not set them.
var processVars = []string{"PATH", "HOME", "LANG", "TMPDIR"}

// defaultWakeEstimate is quoted in acknowledgements until wake times are
// measured: a local worker process starts in well under a second (cloning
// a large repository takes longer), an ECS task in tens of seconds.
func defaultWakeEstimate(runner string) time.Duration {
	if runner == "local" {
		return 2 * time.Second
	}
	return 30 * time.Second
}

// containerRunner is what serve needs of a container runner: the port,
// its health check, its reconcile loop and its shutdown.
type containerRunner interface {
	hermes.Runner
	Check(ctx context.Context) error
	RunReconcile(ctx context.Context, interval time.Duration)
	Close(ctx context.Context)
}

var (
	_ containerRunner = (*local.Runner)(nil)
	_ containerRunner = (*ecs.Runner)(nil)
)

// openRunner returns the container runner: child `hermes worker`
// processes (HERMES_RUNNER=local) or ECS tasks (HERMES_RUNNER=ecs). Both
// give the worker the workerVars of Hermes's environment — the local
// runner with secret references resolved (getenv), the ECS runner as
// given (raw: a reference reaches the task as a reference, see
// secretWorkerVars) as the task's environment overrides — and both tell
// the users of a container given up on with local.TellWaiting.
func openRunner(ctx context.Context, cfg config.Config, getenv, raw func(string) string, store hermes.Store, queues hermes.Queues,
	log *slog.Logger, out io.Writer, clock hermes.Clock, breakers awsx.BreakerOptions, woke func(string, time.Duration)) (containerRunner, error) {
	failed := func(ctx context.Context, c *hermes.Container, detail string) {
		n, err := local.TellWaiting(ctx, queues, clock, c, detail)
		if err != nil {
			log.ErrorContext(ctx, "telling the users of a failed container", "container_id", c.ID, "err", err)
		}
		log.InfoContext(ctx, "users told that their editor could not start", "container_id", c.ID, "jobs", n)
	}
	if cfg.Runner == "ecs" {
		ac, err := awsConfig(ctx, cfg)
		if err != nil {
			return nil, err
		}
		endpoint := getenv("AWS_ENDPOINT_URL_ECS")
		if endpoint == "" {
			endpoint = getenv("AWS_ENDPOINT_URL")
		}
		task := ecs.Task{
			Cluster: cfg.ECSClusterName, TaskDefinition: cfg.ECS.TaskDefinition, ContainerName: cfg.ECS.ContainerName,
			Subnets: cfg.ECS.Subnets, SecurityGroups: cfg.ECS.SecurityGroups, AssignPublicIP: cfg.ECS.AssignPublicIP,
		}
		for _, cp := range cfg.ECS.CapacityProviders {
			task.CapacityProviders = append(task.CapacityProviders, ecs.CapacityProvider{Name: cp.Name, Weight: cp.Weight, Base: cp.Base})
		}
		for _, k := range secretWorkerVars {
			if v := raw(k); v != "" && !secrets.IsRef(v) {
				log.Warn("a secret is passed to edit-container tasks as a plain environment override, readable with ecs:DescribeTasks; give a secretsmanager: reference (the worker resolves it) or set it in the task definition's secrets",
					"variable", k)
			}
		}
		if cfg.Store == "sqlite" {
			log.Warn("HERMES_RUNNER=ecs with the SQLite store: tasks reach the store only if they share its file (tests); use HERMES_STORE=dynamodb")
		}
		return &ecs.Runner{
			API: ecs.NewClient(ac, endpoint), Breaker: awsx.NewBreaker("ecs", breakers),
			Store: store, Queues: queues, Clock: clock, Log: log, Task: task,
			// The task definition sets the image's own PATH, HOME and data
			// directory; Hermes passes the configuration it shares.
			Env:  local.Environ(raw, workerVars...),
			Woke: woke, Failed: failed,
		}, nil
	}
	bin := cfg.WorkerBin
	if bin == "" {
		exe, err := local.Executable()
		if err != nil {
			return nil, fmt.Errorf("the worker binary: %w (set HERMES_WORKER_BIN)", err)
		}
		bin = exe
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("HERMES_DATA_DIR: %w", err)
	}
	env := append(local.Environ(getenv, workerVars...), "HERMES_DATA_DIR="+dataDir)
	for _, k := range processVars {
		v := getenv(k)
		if v == "" {
			v = os.Getenv(k)
		}
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	return &local.Runner{
		Store: store, Queues: queues, Command: []string{bin, "worker"}, Env: env,
		Output: out, Clock: clock, Log: log, StopGrace: cfg.ShutdownTimeout, Woke: woke, Failed: failed,
	}, nil
}

// openSenders returns the reply transport of each configured channel.
// Channels without one keep their replies in the outbox (listed by
// GET /api/outbox, and logged). breakers configures the circuit breakers
// of AWS transports (their OnState feeds hermes_circuit_state).
func openSenders(ctx context.Context, cfg config.Config, breakers awsx.BreakerOptions) (map[string]hermes.Sender, error) {
	senders := map[string]hermes.Sender{}
	switch cfg.Mailer {
	case "smtp":
		s, err := smtpout.New(cfg.SMTPURL)
		if err != nil {
			return nil, err
		}
		senders[hermes.ChannelEmail] = s
	case "ses":
		ac, err := awsConfig(ctx, cfg)
		if err != nil {
			return nil, err
		}
		senders[hermes.ChannelEmail] = sesout.New(ac, awsx.NewBreaker("ses", breakers))
	}
	if cfg.Twilio.AccountSID != "" && cfg.Twilio.AuthToken != "" {
		senders[hermes.ChannelSMS] = &twilio.Client{BaseURL: cfg.Twilio.APIURL, AccountSID: cfg.Twilio.AccountSID, AuthToken: cfg.Twilio.AuthToken}
	}
	if cfg.Slack.BotToken != "" {
		senders[hermes.ChannelChat] = &slack.Client{BaseURL: cfg.Slack.APIURL, BotToken: cfg.Slack.BotToken}
	}
	return senders, nil
}

// openModel returns the model that decides which instructions need
// approval: nil for the keyword rules (HERMES_MODEL=keywords; the router
// applies them itself), Bedrock Converse for HERMES_MODEL=bedrock (the
// router falls back to the keyword rules whenever it fails).
func openModel(ctx context.Context, cfg config.Config, breakers awsx.BreakerOptions) (hermes.Model, error) {
	if cfg.Model != "bedrock" {
		return nil, nil
	}
	ac, err := awsConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	b := cfg.Bedrock
	return bedrock.NewFromConfig(ac, awsx.NewBreaker("bedrock", breakers), bedrock.Options{
		ModelID: b.ModelID, SummaryModelID: b.SummaryModelID, Temperature: float32(b.Temperature),
		TopP: float32(b.TopP), MaxTokens: int32(b.MaxTokens), Timeout: b.Timeout,
	}), nil
}

// openMailFetcher returns the reader of mail that an SES receipt rule's
// S3 action stored, on the AWS deployment (SQS queues or the DynamoDB
// store) or wherever SES notifications are consumed (EMAIL_QUEUE_URL);
// nil otherwise, and such notifications are refused.
func openMailFetcher(ctx context.Context, cfg config.Config, breakers awsx.BreakerOptions) (emailin.MailFetcher, error) {
	if cfg.EmailQueueURL == "" && cfg.Queue != "sqs" && cfg.Store != "dynamodb" {
		return nil, nil
	}
	ac, err := awsConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return s3mail.New(ac, awsx.NewBreaker("s3", breakers), func(o *s3.Options) { o.UsePathStyle = cfg.Preview.PathStyle }), nil
}

// checkBackends refuses backends this build cannot run yet, so that a
// configuration asking for them fails at start rather than later. Every
// backend that config accepts has its adapter now.
func checkBackends(cfg config.Config) error {
	_ = cfg
	return nil
}

// openSQS returns the SQS queues (HERMES_QUEUE=sqs): the default
// credential chain, AWS_REGION, and the SDK's AWS_ENDPOINT_URL_SQS /
// AWS_ENDPOINT_URL for emulators. Queue names are resolved to URLs once;
// EMAIL_QUEUE_URL may be a full queue URL.
func openSQS(ctx context.Context, cfg config.Config, breakers awsx.BreakerOptions) (*sqs.Queues, error) {
	ac, err := awsConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("queues: %w", err)
	}
	return sqs.New(ac, sqs.Options{Breaker: awsx.NewBreaker("sqs", breakers)}), nil
}

// awsConfig is the AWS SDK configuration of the AWS adapters: the default
// credential chain (the task role on ECS), AWS_REGION, and the SDK's own
// AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> overrides.
func awsConfig(ctx context.Context, cfg config.Config) (aws.Config, error) {
	return awsx.Load(ctx, awsx.Options{Region: cfg.AWSRegion})
}

// breakerOptions configures every circuit breaker of a process
// (HERMES_BREAKER_FAILURES, HERMES_BREAKER_COOLDOWN); states, when set,
// learns their state changes.
func breakerOptions(cfg config.Config, states *breakerStates) awsx.BreakerOptions {
	o := awsx.BreakerOptions{Failures: uint32(cfg.Breaker.Failures), Cooldown: cfg.Breaker.Cooldown}
	if states != nil {
		o.OnState = states.changed
	}
	return o
}

// breakerStates logs every circuit breaker's state changes and feeds
// them to hermes_circuit_state once the metrics exist (the store's
// breaker works before they do: the metrics need the store); states
// seen before then are recorded when they arrive.
type breakerStates struct {
	log *slog.Logger

	mu     sync.Mutex
	m      *metrics.Metrics
	before map[string]string // service → state, until m is set
}

func (b *breakerStates) changed(service, state string) {
	if state == "open" {
		b.log.Warn("circuit breaker open: calls fail fast until a trial call succeeds", "service", service)
	} else {
		b.log.Info("circuit breaker state", "service", service, "state", state)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		if b.before == nil {
			b.before = map[string]string{}
		}
		b.before[service] = state
		return
	}
	b.m.BreakerState(service, state)
}

// setMetrics makes m the gauge of the states from now on.
func (b *breakerStates) setMetrics(m *metrics.Metrics) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m = m
	for service, state := range b.before {
		m.BreakerState(service, state)
	}
	b.before = nil
}

// setupBackends creates what the configured backends need (`hermes
// setup`), idempotently, and says what it did on out.
func setupBackends(ctx context.Context, cfg config.Config, out io.Writer) error {
	if cfg.Store == "dynamodb" {
		ac, err := awsConfig(ctx, cfg)
		if err != nil {
			return err
		}
		created, err := dynamo.Setup(ctx, dynamo.NewClient(ac), cfg.DynamoDBTable)
		if err != nil {
			return fmt.Errorf("DynamoDB: %w", err)
		}
		for _, c := range created {
			fmt.Fprintf(out, "DynamoDB: created %s\n", c)
		}
		fmt.Fprintf(out, "DynamoDB: table %s is active\n", cfg.DynamoDBTable)
	}
	if cfg.Store == "sqlite" || cfg.Queue == "sqlite" {
		path := filepath.Join(cfg.DataDir, "hermes.db")
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		db, err := sqlite.Open(ctx, path) // applies the migrations
		if err != nil {
			return fmt.Errorf("SQLite: %w", err)
		}
		if err := db.Close(); err != nil {
			return fmt.Errorf("SQLite: %w", err)
		}
		fmt.Fprintf(out, "SQLite: database %s is ready (migrations applied)\n", path)
	}
	if cfg.Queue == "sqs" && cfg.EmailQueueURL != "" {
		// The SES intake queue, unless it exists: one made by the
		// infrastructure (with its own dead-letter queue) is left as it is.
		q, err := openSQS(ctx, cfg, breakerOptions(cfg, nil))
		if err != nil {
			return err
		}
		_, err = q.Stats(ctx, cfg.EmailQueueURL)
		if hermes.IsKind(err, hermes.NotFound) {
			if err = q.CreateQueue(ctx, cfg.EmailQueueURL, hermes.QueueOptions{}); err == nil {
				fmt.Fprintf(out, "SQS: created the intake queue %s\n", sqs.NameOf(cfg.EmailQueueURL))
			}
		}
		if err != nil {
			return fmt.Errorf("SQS: intake queue %s: %w", cfg.EmailQueueURL, err)
		}
		fmt.Fprintf(out, "SQS: intake queue %s is ready\n", sqs.NameOf(cfg.EmailQueueURL))
	}
	// The per-container queue sets are made on demand by the router, not
	// by setup.
	return nil
}
