package relay

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/webordinary/hermes"
)

// Plan results (SPEC §7): the plan a container proposes for a destructive
// or large instruction is stored as an approval, and the user gets it with
// a link to its approval page ({PublicURL}/approvals/{token}) and may also
// reply "approve" or "reject" (internal/router decides either way).
//
// Only the hash of a link's token is stored, so a token cannot be sent
// again: a plan result delivered again before its reply was queued (a
// crash in between) rotates the token; once the reply is queued, a
// redelivery leaves the approval alone. Should two handlers race on one
// result, the reply queued first wins the outbox id, and each handler
// makes the approval hold the hash of the token in the stored reply.

// planApproval creates (or, while pending, renews with a fresh token) the
// approval of a plan result and returns the link for its reply; "" when
// the reply was queued before (the approval is then left alone) or when
// there is no public URL (the plan is then approved by a reply).
func (r *Results) planApproval(ctx context.Context, sess *hermes.Session, m *hermes.ResultMessage, replyID string, now time.Time) (string, error) {
	id := hermes.ApprovalIDFor(m.JobID)
	if m.Reply.Channel == hermes.ChannelAPI {
		// No reply to anchor on: the first delivery creates it, with its
		// link in the history entry.
		if _, err := r.Store.GetApproval(ctx, id); err == nil || !hermes.IsKind(err, hermes.NotFound) {
			return "", err
		}
	} else if _, err := r.Store.GetOutbox(ctx, replyID); err == nil || !hermes.IsKind(err, hermes.NotFound) {
		return "", err
	}
	ttl := r.ApprovalTTL
	if ttl <= 0 {
		ttl = hermes.DefaultApprovalTTL
	}
	token, hash := hermes.NewApprovalToken()
	a := &hermes.Approval{
		ID: id, TokenHash: hash, SessionID: sess.ID, ThreadID: sess.ThreadID, ContainerID: sess.ContainerID,
		ClientID: sess.ClientID, ProjectID: sess.ProjectID, UserID: sess.UserID, PlanJobID: m.JobID,
		Instruction: r.instructionOf(ctx, sess.ID, m.JobID), Plan: m.Summary, Reply: m.Reply,
		CreatedAt: now, ExpiresAt: now.Add(ttl),
	}
	if _, err := r.Store.PutApproval(ctx, a); err != nil {
		if hermes.IsKind(err, hermes.Conflict) {
			// Decided already (by a reply, in the moment before this
			// redelivery): the plan goes out without a link.
			r.log().WarnContext(ctx, "relay: the plan's approval is decided already; its reply has no link", "approval_id", id)
			return "", nil
		}
		return "", fmt.Errorf("relay: storing the plan's approval: %w", err)
	}
	return r.approvalLink(token), nil
}

// approvalLink is the approval page of a token, or "" without a public URL.
func (r *Results) approvalLink(token string) string {
	if r.PublicURL == "" {
		return ""
	}
	return strings.TrimRight(r.PublicURL, "/") + hermes.ApprovalPath(token)
}

// instructionOf returns the instruction of a job as the router recorded it
// in the session's history (the entry's id is the job's), or "".
func (r *Results) instructionOf(ctx context.Context, sessionID, jobID string) string {
	hs, err := r.Store.ListHistory(ctx, sessionID)
	if err == nil {
		for _, h := range hs {
			if h.ID == jobID && h.Direction == hermes.DirectionIn {
				return h.Text
			}
		}
	}
	r.log().WarnContext(ctx, "relay: the plan's instruction is not in the session's history; the execute job will carry the plan alone", "err", err)
	return ""
}

// syncApprovalToken makes the approval hold the hash of the token in the
// reply stored under replyID, when that reply is another handler's (it
// queued the same result's reply first, with its own token).
func (r *Results) syncApprovalToken(ctx context.Context, replyID, approvalID, link string) error {
	it, err := r.Store.GetOutbox(ctx, replyID)
	if err != nil {
		return fmt.Errorf("relay: reading the plan's reply: %w", err)
	}
	stored := approvalTokenIn(it.Text)
	if stored == "" || strings.HasSuffix(link, hermes.ApprovalPath(stored)) {
		return nil
	}
	a, err := r.Store.GetApproval(ctx, approvalID)
	if err != nil {
		return fmt.Errorf("relay: reading the plan's approval: %w", err)
	}
	a.TokenHash = hermes.HashApprovalToken(stored)
	if _, err := r.Store.PutApproval(ctx, a); err != nil && !hermes.IsKind(err, hermes.Conflict) {
		return fmt.Errorf("relay: syncing the plan's approval token: %w", err)
	}
	return nil
}

// approvalTokenIn returns the token of the first approval link in text.
func approvalTokenIn(text string) string {
	const marker = "/approvals/"
	i := strings.Index(text, marker)
	if i < 0 || len(text) < i+len(marker)+hermes.ApprovalTokenLen {
		return ""
	}
	if tok := text[i+len(marker) : i+len(marker)+hermes.ApprovalTokenLen]; hermes.ValidApprovalToken(tok) {
		return tok
	}
	return ""
}
