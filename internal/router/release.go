package router

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/webordinary/hermes"
)

// ReleaseContainer stops the container of a deactivated session once no
// other live session uses it (SPEC §5, deactivate): a control job asks the
// worker to interrupt what it runs, checkpoint and exit. Sending it through
// the input queue works for every runner and lets the worker stop cleanly.
// A container that is asleep is left alone, and so is one another live
// session still uses. Idempotent: the control job's id derives from the
// session.
func (r *Router) ReleaseContainer(ctx context.Context, sess *hermes.Session) (bool, error) {
	c, err := r.Store.GetContainer(ctx, sess.ContainerID)
	if hermes.IsKind(err, hermes.NotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if c.Status != hermes.ContainerRunning && c.Status != hermes.ContainerStarting {
		return false, nil
	}
	live := []hermes.SessionStatus{hermes.SessionInitializing, hermes.SessionActive}
	cursor := ""
	for {
		page, next, err := r.Store.ListSessions(ctx, sess.ClientID, live, 1000, cursor)
		if err != nil {
			return false, err
		}
		for _, s := range page {
			if s.ContainerID == c.ID && s.ID != sess.ID {
				r.log().InfoContext(ctx, "container kept: another live session uses it", "container_id", c.ID, "session_id", s.ID)
				return false, nil
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	job := hermes.Job{
		Version: hermes.JobVersion, ID: hermes.DeriveToken("control", sess.ID, hermes.ControlDeactivate), Type: hermes.JobControl,
		Control: hermes.ControlDeactivate, SessionID: sess.ID, ThreadID: sess.ThreadID,
		ClientID: sess.ClientID, ProjectID: sess.ProjectID, UserID: sess.UserID, CreatedAt: r.Clock.Now(),
	}
	body, err := json.Marshal(job)
	if err != nil {
		return false, err
	}
	if _, err := r.Queues.Send(ctx, c.Queues.Input, string(body), map[string]string{
		"jobId": job.ID, "type": job.Type, "sessionId": sess.ID,
	}); err != nil {
		return false, fmt.Errorf("router: sending the stop to the container: %w", err)
	}
	r.log().InfoContext(ctx, "container asked to stop", "container_id", c.ID, "session_id", sess.ID)
	return true, nil
}
