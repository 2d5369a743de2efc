// Package ecs is the production container runner: each edit container is
// an ECS task (Fargate or Fargate Spot) of the worker's task definition,
// started with RunTask, watched with DescribeTasks and stopped with
// StopTask. The worker inside is the same `hermes worker` the local runner
// starts as a child process, configured by the same variables, which this
// runner passes as the task's container environment overrides.
//
// Starts are claimed in the store: a wake moves the container record from
// a not-running status to starting with a fresh claim token in one
// compare-and-set write, and only the caller whose write succeeded calls
// RunTask (with the token as its idempotency token), so concurrent wakes
// start one task even across Hermes replicas. Readiness is the worker's
// first heartbeat in the store. The reconcile pass describes the tasks of
// containers believed starting, running or stopping, records stopped ones
// (with ECS's stopped reason), stops hung ones, gives up on containers
// whose starts keep failing, and wakes containers with waiting jobs.
//
// Tasks outlive a Hermes replica: Close stops nothing.
package ecs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
)

// Defaults of the Runner's settings.
const (
	// DefaultStartTimeout bounds a start: RunTask to the worker's first
	// heartbeat (image pull and clone included). A starting container
	// whose claim is older may be claimed again, and its task is stopped.
	DefaultStartTimeout = 5 * time.Minute
	// DefaultHeartbeatTimeout is three of the worker's heartbeat periods:
	// a running container whose last heartbeat is older is hung.
	DefaultHeartbeatTimeout = 30 * time.Second
	// DefaultMaxFailures: starts in a row that fail before the worker's
	// first heartbeat before the container is given up on (status error).
	DefaultMaxFailures = 3
	// DefaultReadyPoll is how often a started container's record is read
	// for its first heartbeat.
	DefaultReadyPoll = 250 * time.Millisecond
	// DefaultStartedBy is the RunTask startedBy of Hermes's tasks.
	DefaultStartedBy = "hermes"
	// describeBatch is the most tasks DescribeTasks takes in one call.
	describeBatch = 100
	// callTimeout bounds one start or stop, whatever the caller's context.
	callTimeout = time.Minute
)

// API is the part of the ECS client the runner uses (*ecs.Client).
type API interface {
	RunTask(ctx context.Context, in *awsecs.RunTaskInput, opts ...func(*awsecs.Options)) (*awsecs.RunTaskOutput, error)
	DescribeTasks(ctx context.Context, in *awsecs.DescribeTasksInput, opts ...func(*awsecs.Options)) (*awsecs.DescribeTasksOutput, error)
	StopTask(ctx context.Context, in *awsecs.StopTaskInput, opts ...func(*awsecs.Options)) (*awsecs.StopTaskOutput, error)
	DescribeClusters(ctx context.Context, in *awsecs.DescribeClustersInput, opts ...func(*awsecs.Options)) (*awsecs.DescribeClustersOutput, error)
}

var _ API = (*awsecs.Client)(nil)

