package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/config"
	"github.com/webordinary/hermes/internal/directory"
	"github.com/webordinary/hermes/internal/emailin"
	"github.com/webordinary/hermes/internal/events"
	"github.com/webordinary/hermes/internal/httpapi"
	"github.com/webordinary/hermes/internal/lifecycle"
	"github.com/webordinary/hermes/internal/logctx"
	"github.com/webordinary/hermes/internal/metrics"
	"github.com/webordinary/hermes/internal/preview"
	"github.com/webordinary/hermes/internal/relay"
	"github.com/webordinary/hermes/internal/router"
	"github.com/webordinary/hermes/internal/smtpd"
)

// adminKeyFile is where serve keeps the generated admin key when no
// credentials are configured.
const adminKeyFile = "admin-api-key"

// serve runs Hermes until ctx ends, then shuts down in order: stop taking
// requests (readiness turns 503, the listener closes), let in-flight
// requests finish within the shutdown timeout, stop the background loops,
// close the store. onListen, when set, learns the bound address (tests
// listen on port 0).
func serve(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, onListen func(net.Addr)) error {
	if len(args) > 0 {
		return usageError{"serve takes no arguments; it is configured by the environment"}
	}
	raw := getenv // references to secrets unresolved, for the ECS runner's tasks
	cfg, getenv, err := loadConfig(ctx, getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if err := checkBackends(cfg); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := logctx.New(stdout, cfg.LogFormat, cfg.LogLevel)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	clock := hermes.Clock(time.Now)

	states := &breakerStates{log: log}
	breakers := breakerOptions(cfg, states)
	store, queues, err := openBackends(ctx, cfg, breakers)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()

	if cfg.ProjectsFile != "" {
		n, err := directory.LoadFile(ctx, store, cfg.ProjectsFile, clock.Now())
		if err != nil {
			return err
		}
		log.Info("projects file loaded", "path", cfg.ProjectsFile, "clients", n)
	}

	keys := cfg.APIKeys
	if len(keys) == 0 && !cfg.JWT.Enabled() {
		path := filepath.Join(cfg.DataDir, adminKeyFile)
		key, created, err := ensureAdminKey(path)
		if err != nil {
			return fmt.Errorf("admin key: %w", err)
		}
		keys = []config.APIKey{key}
		log.Warn("no API keys configured: using the generated admin key in its file (set HERMES_API_KEYS to choose keys)",
			"path", path, "created", created)
	}

	m := metrics.New(store, log)
	states.setMetrics(m)
	// Session events: published by the router, the relays and the runner,
	// streamed at /api/sessions/{sessionId}/events.
	hub := events.NewHub(0, clock)
	sessions := &lifecycle.Sessions{
		Store: store, Clock: clock, TTL: cfg.SessionTTL, PublicBase: cfg.PublicURL, Log: log,
		Hooks: lifecycle.Hooks{
			Created: m.SessionsCreated.Inc,
			Expired: func(reason string) { m.SessionsExpired.WithLabelValues(reason).Inc() },
		},
	}
	reaper := lifecycle.NewReaper(sessions, cfg.ReaperInterval)
	sessions.Kick = reaper.Kick

	senders, err := openSenders(ctx, cfg, breakers)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	model, err := openModel(ctx, cfg, breakers)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	deliverer := &relay.Deliverer{
		Store: store, Senders: senders, Clock: clock, Log: log,
		Sent:   func(ch string) { m.RepliesSent.WithLabelValues(ch).Inc() },
		Failed: func(ch string) { m.RepliesFailed.WithLabelValues(ch).Inc() },
	}
	results := &relay.Results{
		Store: store, Queues: queues, Clock: clock, Log: log, FromEmail: cfg.FromEmail, Kick: deliverer.Kick,
		Interval:  cfg.ResultsInterval,
		PublicURL: cfg.PublicURL, ApprovalTTL: cfg.ApprovalTTL, // approval links of plans
		Relayed: func(kind string) { m.ResultsRelayed.WithLabelValues(kind).Inc() },
		Dropped: func(reason string) { m.ResultsDropped.WithLabelValues(reason).Inc() },
	}
	if s, ok := model.(hermes.Summarizer); ok { // Bedrock: short summaries of SMS result replies
		results.Summarizer = s
	}
	wakes := &metrics.WakeTimes{}
	runner, err := openRunner(ctx, cfg, getenv, raw, store, queues, log, stdout, clock, breakers, func(id string, d time.Duration) {
		results.Watch(id) // its results are long-polled from now on, without waiting for the next pass
		wakes.Observe(d)
		m.WakeSeconds.Observe(d.Seconds())
	})
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	rt := &router.Router{
		Runner: runner, Model: model,
		Store: store, Queues: queues, Sessions: sessions, Clock: clock, Log: log,
		Acknowledger: &relay.Acks{FromEmail: cfg.FromEmail}, OutboxKick: deliverer.Kick,
		QueuePrefix: cfg.QueuePrefix, PendingCap: router.DefaultPendingCap,
		// The median of the recent measured wake times.
		WakeEstimate: func() time.Duration {
			if d, ok := wakes.Estimate(); ok {
				return d
			}
			return defaultWakeEstimate(cfg.Runner)
		},
		Metrics: router.Metrics{
			Routed:  func(ch string) { m.MessagesRouted.WithLabelValues(ch).Inc() },
			Dropped: func(ch, reason string) { m.MessagesDropped.WithLabelValues(ch, reason).Inc() },
			Dupes:   func(ch string) { m.MessagesDuplicate.WithLabelValues(ch).Inc() },
		},
	}
	sessions.Hooks.Deactivated = func(ctx context.Context, s *hermes.Session) {
		if _, err := rt.ReleaseContainer(ctx, s); err != nil {
			log.ErrorContext(ctx, "stopping the container of a deactivated session", "session_id", s.ID, "container_id", s.ContainerID, "err", err)
		}
	}
	stored, err := openMailFetcher(ctx, cfg, breakers)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	email := &emailin.Intake{
		Router: rt, Store: store, Policy: cfg.SESPolicy, Log: log, S3: stored,
		Rejected: func(reason string) { m.MessagesRejected.WithLabelValues(hermes.ChannelEmail, reason).Inc() },
		Dropped:  func(reason string) { m.MessagesDropped.WithLabelValues(hermes.ChannelEmail, reason).Inc() },
	}
	api := &httpapi.Server{
		Store: store, Sessions: sessions, Router: rt, Queues: queues, Metrics: m, Log: log, Clock: clock,
		Auth:     httpapi.NewAuthenticator(keys, cfg.JWT, time.Now),
		BasePath: cfg.BasePath, Version: version(), PublicURL: cfg.PublicURL,
		// Edit containers publish each thread's built site under
		// previews/{clientId}/{projectId}/{threadId}/ in the data directory.
		Previews: preview.New(filepath.Join(cfg.DataDir, "previews"), log),
		Inbound: &httpapi.Inbound{
			Email: email, PublicURL: cfg.PublicURL,
			TwilioAuthToken: cfg.Twilio.AuthToken, TwilioAccountSID: cfg.Twilio.AccountSID, SlackSecret: cfg.Slack.SigningSecret,
			Rejected: func(ch, reason string) { m.MessagesRejected.WithLabelValues(ch, reason).Inc() },
		},
	}
	// GET /health checks the queues (a listing that matches nothing: one
	// round trip) and the runner's orchestrator besides the store.
	api.Checks = map[string]func(context.Context) error{
		"queues": func(ctx context.Context) error {
			_, err := queues.ListQueues(ctx, cfg.QueuePrefix+"health-check-")
			return err
		},
		"runner": runner.Check,
	}
	// Session events, dead jobs (SPEC §2 step 11) and the idle queue clean-up.
	rt.Events, results.Events, api.Events, api.Runner = hub, hub, hub, runner
	dead := &relay.Dead{Store: store, Queues: queues, Clock: clock, Log: log, FromEmail: cfg.FromEmail, Kick: deliverer.Kick,
		Events: hub, Answered: m.RegisterDeadLetters(store, queues, log).Inc}
	cleanup := &lifecycle.QueueCleanup{Store: store, Queues: queues, Clock: clock, Log: log, After: cfg.QueueCleanupAfter}
	srv := &http.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	srv.RegisterOnShutdown(hub.Close) // event streams end, so that Shutdown does not wait for them
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}

	var smtpSrv *smtpd.Server
	if cfg.SMTPAddr != "" {
		smtpSrv = smtpd.New(smtpd.Config{Addr: cfg.SMTPAddr, Log: log}, email)
		addr, err := smtpSrv.Listen()
		if err != nil {
			return fmt.Errorf("HERMES_SMTP_ADDR: %w", err)
		}
		go func() {
			if err := smtpSrv.Serve(); err != nil {
				log.Error("smtp server stopped", "err", err)
			}
		}()
		log.Info("smtp server listening", "addr", addr.String())
	}

	loops, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoops()
	var wg sync.WaitGroup
	// Every replica delivers replies and relays results (both exactly once
	// by their ids and claims); the loops below run on one replica at a
	// time, the holder of the store's background lease.
	wg.Go(func() { deliverer.Run(logctx.With(loops, slog.String("loop", "outbox"))) })
	wg.Go(func() { results.Run(logctx.With(loops, slog.String("loop", "results"))) })
	if cfg.EMF { // CloudWatch metrics: EMF lines among the logs on standard output
		emf := &metrics.EMF{Gatherer: m.Registry, Out: stdout, Environment: cfg.Env, Interval: cfg.EMFInterval, Log: log}
		wg.Go(func() { emf.Run(logctx.With(loops, slog.String("loop", "emf"))) })
	}
	singletons := []func(context.Context){
		func(ctx context.Context) { reaper.Run(logctx.With(ctx, slog.String("loop", "reaper"))) },
		func(ctx context.Context) { dead.Run(logctx.With(ctx, slog.String("loop", "dead-jobs"))) },
		func(ctx context.Context) { cleanup.Run(logctx.With(ctx, slog.String("loop", "queue-cleanup"))) },
		func(ctx context.Context) {
			runner.RunReconcile(logctx.With(ctx, slog.String("loop", "reconcile")), cfg.ReconcileInterval)
		},
	}
	if leases, ok := store.(hermes.Leases); ok {
		leader := &lifecycle.Leader{Leases: leases, Name: "background", Holder: replicaID(), Clock: clock, Log: log}
		wg.Go(func() { leader.Run(loops, singletons...) })
	} else {
		log.Warn("the store has no leases: the background loops run on every replica")
		for _, loop := range singletons {
			wg.Go(func() { loop(loops) })
		}
	}
	if cfg.EmailQueueURL != "" {
		// A queue name (the SQLite queues) is created here; a queue URL (SQS)
		// names a queue made by `hermes setup` or the infrastructure.
		if !strings.Contains(cfg.EmailQueueURL, "://") {
			if err := queues.CreateQueue(ctx, cfg.EmailQueueURL, hermes.QueueOptions{MaxReceives: 0}); err != nil {
				return fmt.Errorf("EMAIL_QUEUE_URL: %w", err)
			}
		}
		wg.Go(func() {
			email.ConsumeQueue(logctx.With(loops, slog.String("loop", "intake-queue")), queues, cfg.EmailQueueURL)
		})
	}

	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			return fmt.Errorf("HERMES_PPROF_ADDR: %w", err)
		}
		defer stopPprof()
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	api.SetReady(true)
	log.Info("hermes started", "version", version(), "addr", ln.Addr().String(), "base_path", cfg.BasePath,
		"data_dir", cfg.DataDir, "store", cfg.Store, "env", cfg.Env)
	if onListen != nil {
		onListen(ln.Addr())
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runner.Close(context.WithoutCancel(ctx))
		stopLoops()
		wg.Wait()
		return fmt.Errorf("http server: %w", err)
	}

	api.SetReady(false) // first: load balancers stop sending traffic
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	var intake sync.WaitGroup
	intake.Go(func() {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			log.Warn("in-flight requests did not finish in time; closing them", "err", err)
			_ = srv.Close()
		}
	})
	if smtpSrv != nil {
		intake.Go(func() {
			if err := smtpSrv.Shutdown(shutdownCtx); err != nil {
				log.Warn("smtp sessions did not finish in time; closed", "err", err)
			}
		})
	}
	intake.Wait()
	// The workers checkpoint and exit; their last results stay queued for
	// the next start if the relay does not get to them first.
	runner.Close(shutdownCtx)
	stopLoops()
	wg.Wait()
	log.Info("stopped")
	return nil
}

