package hermes

import "context"

// Runner starts and stops edit containers: local child processes in the
// embedded default, ECS tasks in production.
type Runner interface {
	// Wake starts the container when it is not running and returns without
	// waiting for it to be ready; readiness comes from the container's
	// heartbeat. Concurrent wakes of one container start it once.
	// Unavailable when the orchestrator cannot be reached (the job stays
	// queued and the reconcile loop tries again).
	Wake(ctx context.Context, c *Container) error
	// Stop asks the container to stop after checkpointing its work.
	Stop(ctx context.Context, c *Container) error
}
