package ecs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/webordinary/hermes"
)

// Reconcile is the safety net behind push wakes and the watch over
// running tasks; every replica may run it (its writes are conditional on
// the record it read, and ECS calls it repeats are harmless):
//
//   - the tasks of containers believed starting, running or stopping are
//     described (DescribeTasks, 100 at a time); a stopped or vanished task
//     makes its container missing (stopped after a requested stop), with
//     ECS's stopped reason in the detail — and counts as a failed start
//     when the worker never heartbeated;
//   - a running container whose heartbeats stopped is hung: its task is
//     stopped and the container is missing; a starting one past the start
//     timeout is stopped and counts as a failed start;
//   - containers whose input queue has visible jobs and no task are woken
//     (the rules of local.Reconcile: not those given up on, status error,
//     which wait for a new message or an operator's wake).
//
// ECS being unreachable ends the task checks of the pass (an error is
// returned after the wakes were tried).
func (r *Runner) Reconcile(ctx context.Context) error {
	cs, err := r.Store.ListContainers(ctx)
	if err != nil {
		return err
	}
	now := r.now()
	startTimeout := or(r.StartTimeout, DefaultStartTimeout)
	var tracked []*hermes.Container
	for _, c := range cs {
		switch c.Status {
		case hermes.ContainerStarting, hermes.ContainerRunning, hermes.ContainerStopping:
		default:
			continue
		}
		if c.Task != "" {
			tracked = append(tracked, c)
			continue
		}
		if c.Status == hermes.ContainerStarting && (c.StartedAt == nil || now.Sub(*c.StartedAt) >= startTimeout) {
			// A claim whose RunTask never answered (its replica died).
			token := c.StartClaim
			r.startFailed(ctx, c.ID, func(x *hermes.Container) bool {
				return x.Status == hermes.ContainerStarting && x.StartClaim == token && x.Task == ""
			}, "the start did not complete within "+startTimeout.String())
		}
	}
	descErr := r.checkTasks(ctx, tracked, now)
	if ctx.Err() != nil {
		return ctx.Err()
	}

	// Wake containers with waiting jobs and no task (statuses read again:
	// the checks above changed some).
	cs, err = r.Store.ListContainers(ctx)
	if err != nil {
		return errors.Join(descErr, err)
	}
	for _, c := range cs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if c.Status != hermes.ContainerStopped && c.Status != hermes.ContainerMissing && c.Status != "" {
			continue
		}
		if c.Queues.Input == "" {
			continue
		}
		st, err := r.Queues.Stats(ctx, c.Queues.Input)
		if err != nil {
			if !hermes.IsKind(err, hermes.NotFound) {
				r.log().WarnContext(ctx, "reconcile: reading the input queue", "container_id", c.ID, "err", err)
			}
			continue
		}
		if st.Visible > 0 {
			r.log().InfoContext(ctx, "reconcile: waking a container with waiting jobs", "container_id", c.ID, "jobs", st.Visible)
			if err := r.wake(ctx, c.ID, false); err != nil {
				r.log().WarnContext(ctx, "reconcile: waking", "container_id", c.ID, "err", err)
			}
		}
	}
	return descErr
}