// ensureAdminKey returns the admin key kept at path, creating it (256
// random bits, file mode 0600) when there is none. The key itself is never
// logged.
func ensureAdminKey(path string) (key config.APIKey, created bool, err error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k := strings.TrimSpace(string(b))
		if len(k) < config.MinAPIKeyLen {
			return key, false, fmt.Errorf("%s holds no usable key; delete it to generate a new one", path)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return key, false, err
			}
		}
		return apiKey(k), false, nil
	case !errors.Is(err, os.ErrNotExist):
		return key, false, err
	}
	// Write a temporary file, then link it into place: the link fails if
	// another process made the key first, and nobody ever reads a half-written
	// key.
	k := "hk_" + hermes.NewToken() + hermes.NewToken()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".admin-api-key-*")
	if err != nil {
		return key, false, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(k + "\n"); err != nil {
		tmp.Close()
		return key, false, err
	}
	if err := tmp.Close(); err != nil { // CreateTemp made it 0600
		return key, false, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return ensureAdminKey(path)
		}
		return key, false, err
	}
	return apiKey(k), true, nil
}

func apiKey(k string) config.APIKey {
	return config.APIKey{Hash: sha256Sum(k), Scope: config.Scope{Admin: true}}
}

// replicaID names this Hermes process among replicas: host, process id and
// a random suffix.
func replicaID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hermes.NewToken()[:8])
}