// NewClient returns the ECS client of cfg; endpoint, when set, overrides
// the service's endpoint (an emulator or the test fake).
func NewClient(cfg aws.Config, endpoint string) *awsecs.Client {
	return awsecs.NewFromConfig(cfg, func(o *awsecs.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
}

// Task describes the tasks the runner starts.
type Task struct {
	Cluster        string // cluster name or ARN (ECS_CLUSTER_NAME)
	TaskDefinition string // family, family:revision or ARN (ECS_TASK_DEFINITION)
	ContainerName  string // the worker's container in it (ECS_CONTAINER_NAME)
	Subnets        []string
	SecurityGroups []string
	AssignPublicIP bool
	// CapacityProviders is the capacity provider strategy, e.g.
	// FARGATE_SPOT; empty runs with launch type FARGATE.
	CapacityProviders []CapacityProvider
	// StartedBy marks Hermes's tasks (DefaultStartedBy when empty).
	StartedBy string
}

// CapacityProvider is one item of a capacity provider strategy: tasks
// are spread by Weight after Base tasks on this provider.
type CapacityProvider struct {
	Name         string
	Weight, Base int
}

// Runner implements hermes.Runner with ECS tasks.
type Runner struct {
	API     API
	Breaker *awsx.Breaker // "ecs"; nil calls ECS directly
	Store   hermes.Store
	Queues  hermes.Queues
	Clock   hermes.Clock
	Log     *slog.Logger
	Task    Task
	// Env is the worker's configuration (KEY=VALUE), passed as the task's
	// environment overrides; the runner adds hermes.ContainerEnv.
	Env []string

	StartTimeout     time.Duration
	HeartbeatTimeout time.Duration
	MaxFailures      int
	ReadyPoll        time.Duration

	// Woke, when set, learns each wake time: from the wake to the
	// worker's first heartbeat, as seen by the replica that started it.
	Woke func(containerID string, d time.Duration)
	// Failed, when set, is called once a container is given up on (status
	// error), to tell the users whose jobs wait (local.TellWaiting).
	Failed func(ctx context.Context, c *hermes.Container, detail string)

	mu     sync.Mutex
	ctx    context.Context // ends at Close: readiness watches stop
	cancel context.CancelFunc
	closed bool
	wg     sync.WaitGroup
}

var _ hermes.Runner = (*Runner)(nil)

func (r *Runner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

func (r *Runner) now() time.Time { return r.Clock.Now().UTC().Truncate(time.Millisecond) }

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// call runs one ECS call through the breaker; errors come back as
// hermes errors (Unavailable when a later try may work).
func (r *Runner) call(op string, fn func() error) error {
	return awsx.Wrap("ecs."+op, r.Breaker.Do(fn))
}

// errNoClaim: the container is starting or running; another wake (here
// or on another replica) owns the start.
var errNoClaim = errors.New("no start claim")

// Wake starts a task for the container unless one is starting or running.
// It claims the start in the store first (see the package comment):
// callers that lose the claim return nil. A wake clears an earlier give-up
// (status error): a new message is a new attempt. Unavailable when ECS
// cannot be reached or the breaker is open (the claim is released, the
// job stays queued and the reconcile pass tries again).
func (r *Runner) Wake(ctx context.Context, c *hermes.Container) error {
	return r.wake(ctx, c.ID, true)
}

func (r *Runner) wake(ctx context.Context, id string, fresh bool) error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return hermes.Errorf(hermes.Unavailable, "ecs runner: shutting down")
	}
	wakeAt := time.Now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	token := hermes.NewToken()
	now := r.now()
	var prev hermes.Container
	c, err := r.Store.UpdateContainer(ctx, id, func(c *hermes.Container) error {
		if !r.claimable(c, now, fresh) {
			return errNoClaim
		}
		prev = *c
		if c.Status == hermes.ContainerError {
			c.StartFailures = 0
		}
		c.Status, c.Detail, c.UpdatedAt = hermes.ContainerStarting, "", now
		c.StartClaim, c.StartedAt, c.Task = token, &now, ""
		return nil
	})
	if errors.Is(err, errNoClaim) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ecs runner: claiming the start of %s: %w", id, err)
	}
	log := r.log().With("container_id", id)
	if prev.Status == hermes.ContainerStarting && prev.Task != "" {
		// The previous start never heartbeated in time: its task must not
		// run beside the new one.
		r.stopTask(ctx, prev.Task, "Superseded by a new start (no heartbeat within the start timeout)")
	}
	var out *awsecs.RunTaskOutput
	err = r.call("RunTask", func() error {
		var err error
		out, err = r.API.RunTask(ctx, r.runInput(c, token))
		return err
	})
	if err != nil {
		if hermes.IsKind(err, hermes.Unavailable) {
			log.WarnContext(ctx, "ECS unavailable; the start waits for the next wake or reconcile", "err", err)
			r.release(ctx, id, token, &prev, "ECS unavailable: the start is retried")
			return err
		}
		log.ErrorContext(ctx, "ECS refused to run the task", "err", err)
		r.startFailed(ctx, id, func(c *hermes.Container) bool { return c.StartClaim == token },
			"ECS refused to run the task: "+errorMessage(err))
		return err
	}
	if len(out.Tasks) == 0 || out.Tasks[0].TaskArn == nil {
		reason := "no task and no failure reported"
		if len(out.Failures) > 0 {
			reason = failureText(out.Failures[0])
		}
		log.WarnContext(ctx, "ECS could not start the task", "reason", reason)
		r.startFailed(ctx, id, func(c *hermes.Container) bool { return c.StartClaim == token }, "ECS could not start the task: "+reason)
		return hermes.Errorf(hermes.Unavailable, "ecs runner: starting %s: %s", id, reason)
	}
	arn := aws.ToString(out.Tasks[0].TaskArn)
	_, err = r.Store.UpdateContainer(ctx, id, func(c *hermes.Container) error {
		if c.StartClaim != token {
			return errNoClaim
		}
		c.Task = arn
		return nil
	})
	if errors.Is(err, errNoClaim) {
		// Someone took the start over meanwhile (this one was too slow):
		// the task is theirs to replace.
		log.WarnContext(ctx, "start claim lost after RunTask; stopping the task", "task", arn)
		r.stopTask(ctx, arn, "Superseded by another start")
		return nil
	}
	if err != nil {
		// The task runs; reconcile finds it by its claim expiry at worst.
		log.ErrorContext(ctx, "recording the task of a started container", "task", arn, "err", err)
	}
	log.InfoContext(ctx, "container starting", "task", arn, "capacity", capacityName(r.Task))
	r.watchReady(id, token, now, wakeAt)
	return nil
}