// checkTasks describes the tasks of the tracked containers and settles
// those that stopped, hung or never started.
func (r *Runner) checkTasks(ctx context.Context, tracked []*hermes.Container, now time.Time) error {
	tasks := map[string]types.Task{}
	gone := map[string]bool{}
	for i := 0; i < len(tracked); i += describeBatch {
		batch := tracked[i:min(i+describeBatch, len(tracked))]
		arns := make([]string, len(batch))
		for j, c := range batch {
			arns[j] = c.Task
		}
		var out *awsecs.DescribeTasksOutput
		err := r.call("DescribeTasks", func() error {
			var err error
			out, err = r.API.DescribeTasks(ctx, &awsecs.DescribeTasksInput{Cluster: aws.String(r.Task.Cluster), Tasks: arns})
			return err
		})
		if err != nil {
			return fmt.Errorf("reconcile: describing tasks: %w", err)
		}
		for _, t := range out.Tasks {
			tasks[aws.ToString(t.TaskArn)] = t
		}
		for _, f := range out.Failures {
			if aws.ToString(f.Reason) == "MISSING" {
				gone[aws.ToString(f.Arn)] = true
			}
		}
	}
	hbTimeout := or(r.HeartbeatTimeout, DefaultHeartbeatTimeout)
	startTimeout := or(r.StartTimeout, DefaultStartTimeout)
	for _, c := range tracked {
		t, known := tasks[c.Task]
		switch {
		case !known && !gone[c.Task]:
			continue // neither described nor reported missing: next pass
		case !known:
			r.taskStopped(ctx, c, "the task is gone (ECS no longer reports it)")
		case aws.ToString(t.LastStatus) == "STOPPED":
			r.taskStopped(ctx, c, stoppedText(t))
		case c.Status == hermes.ContainerRunning && c.LastHeartbeat != nil && now.Sub(*c.LastHeartbeat) > hbTimeout:
			r.log().WarnContext(ctx, "reconcile: the worker's heartbeats stopped; stopping its task", "container_id", c.ID,
				"task", c.Task, "last_heartbeat", c.LastHeartbeat.Format(time.RFC3339))
			detail := "no heartbeat since " + c.LastHeartbeat.Format(time.RFC3339) + "; the task was stopped"
			r.stopTask(ctx, c.Task, "Hermes: no heartbeat from the worker since "+c.LastHeartbeat.Format(time.RFC3339))
			arn := c.Task
			r.record(ctx, c.ID, func(x *hermes.Container) bool {
				return x.Task == arn && x.Status == hermes.ContainerRunning && x.LastHeartbeat != nil && x.LastHeartbeat.Equal(*c.LastHeartbeat)
			}, hermes.ContainerMissing, detail)
		case c.Status == hermes.ContainerStarting && c.StartedAt != nil && now.Sub(*c.StartedAt) >= startTimeout:
			r.log().WarnContext(ctx, "reconcile: the worker did not heartbeat within the start timeout; stopping its task",
				"container_id", c.ID, "task", c.Task, "timeout", startTimeout.String())
			r.stopTask(ctx, c.Task, "Hermes: no heartbeat from the worker within "+startTimeout.String())
			arn := c.Task
			r.startFailed(ctx, c.ID, func(x *hermes.Container) bool {
				return x.Task == arn && x.Status == hermes.ContainerStarting
			}, "no heartbeat within "+startTimeout.String()+" of the start")
		}
	}
	return nil
}

// taskStopped settles a container whose task stopped: stopped after a
// requested stop; a failed start when the worker never heartbeated;
// missing otherwise (the task died under a running worker: a crash, a
// Spot interruption), which the wake pass restarts if jobs wait.
func (r *Runner) taskStopped(ctx context.Context, c *hermes.Container, reason string) {
	arn := c.Task
	log := r.log().With("container_id", c.ID, "task", arn, "reason", reason)
	switch c.Status {
	case hermes.ContainerStopping:
		log.InfoContext(ctx, "reconcile: container stopped")
		r.record(ctx, c.ID, func(x *hermes.Container) bool {
			return x.Task == arn && x.Status == hermes.ContainerStopping
		}, hermes.ContainerStopped, "the task stopped: "+reason)
	case hermes.ContainerStarting:
		r.startFailed(ctx, c.ID, func(x *hermes.Container) bool {
			return x.Task == arn && x.Status == hermes.ContainerStarting
		}, "the task stopped before the worker's first heartbeat: "+reason)
	default:
		log.WarnContext(ctx, "reconcile: the task of a running container stopped")
		_, err := r.Store.UpdateContainer(ctx, c.ID, func(x *hermes.Container) error {
			if x.Task != arn || x.Status != hermes.ContainerRunning {
				return errNoClaim
			}
			x.Status, x.Detail, x.UpdatedAt, x.StartFailures = hermes.ContainerMissing, "the task stopped: "+reason, r.now(), 0
			return nil
		})
		if err != nil && !errors.Is(err, errNoClaim) {
			log.ErrorContext(ctx, "recording a stopped task", "err", err)
		}
	}
}

// stoppedText is why a task stopped, as ECS tells it: the stopped reason,
// the stop code and the worker's exit code.
func stoppedText(t types.Task) string {
	s := aws.ToString(t.StoppedReason)
	if s == "" {
		s = "stopped"
	}
	if t.StopCode != "" {
		s += " (" + string(t.StopCode) + ")"
	}
	for _, c := range t.Containers {
		if c.ExitCode != nil {
			s += fmt.Sprintf(", exit code %d", *c.ExitCode)
		}
		if r := aws.ToString(c.Reason); r != "" {
			s += ": " + r
		}
	}
	return s
}

// RunReconcile reconciles every interval until ctx ends.
func (r *Runner) RunReconcile(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := r.Reconcile(ctx); err != nil && ctx.Err() == nil {
			r.log().WarnContext(ctx, "reconcile failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
