package httpapi

import (
	"context"
	"net/http"
	"sort"
	"strconv"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/relay"
)

// Dead-job listing limits.
const (
	defaultDeadJobs = 100
	maxDeadJobs     = relay.MaxDeadJobs
	// maxRedriveRounds bounds one redrive request (1000 jobs a round).
	maxRedriveRounds = 10
)

// validContainerID reports whether s is a container id (hermes.ContainerID):
// 1–56 lowercase letters, digits, "_" and "-", starting with a letter or
// digit.
func validContainerID(s string) bool {
	if len(s) == 0 || len(s) > hermes.MaxContainerIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// container returns the container named by id: 400 for a malformed id,
// 404 for an unknown one.
func (s *Server) container(ctx context.Context, id string) (*hermes.Container, error) {
	if !validContainerID(id) {
		return nil, hermes.Errorf(hermes.Invalid, "containerId %q is malformed: expected 1-56 lowercase letters, digits, _ and -", id)
	}
	return s.Store.GetContainer(ctx, id)
}

// handleDeadJobs lists the jobs on the containers' dead-letter queues
// (all containers, or ?containerId=), oldest first, without consuming
// them: each queue is read with a short visibility and every message made
// visible again (relay.PeekDead).
func (s *Server) handleDeadJobs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := defaultDeadJobs
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxDeadJobs {
			return hermes.Errorf(hermes.Invalid, "limit must be an integer from 1 to %d", maxDeadJobs)
		}
		limit = n
	}
	var cs []*hermes.Container
	if q.Has("containerId") {
		c, err := s.container(r.Context(), q.Get("containerId"))
		if err != nil {
			return err
		}
		cs = []*hermes.Container{c}
	} else {
		var err error
		if cs, err = s.Store.ListContainers(r.Context()); err != nil {
			return err
		}
	}
	out := []relay.DeadJob{}
	for _, c := range cs {
		if c.Queues.DLQ == "" || len(out) >= limit {
			continue // no queue set (cleaned up), or enough
		}
		err := relay.PeekDead(r.Context(), s.Queues, c.Queues.DLQ, limit-len(out), func(d hermes.Delivery) error {
			out = append(out, relay.DeadJobOf(c, d))
			return nil
		})
		if err != nil && !hermes.IsKind(err, hermes.NotFound) {
			return err
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.SentAt.Equal(b.SentAt) {
			return a.SentAt.Before(b.SentAt)
		}
		if a.ContainerID != b.ContainerID {
			return a.ContainerID < b.ContainerID
		}
		return a.MessageID < b.MessageID
	})
	writeJSON(w, http.StatusOK, out)
	return nil
}

type redriveResponse struct {
	ContainerID string `json:"containerId"`
	Redriven    int    `json:"redriven"`
	Woken       bool   `json:"woken"`
}

// handleRedriveDeadJobs moves a container's dead jobs back to its input
// queue (with fresh receive counts) and wakes the container.
func (s *Server) handleRedriveDeadJobs(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r.Context(), r.PathValue("containerId"))
	if err != nil {
		return err
	}
	out := redriveResponse{ContainerID: c.ID}
	if c.Queues.DLQ != "" && c.Queues.Input != "" {
		for range maxRedriveRounds {
			n, err := s.Queues.Redrive(r.Context(), c.Queues.DLQ, c.Queues.Input, relay.MaxDeadJobs)
			if hermes.IsKind(err, hermes.NotFound) {
				break
			}
			if err != nil {
				return err
			}
			out.Redriven += n
			if n < relay.MaxDeadJobs {
				break
			}
		}
	}
	if out.Redriven > 0 {
		s.Log.InfoContext(r.Context(), "dead jobs redriven", "container_id", c.ID, "count", out.Redriven)
		if s.Runner != nil {
			if err := s.Runner.Wake(r.Context(), c); err != nil {
				// The jobs are on the input queue; the reconcile loop wakes
				// the container later.
				s.Log.WarnContext(r.Context(), "waking the container after a redrive failed", "container_id", c.ID, "err", err)
			} else {
				out.Woken = true
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type purgeResponse struct {
	ContainerID string `json:"containerId"`
	Purged      int    `json:"purged"`
}

// handlePurgeDeadJobs deletes every job on a container's dead-letter
// queue. The count is the queue's depth just before the purge.
func (s *Server) handlePurgeDeadJobs(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r.Context(), r.PathValue("containerId"))
	if err != nil {
		return err
	}
	out := purgeResponse{ContainerID: c.ID}
	if c.Queues.DLQ != "" {
		st, err := s.Queues.Stats(r.Context(), c.Queues.DLQ)
		switch {
		case hermes.IsKind(err, hermes.NotFound):
		case err != nil:
			return err
		default:
			if err := s.Queues.Purge(r.Context(), c.Queues.DLQ); err != nil {
				return err
			}
			out.Purged = st.Visible + st.InFlight
			s.Log.InfoContext(r.Context(), "dead jobs purged", "container_id", c.ID, "count", out.Purged)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