// claimable reports whether a wake at now may claim c's start.
func (r *Runner) claimable(c *hermes.Container, now time.Time, fresh bool) bool {
	switch c.Status {
	case hermes.ContainerRunning, hermes.ContainerStopping:
		return false
	case hermes.ContainerStarting:
		return c.StartedAt == nil || now.Sub(*c.StartedAt) >= or(r.StartTimeout, DefaultStartTimeout)
	case hermes.ContainerError:
		return fresh
	}
	return true // stopped, missing, or new
}

// runInput is the RunTask request of container c.
func (r *Runner) runInput(c *hermes.Container, token string) *awsecs.RunTaskInput {
	var env []types.KeyValuePair
	for _, kv := range append(append([]string(nil), r.Env...), hermes.ContainerEnv(c)...) {
		k, v, _ := strings.Cut(kv, "=")
		env = append(env, types.KeyValuePair{Name: aws.String(k), Value: aws.String(v)})
	}
	public := types.AssignPublicIpDisabled
	if r.Task.AssignPublicIP {
		public = types.AssignPublicIpEnabled
	}
	in := &awsecs.RunTaskInput{
		Cluster:        aws.String(r.Task.Cluster),
		TaskDefinition: aws.String(r.Task.TaskDefinition),
		Count:          aws.Int32(1),
		ClientToken:    aws.String(token), // a retried RunTask starts no second task
		StartedBy:      aws.String(or(r.Task.StartedBy, DefaultStartedBy)),
		Group:          aws.String("hermes:" + c.ID),
		NetworkConfiguration: &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{
			Subnets: r.Task.Subnets, SecurityGroups: r.Task.SecurityGroups, AssignPublicIp: public,
		}},
		Overrides: &types.TaskOverride{ContainerOverrides: []types.ContainerOverride{{
			Name: aws.String(r.Task.ContainerName), Environment: env,
		}}},
		Tags: []types.Tag{
			{Key: aws.String("client"), Value: aws.String(c.ClientID)},
			{Key: aws.String("project"), Value: aws.String(c.ProjectID)},
			{Key: aws.String("user"), Value: aws.String(c.UserID)},
			{Key: aws.String("container"), Value: aws.String(c.ID)},
			{Key: aws.String("managed-by"), Value: aws.String("hermes")},
		},
	}
	if len(r.Task.CapacityProviders) > 0 {
		for _, cp := range r.Task.CapacityProviders {
			in.CapacityProviderStrategy = append(in.CapacityProviderStrategy, types.CapacityProviderStrategyItem{
				CapacityProvider: aws.String(cp.Name), Weight: int32(cp.Weight), Base: int32(cp.Base),
			})
		}
	} else {
		in.LaunchType = types.LaunchTypeFargate
	}
	return in
}

func capacityName(t Task) string {
	if len(t.CapacityProviders) == 0 {
		return "FARGATE (launch type)"
	}
	var names []string
	for _, cp := range t.CapacityProviders {
		names = append(names, cp.Name)
	}
	return strings.Join(names, ",")
}

