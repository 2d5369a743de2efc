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

// ContainerIDVar is the environment variable that names the container a
// worker runs (`hermes worker` requires it).
const ContainerIDVar = "HERMES_CONTAINER_ID"

// ContainerEnv is what tells a worker which container it runs, as
// KEY=VALUE: its id and its client, project and user. Every runner adds
// it to the worker's configuration (the local runner to the child's
// environment, the ECS runner to the task's environment overrides).
func ContainerEnv(c *Container) []string {
	return []string{
		ContainerIDVar + "=" + c.ID,
		"HERMES_CLIENT_ID=" + c.ClientID, "HERMES_PROJECT_ID=" + c.ProjectID, "HERMES_USER_ID=" + c.UserID,
	}
}
