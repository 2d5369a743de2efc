package hermestest

import (
	"cmp"
	"context"
	"time"

	"github.com/webordinary/hermes"
)

// The approvals of the reference store (see TestStoreSuite).

func cloneApproval(a *hermes.Approval) *hermes.Approval {
	x := *a
	for _, t := range []**time.Time{&x.DecidedAt, &x.DoneAt} {
		if *t != nil {
			v := utc(**t)
			*t = &v
		}
	}
	x.CreatedAt, x.ExpiresAt = utc(x.CreatedAt), utc(x.ExpiresAt)
	x.Reply.References = append([]string(nil), a.Reply.References...)
	if a.Reply.References == nil {
		x.Reply.References = nil
	}
	return &x
}

func (h *refHandle) PutApproval(ctx context.Context, a *hermes.Approval) (*hermes.Approval, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	for _, o := range db.approvals {
		if o.ID != a.ID && o.TokenHash == a.TokenHash {
			return nil, hermes.Errorf(hermes.Conflict, "token hash taken")
		}
	}
	old := db.approvals[a.ID]
	switch {
	case old == nil:
		if db.threads[a.ThreadID] == nil {
			return nil, hermes.Errorf(hermes.NotFound, "no thread")
		}
		x := cloneApproval(a)
		x.Status, x.Version, x.DecidedAt, x.DecidedVia, x.DoneAt = hermes.ApprovalPending, 1, nil, "", nil
		db.approvals[a.ID] = x
		return cloneApproval(x), nil
	case old.Status != hermes.ApprovalPending:
		return nil, hermes.Errorf(hermes.Conflict, "decided")
	}
	old.TokenHash, old.Plan, old.ExpiresAt = a.TokenHash, a.Plan, utc(a.ExpiresAt)
	old.Version++
	return cloneApproval(old), nil
}

func (h *refHandle) GetApproval(ctx context.Context, id string) (*hermes.Approval, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if a := db.approvals[id]; a != nil {
		return cloneApproval(a), nil
	}
	return nil, hermes.Errorf(hermes.NotFound, "no approval")
}

func (h *refHandle) ApprovalByTokenHash(ctx context.Context, hash string) (*hermes.Approval, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	for _, a := range db.approvals {
		if a.TokenHash == hash {
			return cloneApproval(a), nil
		}
	}
	return nil, hermes.Errorf(hermes.NotFound, "no approval")
}

func (h *refHandle) LatestApproval(ctx context.Context, threadID string) (*hermes.Approval, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var best *hermes.Approval
	for _, a := range db.approvals {
		if a.ThreadID != threadID {
			continue
		}
		if best == nil || cmp.Or(a.CreatedAt.Compare(best.CreatedAt), cmp.Compare(a.ID, best.ID)) > 0 {
			best = a
		}
	}
	if best == nil {
		return nil, hermes.Errorf(hermes.NotFound, "no approval")
	}
	return cloneApproval(best), nil
}

func (h *refHandle) DecideApproval(ctx context.Context, id string, status hermes.ApprovalStatus, via string, now time.Time) (*hermes.Approval, error) {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	a := db.approvals[id]
	if a == nil {
		return nil, hermes.Errorf(hermes.NotFound, "no approval")
	}
	if status != hermes.ApprovalApproved && status != hermes.ApprovalRejected && status != hermes.ApprovalExpired {
		return nil, hermes.Errorf(hermes.Invalid, "bad status")
	}
	if a.Status != hermes.ApprovalPending {
		return nil, hermes.Errorf(hermes.Conflict, "decided")
	}
	now = utc(now)
	expired := !now.Before(a.ExpiresAt)
	if status == hermes.ApprovalExpired && !expired {
		return nil, hermes.Errorf(hermes.Invalid, "not expired")
	}
	if status != hermes.ApprovalExpired && expired {
		return nil, hermes.Errorf(hermes.Conflict, "expired")
	}
	a.Status, a.DecidedAt, a.DecidedVia = status, &now, via
	a.Version++
	return cloneApproval(a), nil
}

func (h *refHandle) CompleteApproval(ctx context.Context, id string, now time.Time) error {
	db, unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	a := db.approvals[id]
	if a == nil {
		return hermes.Errorf(hermes.NotFound, "no approval")
	}
	if !a.Decided() {
		return hermes.Errorf(hermes.Conflict, "not decided")
	}
	if a.DoneAt == nil {
		now = utc(now)
		a.DoneAt = &now
		a.Version++
	}
	return nil
}