// release gives a claim back after a start that ECS could not take
// (unavailable): the container returns to its status before the claim, so
// that the next wake or reconcile claims it again at once.
func (r *Runner) release(ctx context.Context, id, token string, prev *hermes.Container, detail string) {
	_, err := r.Store.UpdateContainer(context.WithoutCancel(ctx), id, func(c *hermes.Container) error {
		if c.StartClaim != token || c.Status != hermes.ContainerStarting {
			return errNoClaim
		}
		c.Status, c.Detail, c.UpdatedAt = prev.Status, detail, r.now()
		if c.Status == hermes.ContainerStarting || c.Status == "" {
			c.Status = hermes.ContainerMissing
		}
		c.StartedAt, c.Task = prev.StartedAt, prev.Task
		return nil
	})
	if err != nil && !errors.Is(err, errNoClaim) {
		r.log().ErrorContext(ctx, "releasing a start claim", "container_id", id, "err", err)
	}
}

// startFailed records a start that failed before the worker's first
// heartbeat, for the container whose record still matches: status
// missing, or error (given up, and Failed told) after MaxFailures in a
// row.
func (r *Runner) startFailed(ctx context.Context, id string, match func(*hermes.Container) bool, detail string) {
	ctx = context.WithoutCancel(ctx)
	max := or(r.MaxFailures, DefaultMaxFailures)
	var gaveUp bool
	c, err := r.Store.UpdateContainer(ctx, id, func(c *hermes.Container) error {
		if !match(c) {
			return errNoClaim
		}
		c.StartFailures++
		gaveUp = c.StartFailures >= max
		c.Status, c.Detail, c.UpdatedAt = hermes.ContainerMissing, detail, r.now()
		if gaveUp {
			c.Status = hermes.ContainerError
			c.Detail = fmt.Sprintf("the editor failed to start %d times in a row (last: %s)", c.StartFailures, detail)
		}
		return nil
	})
	if errors.Is(err, errNoClaim) {
		return
	}
	if err != nil {
		r.log().ErrorContext(ctx, "recording a failed start", "container_id", id, "err", err)
		return
	}
	if gaveUp {
		r.log().ErrorContext(ctx, "container given up on", "container_id", id, "failures", c.StartFailures, "detail", detail)
		if r.Failed != nil {
			r.Failed(ctx, c, c.Detail)
		}
		return
	}
	r.log().WarnContext(ctx, "container start failed", "container_id", id, "failures", c.StartFailures, "detail", detail)
}

// watchReady reads the container record until the worker's first
// heartbeat after the start claimed at claimedAt, and reports the wake
// time. It gives up when the claim changes, the start fails, StartTimeout
// passes (reconcile then stops the task) or the runner closes.
func (r *Runner) watchReady(id, token string, claimedAt, wakeAt time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if r.ctx == nil {
		r.ctx, r.cancel = context.WithCancel(context.Background())
	}
	ctx := r.ctx
	r.wg.Go(func() {
		deadline := time.NewTimer(or(r.StartTimeout, DefaultStartTimeout))
		defer deadline.Stop()
		tick := time.NewTicker(or(r.ReadyPoll, DefaultReadyPoll))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-deadline.C:
				return
			case <-tick.C:
			}
			c, err := r.Store.GetContainer(ctx, id)
			if err != nil {
				continue
			}
			if c.StartClaim != token {
				return
			}
			switch c.Status {
			case hermes.ContainerStarting:
				continue
			case hermes.ContainerRunning:
				if c.LastHeartbeat != nil && !c.LastHeartbeat.Before(claimedAt) {
					d := time.Since(wakeAt)
					r.log().Info("container ready", "container_id", id, "task", c.Task, "wake_ms", d.Milliseconds())
					if r.Woke != nil {
						r.Woke(id, d)
					}
					return
				}
				continue
			}
			return
		}
	})
}

