package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/webordinary/hermes"
)

// Edit containers: the list and one container (admin, or the container's
// client), and an operator's wake and stop (admin) through s.Runner.

type queueInfo struct {
	Name     string `json:"name"`
	Depth    int    `json:"depth"`
	InFlight int    `json:"inFlight"`
}

// containerInfo is a container as the API shows it (ContainerInfo in the
// OpenAPI document).
type containerInfo struct {
	ContainerID   string                 `json:"containerId"`
	ClientID      string                 `json:"clientId"`
	ProjectID     string                 `json:"projectId"`
	UserID        string                 `json:"userId"`
	Status        hermes.ContainerStatus `json:"status"`
	Detail        string                 `json:"detail,omitempty"`
	LastHeartbeat *time.Time             `json:"lastHeartbeat"`
	Queues        map[string]queueInfo   `json:"queues"`
}

// containerInfoOf describes c with the depths of its three queues (a
// queue that does not exist, such as one cleaned up, counts as empty).
func (s *Server) containerInfoOf(ctx context.Context, c *hermes.Container) (containerInfo, error) {
	info := containerInfo{ContainerID: c.ID, ClientID: c.ClientID, ProjectID: c.ProjectID, UserID: c.UserID,
		Status: c.Status, Detail: c.Detail, LastHeartbeat: c.LastHeartbeat, Queues: map[string]queueInfo{}}
	for role, name := range map[string]string{"input": c.Queues.Input, "output": c.Queues.Output, "dlq": c.Queues.DLQ} {
		st, err := s.Queues.Stats(ctx, name)
		if err != nil && !hermes.IsKind(err, hermes.NotFound) {
			return containerInfo{}, err
		}
		info.Queues[role] = queueInfo{Name: name, Depth: st.Visible, InFlight: st.InFlight}
	}
	return info, nil
}

// handleContainers lists edit containers with their queue depths.
func (s *Server) handleContainers(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.Store.ListContainers(r.Context())
	if err != nil {
		return err
	}
	p := principalFrom(r.Context())
	out := []containerInfo{}
	for _, c := range cs {
		if !p.CanSeeClient(c.ClientID) {
			continue
		}
		info, err := s.containerInfoOf(r.Context(), c)
		if err != nil {
			return err
		}
		out = append(out, info)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleGetContainer answers one container as GET /api/containers lists
// it. Another client's container is 404 to a client-scoped caller, as if
// it did not exist.
func (s *Server) handleGetContainer(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("containerId")
	c, err := s.container(r.Context(), id)
	if err != nil {
		return err
	}
	if !principalFrom(r.Context()).CanSeeClient(c.ClientID) {
		return hermes.Errorf(hermes.NotFound, "container %q not found", id)
	}
	info, err := s.containerInfoOf(r.Context(), c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

// containerActionResponse answers a wake or a stop: the container's status
// once the runner has answered.
type containerActionResponse struct {
	ContainerID string                 `json:"containerId"`
	Status      hermes.ContainerStatus `json:"status"`
}

// handleWakeContainer starts the container's worker unless it runs. A
// container in error is woken too: an operator's wake is a new attempt (the
// runner forgets the crashes that made it give up). The runner does not
// wait for the worker to be ready; its heartbeat makes it running.
func (s *Server) handleWakeContainer(w http.ResponseWriter, r *http.Request) error {
	return s.containerAction(w, r, "wake", func(ctx context.Context, c *hermes.Container) error {
		if c.QueuesState == hermes.QueuesDeleting || c.QueuesState == hermes.QueuesDeleted {
			return hermes.Errorf(hermes.Conflict, "container %q has no queues: they were cleaned up after it sat idle, and its next message makes them again; there is nothing to wake it for", c.ID)
		}
		return s.Runner.Wake(ctx, c)
	})
}

// handleStopContainer asks the runner to stop the container: its worker
// checkpoints the job it holds, which stays queued, and exits. The local
// runner waits for that, up to its grace period, within the request. A
// caller that hangs up does not cut the stop short: the worker still gets
// its grace period to checkpoint.
func (s *Server) handleStopContainer(w http.ResponseWriter, r *http.Request) error {
	return s.containerAction(w, r, "stop", func(ctx context.Context, c *hermes.Container) error {
		return s.Runner.Stop(context.WithoutCancel(ctx), c)
	})
}

// containerAction runs a wake or a stop of the container named in the
// path, then answers 202 with the container's status as recorded after it.
// Without a runner, or with one that cannot reach its orchestrator, the
// answer is a 503 problem.
func (s *Server) containerAction(w http.ResponseWriter, r *http.Request, verb string, act func(context.Context, *hermes.Container) error) error {
	c, err := s.container(r.Context(), r.PathValue("containerId"))
	if err != nil {
		return err
	}
	if s.Runner == nil {
		return hermes.Errorf(hermes.Unavailable, "this Hermes has no container runner: it cannot %s containers", verb)
	}
	if err := act(r.Context(), c); err != nil {
		if hermes.IsKind(err, hermes.Unavailable) {
			return &hermes.Error{Kind: hermes.Unavailable, Err: err,
				Message: fmt.Sprintf("the container runner could not %s container %q (%s); try again later", verb, c.ID, hermes.ErrorMessage(err))}
		}
		return fmt.Errorf("%s container %s: %w", verb, c.ID, err)
	}
	s.Log.InfoContext(r.Context(), "container "+verb+" requested by an operator", "container_id", c.ID)
	if c, err = s.Store.GetContainer(r.Context(), c.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, containerActionResponse{ContainerID: c.ID, Status: c.Status})
	return nil
}