// Stop asks the container's task to stop: ECS sends the worker SIGTERM
// (it checkpoints, a running job is left for redelivery) and SIGKILL
// after the task definition's stop timeout. It returns once ECS took the
// request, with the container stopping; the worker records stopped as it
// exits, or the reconcile pass once ECS reports the task stopped. A
// container with no task is recorded stopped unless it is already.
// Unavailable when ECS cannot be reached.
func (r *Runner) Stop(ctx context.Context, c *hermes.Container) error {
	cur, err := r.Store.GetContainer(ctx, c.ID)
	if err != nil {
		return err
	}
	if cur.Task == "" || cur.Status == hermes.ContainerStopped || cur.Status == hermes.ContainerError {
		if cur.Status != hermes.ContainerStopped && cur.Status != hermes.ContainerError {
			r.record(ctx, c.ID, func(x *hermes.Container) bool { return x.Task == "" }, hermes.ContainerStopped, "stopped")
		}
		return nil
	}
	arn := cur.Task
	err = r.call("StopTask", func() error {
		_, err := r.API.StopTask(ctx, &awsecs.StopTaskInput{
			Cluster: aws.String(r.Task.Cluster), Task: aws.String(arn),
			Reason: aws.String("Stopped by Hermes (deactivated, or an operator's stop)"),
		})
		return err
	})
	if err != nil {
		return err
	}
	r.record(ctx, c.ID, func(x *hermes.Container) bool {
		return x.Task == arn && x.Status != hermes.ContainerStopped && x.Status != hermes.ContainerError
	}, hermes.ContainerStopping, "")
	r.log().InfoContext(ctx, "container stopping", "container_id", c.ID, "task", arn)
	return nil
}

// stopTask stops a task whose container no longer counts on it, logging
// a failure (the reconcile pass tries again).
func (r *Runner) stopTask(ctx context.Context, arn, reason string) {
	err := r.call("StopTask", func() error {
		_, err := r.API.StopTask(ctx, &awsecs.StopTaskInput{Cluster: aws.String(r.Task.Cluster), Task: aws.String(arn), Reason: aws.String(reason)})
		return err
	})
	if err != nil {
		r.log().WarnContext(ctx, "stopping a task", "task", arn, "reason", reason, "err", err)
	}
}

// record sets the status and detail of the container whose record still
// matches.
func (r *Runner) record(ctx context.Context, id string, match func(*hermes.Container) bool, status hermes.ContainerStatus, detail string) {
	_, err := r.Store.UpdateContainer(context.WithoutCancel(ctx), id, func(c *hermes.Container) error {
		if !match(c) {
			return errNoClaim
		}
		c.Status, c.Detail, c.UpdatedAt = status, detail, r.now()
		return nil
	})
	if err != nil && !errors.Is(err, errNoClaim) {
		r.log().ErrorContext(ctx, "recording the container's status", "container_id", id, "status", status, "err", err)
	}
}

// Check asks ECS about the runner's cluster (DescribeClusters, through
// the breaker) for the health check: an error when ECS cannot be reached
// or refuses the call, or when the cluster is missing or not ACTIVE.
func (r *Runner) Check(ctx context.Context) error {
	var out *awsecs.DescribeClustersOutput
	err := r.call("DescribeClusters", func() (err error) {
		out, err = r.API.DescribeClusters(ctx, &awsecs.DescribeClustersInput{Clusters: []string{r.Task.Cluster}})
		return err
	})
	if err != nil {
		return err
	}
	if len(out.Clusters) == 0 {
		return hermes.Errorf(hermes.Unavailable, "cluster %s is missing", r.Task.Cluster)
	}
	if st := aws.ToString(out.Clusters[0].Status); st != "ACTIVE" {
		return hermes.Errorf(hermes.Unavailable, "cluster %s is %s", r.Task.Cluster, st)
	}
	return nil
}

// Close ends the readiness watches. Tasks outlive a Hermes replica: it
// stops none (their workers go on, heartbeating to the store, and exit
// when idle; another replica, or this one restarted, reconciles them).
// Wakes after Close fail.
func (r *Runner) Close(ctx context.Context) {
	r.mu.Lock()
	r.closed = true
	if r.cancel != nil {
		r.cancel()
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// errorMessage is the message of an AWS error without the SDK's wrapping.
func errorMessage(err error) string {
	var ae interface{ ErrorMessage() string }
	if errors.As(err, &ae) {
		if code := awsx.Code(err); code != "" {
			return code + ": " + ae.ErrorMessage()
		}
		return ae.ErrorMessage()
	}
	return err.Error()
}

func failureText(f types.Failure) string {
	s := aws.ToString(f.Reason)
	if d := aws.ToString(f.Detail); d != "" {
		s += " (" + d + ")"
	}
	return s
}
