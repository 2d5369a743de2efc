package hermestest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

// The contract of hermes.Approvals (store.go).

// newApproval returns a pending approval of a plan job on th, created at
// created and expiring a day later, with a fresh token hash.
func newApproval(th *hermes.Thread, created time.Time) *hermes.Approval {
	_, hash := hermes.NewApprovalToken()
	planJob := hermes.NewToken()
	return &hermes.Approval{
		ID:          hermes.ApprovalIDFor(planJob),
		TokenHash:   hash,
		SessionID:   hermes.NewToken(),
		ThreadID:    th.ID,
		ContainerID: hermes.ContainerID(th.ClientID, th.ProjectID, th.UserID),
		ClientID:    th.ClientID,
		ProjectID:   th.ProjectID,
		UserID:      th.UserID,
		PlanJobID:   planJob,
		Instruction: "Delete the whole blog",
		Plan:        "1. Remove src/pages/blog/\n2. Drop the blog link from the menu\n<script>not markup</script>",
		Reply: hermes.ReplyContext{
			Channel: hermes.ChannelEmail, To: "owner@example.com", From: "edit@site.example.com",
			Subject: "Blog", MessageID: "a1@mail.example.com", References: []string{"r0@mail.example.com", "r1@mail.example.com"},
			Token: "abcdefgh",
		},
		Status:    hermes.ApprovalPending,
		CreatedAt: created,
		ExpiresAt: created.Add(24 * time.Hour),
	}
}

func cloneApprovalValue(a *hermes.Approval) *hermes.Approval {
	x := *a
	x.Reply.References = append([]string(nil), a.Reply.References...)
	if a.DecidedAt != nil {
		t := *a.DecidedAt
		x.DecidedAt = &t
	}
	if a.DoneAt != nil {
		t := *a.DoneAt
		x.DoneAt = &t
	}
	return &x
}

// putApproval stores a and returns what the store must hold.
func (e *env) putApproval(a *hermes.Approval) *hermes.Approval {
	e.t.Helper()
	got, err := e.s.PutApproval(e.ctx, cloneApprovalValue(a))
	e.must("PutApproval", err)
	want := cloneApprovalValue(a)
	want.Status, want.Version = hermes.ApprovalPending, 1
	checkEqual(e.t, "PutApproval's result", got, want)
	return want
}

func (e *env) wantApproval(what string, id string, want *hermes.Approval) {
	e.t.Helper()
	got, err := e.s.GetApproval(e.ctx, id)
	if err != nil {
		e.t.Errorf("%s: GetApproval: %v", what, err)
		return
	}
	checkEqual(e.t, what, got, want)
}

func ptr(t time.Time) *time.Time { return &t }

func (x *suite) testApprovals(t *testing.T) {
	t.Run("PutGet", func(t *testing.T) {
		e := x.open(t)
		th := e.thread(e.world("acme"), Base)
		a := newApproval(th, at(time.Minute+1500*time.Microsecond)) // sub-millisecond part: stores keep milliseconds
		// A caller's status, decision and version are not taken.
		in := cloneApprovalValue(a)
		in.Status, in.DecidedAt, in.DecidedVia, in.DoneAt, in.Version = hermes.ApprovalApproved, ptr(at(time.Hour)), hermes.ViaPage, ptr(at(time.Hour)), 7
		got, err := e.s.PutApproval(e.ctx, in)
		e.must("PutApproval", err)
		want := cloneApprovalValue(a)
		want.CreatedAt, want.ExpiresAt = want.CreatedAt.Truncate(time.Millisecond), want.ExpiresAt.Truncate(time.Millisecond)
		want.Version = 1
		checkEqual(t, "PutApproval's result", got, want)
		e.wantApproval("GetApproval", a.ID, want)
		byHash, err := e.s.ApprovalByTokenHash(e.ctx, a.TokenHash)
		e.must("ApprovalByTokenHash", err)
		checkEqual(t, "ApprovalByTokenHash", byHash, want)

		_, err = e.s.GetApproval(e.ctx, hermes.ApprovalIDFor("nosuchjob"))
		wantKind(t, "GetApproval of an unknown id", err, hermes.NotFound)
		_, other := hermes.NewApprovalToken()
		_, err = e.s.ApprovalByTokenHash(e.ctx, other)
		wantKind(t, "ApprovalByTokenHash of an unknown hash", err, hermes.NotFound)

		orphan := newApproval(newThread("acme", "site", "owner", Base), Base)
		_, err = e.s.PutApproval(e.ctx, orphan)
		wantKind(t, "PutApproval for a thread that does not exist", err, hermes.NotFound)
		_, err = e.s.GetApproval(e.ctx, orphan.ID)
		wantKind(t, "GetApproval after a failed PutApproval", err, hermes.NotFound)
	})

	t.Run("Rotate", func(t *testing.T) {
		e := x.open(t)
		th := e.thread(e.world("acme"), Base)
		a := newApproval(th, Base)
		want := e.putApproval(a)

		again := newApproval(th, at(time.Hour)) // another delivery of the same plan result
		again.ID, again.PlanJobID, again.SessionID = a.ID, a.PlanJobID, a.SessionID
		again.Plan, again.Instruction = "A newer wording of the plan", "not the instruction"
		got, err := e.s.PutApproval(e.ctx, cloneApprovalValue(again))
		e.must("PutApproval again", err)
		want.TokenHash, want.Plan, want.ExpiresAt, want.Version = again.TokenHash, again.Plan, again.ExpiresAt, 2
		checkEqual(t, "PutApproval's result (rotated)", got, want)
		e.wantApproval("GetApproval after the rotation", a.ID, want)
		_, err = e.s.ApprovalByTokenHash(e.ctx, a.TokenHash)
		wantKind(t, "ApprovalByTokenHash of the replaced hash", err, hermes.NotFound)
		byHash, err := e.s.ApprovalByTokenHash(e.ctx, again.TokenHash)
		e.must("ApprovalByTokenHash of the new hash", err)
		checkEqual(t, "ApprovalByTokenHash of the new hash", byHash, want)

		// Once decided, it is never replaced.
		_, err = e.s.DecideApproval(e.ctx, a.ID, hermes.ApprovalRejected, hermes.ViaReply, at(2*time.Hour))
		e.must("DecideApproval", err)
		decided, err := e.s.GetApproval(e.ctx, a.ID)
		e.must("GetApproval", err)
		third := cloneApprovalValue(again)
		_, third.TokenHash = hermes.NewApprovalToken()
		_, err = e.s.PutApproval(e.ctx, third)
		wantKind(t, "PutApproval of a decided approval", err, hermes.Conflict)
		e.wantApproval("GetApproval after the refused PutApproval", a.ID, decided)
	})

	t.Run("TokenHashUnique", func(t *testing.T) {
		e := x.open(t)
		th := e.thread(e.world("acme"), Base)
		a := e.putApproval(newApproval(th, Base))
		b := newApproval(th, at(time.Minute))
		b.TokenHash = a.TokenHash
		_, err := e.s.PutApproval(e.ctx, b)
		wantKind(t, "PutApproval with another approval's token hash", err, hermes.Conflict)
		_, err = e.s.GetApproval(e.ctx, b.ID)
		wantKind(t, "GetApproval of the refused approval", err, hermes.NotFound)
		e.wantApproval("the first approval", a.ID, a)

		// Rotating onto another approval's hash is refused too.
		c := e.putApproval(newApproval(th, at(2*time.Minute)))
		rot := cloneApprovalValue(c)
		rot.TokenHash = a.TokenHash
		_, err = e.s.PutApproval(e.ctx, rot)
		wantKind(t, "rotating onto another approval's token hash", err, hermes.Conflict)
		e.wantApproval("the approval whose rotation was refused", c.ID, c)
	})

	t.Run("Latest", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		th, other, empty := e.thread(o, Base), e.thread(o, Base), e.thread(o, Base)
		older := e.putApproval(newApproval(th, at(time.Minute)))
		// Two at the same instant: the larger id is the newer.
		t1, t2 := newApproval(th, at(time.Hour)), newApproval(th, at(time.Hour))
		if t1.ID > t2.ID {
			t1, t2 = t2, t1
		}
		e.putApproval(t1)
		newest := e.putApproval(t2)
		e.putApproval(newApproval(other, at(2*time.Hour))) // another thread's newer approval
		got, err := e.s.LatestApproval(e.ctx, th.ID)
		e.must("LatestApproval", err)
		checkEqual(t, "LatestApproval", got, newest)

		// Whatever its status.
		_, err = e.s.DecideApproval(e.ctx, newest.ID, hermes.ApprovalApproved, hermes.ViaPage, at(90*time.Minute))
		e.must("DecideApproval", err)
		got, err = e.s.LatestApproval(e.ctx, th.ID)
		e.must("LatestApproval", err)
		if got.ID != newest.ID || got.Status != hermes.ApprovalApproved {
			t.Errorf("LatestApproval after deciding it = %s (%s), want %s (approved)", got.ID, got.Status, newest.ID)
		}
		if got.ID == older.ID {
			t.Errorf("LatestApproval returned the oldest approval")
		}
		_, err = e.s.LatestApproval(e.ctx, empty.ID)
		wantKind(t, "LatestApproval of a thread without approvals", err, hermes.NotFound)
	})

	t.Run("Decide", func(t *testing.T) {
		e := x.open(t)
		th := e.thread(e.world("acme"), Base)
		a := e.putApproval(newApproval(th, Base))
		now := at(time.Hour + 1500*time.Microsecond)
		got, err := e.s.DecideApproval(e.ctx, a.ID, hermes.ApprovalApproved, hermes.ViaPage, now)
		e.must("DecideApproval", err)
		want := cloneApprovalValue(a)
		want.Status, want.DecidedAt, want.DecidedVia, want.Version = hermes.ApprovalApproved, ptr(now.Truncate(time.Millisecond)), hermes.ViaPage, 2
		checkEqual(t, "DecideApproval's result", got, want)
		e.wantApproval("GetApproval after approving", a.ID, want)

		for _, st := range []hermes.ApprovalStatus{hermes.ApprovalApproved, hermes.ApprovalRejected} {
			_, err = e.s.DecideApproval(e.ctx, a.ID, st, hermes.ViaReply, at(2*time.Hour))
			wantKind(t, "DecideApproval "+string(st)+" of an approved approval", err, hermes.Conflict)
		}
		_, err = e.s.DecideApproval(e.ctx, a.ID, hermes.ApprovalExpired, "", at(48*time.Hour))
		wantKind(t, "DecideApproval expired of an approved approval", err, hermes.Conflict)
		e.wantApproval("GetApproval after refused decisions", a.ID, want)

		b := e.putApproval(newApproval(th, at(time.Minute)))
		for _, st := range []hermes.ApprovalStatus{hermes.ApprovalPending, "maybe", ""} {
			_, err = e.s.DecideApproval(e.ctx, b.ID, st, hermes.ViaPage, at(time.Hour))
			wantKind(t, fmt.Sprintf("DecideApproval %q", st), err, hermes.Invalid)
		}
		got, err = e.s.DecideApproval(e.ctx, b.ID, hermes.ApprovalRejected, hermes.ViaReply, at(time.Hour))
		e.must("DecideApproval rejected", err)
		if got.Status != hermes.ApprovalRejected || got.DecidedVia != hermes.ViaReply || got.DecidedAt == nil || !got.DecidedAt.Equal(at(time.Hour)) {
			t.Errorf("rejected approval = %s via %q at %v", got.Status, got.DecidedVia, got.DecidedAt)
		}

		_, err = e.s.DecideApproval(e.ctx, hermes.ApprovalIDFor("nosuchjob"), hermes.ApprovalApproved, hermes.ViaPage, at(time.Hour))
		wantKind(t, "DecideApproval of an unknown approval", err, hermes.NotFound)
	})

	t.Run("Expiry", func(t *testing.T) {
		e := x.open(t)
		th := e.thread(e.world("acme"), Base)
		a := e.putApproval(newApproval(th, Base)) // expires at Base+24h
		_, err := e.s.DecideApproval(e.ctx, a.ID, hermes.ApprovalExpired, "", a.ExpiresAt.Add(-time.Millisecond))
		wantKind(t, "DecideApproval expired before ExpiresAt", err, hermes.Invalid)
		for _, st := range []hermes.ApprovalStatus{hermes.ApprovalApproved, hermes.ApprovalRejected} {
			_, err = e.s.DecideApproval(e.ctx, a.ID, st, hermes.ViaPage, a.ExpiresAt) // ExpiresAt <= now
			wantKind(t, "DecideApproval "+string(st)+" at ExpiresAt", err, hermes.Conflict)
		}
		e.wantApproval("an expired approval that was refused decisions", a.ID, a)
		if !a.Expired(a.ExpiresAt) || a.Expired(a.ExpiresAt.Add(-time.Millisecond)) {
			t.Errorf("Approval.Expired disagrees with ExpiresAt")
		}

		got, err := e.s.DecideApproval(e.ctx, a.ID, hermes.ApprovalExpired, "", a.ExpiresAt)
		e.must("DecideApproval expired", err)
		if got.Status != hermes.ApprovalExpired || got.Version != 2 {
			t.Errorf("expired approval = %s version %d", got.Status, got.Version)
		}
		_, err = e.s.DecideApproval(e.ctx, a.ID, hermes.ApprovalApproved, hermes.ViaPage, a.ExpiresAt.Add(-time.Hour))
		wantKind(t, "DecideApproval of an expired approval", err, hermes.Conflict)

		// Just before ExpiresAt, it can still be approved.
		b := e.putApproval(newApproval(th, at(time.Minute)))
		_, err = e.s.DecideApproval(e.ctx, b.ID, hermes.ApprovalApproved, hermes.ViaPage, b.ExpiresAt.Add(-time.Millisecond))
		e.must("DecideApproval a millisecond before ExpiresAt", err)
	})

	t.Run("Complete", func(t *testing.T) {
		e := x.open(t)
		th := e.thread(e.world("acme"), Base)
		a := e.putApproval(newApproval(th, Base))
		wantKind(t, "CompleteApproval of a pending approval", e.s.CompleteApproval(e.ctx, a.ID, at(time.Hour)), hermes.Conflict)
		decided, err := e.s.DecideApproval(e.ctx, a.ID, hermes.ApprovalApproved, hermes.ViaReply, at(time.Hour))
		e.must("DecideApproval", err)
		if decided.DoneAt != nil {
			t.Errorf("a decided approval has DoneAt %v before CompleteApproval", decided.DoneAt)
		}
		e.must("CompleteApproval", e.s.CompleteApproval(e.ctx, a.ID, at(time.Hour+time.Second)))
		want := cloneApprovalValue(decided)
		want.DoneAt, want.Version = ptr(at(time.Hour+time.Second)), decided.Version+1
		e.wantApproval("GetApproval after CompleteApproval", a.ID, want)
		e.must("CompleteApproval again", e.s.CompleteApproval(e.ctx, a.ID, at(2*time.Hour)))
		e.wantApproval("GetApproval after a second CompleteApproval", a.ID, want)

		b := e.putApproval(newApproval(th, at(time.Minute)))
		_, err = e.s.DecideApproval(e.ctx, b.ID, hermes.ApprovalExpired, "", b.ExpiresAt)
		e.must("DecideApproval expired", err)
		wantKind(t, "CompleteApproval of an expired approval", e.s.CompleteApproval(e.ctx, b.ID, b.ExpiresAt), hermes.Conflict)
		wantKind(t, "CompleteApproval of an unknown approval", e.s.CompleteApproval(e.ctx, hermes.ApprovalIDFor("nosuchjob"), Base), hermes.NotFound)
	})

	t.Run("ConcurrentDecide", func(t *testing.T) {
		e := x.open(t)
		th := e.thread(e.world("acme"), Base)
		a := e.putApproval(newApproval(th, Base))
		stores := e.handles()
		var wins atomic.Int32
		var winner atomic.Value
		race(20, func(i int) {
			st := hermes.ApprovalApproved
			if i%2 == 1 {
				st = hermes.ApprovalRejected
			}
			_, err := stores[i%len(stores)].DecideApproval(e.ctx, a.ID, st, hermes.ViaPage, at(time.Hour))
			switch {
			case err == nil:
				wins.Add(1)
				winner.Store(st)
			case !hermes.IsKind(err, hermes.Conflict):
				t.Errorf("DecideApproval %d: %v (want nil or Conflict)", i, err)
			}
		})
		if n := wins.Load(); n != 1 {
			t.Fatalf("%d concurrent decisions won, want exactly 1", n)
		}
		got, err := e.s.GetApproval(e.ctx, a.ID)
		e.must("GetApproval", err)
		if got.Status != winner.Load().(hermes.ApprovalStatus) || got.Version != 2 {
			t.Errorf("stored approval is %s version %d; the winner decided %s", got.Status, got.Version, winner.Load())
		}
	})

	t.Run("GoWithTheirClient", func(t *testing.T) {
		e := x.open(t)
		a := e.putApproval(newApproval(e.thread(e.world("acme"), Base), Base))
		b := e.putApproval(newApproval(e.thread(e.world("globex"), Base), Base))
		e.must("DeleteClient", e.s.DeleteClient(e.ctx, "acme"))
		_, err := e.s.GetApproval(e.ctx, a.ID)
		wantKind(t, "GetApproval of a deleted client's approval", err, hermes.NotFound)
		_, err = e.s.ApprovalByTokenHash(e.ctx, a.TokenHash)
		wantKind(t, "ApprovalByTokenHash of a deleted client's approval", err, hermes.NotFound)
		e.wantApproval("another client's approval", b.ID, b)
	})

	t.Run("Copies", func(t *testing.T) {
		e := x.open(t)
		th := e.thread(e.world("acme"), Base)
		a := newApproval(th, Base)
		in := cloneApprovalValue(a)
		got, err := e.s.PutApproval(e.ctx, in)
		e.must("PutApproval", err)
		want := e.putApproval(newApproval(th, at(time.Minute))) // unrelated; checks nothing leaks between them
		in.Plan, in.Reply.References[0] = "changed by the caller", "changed@example.com"
		got.Plan, got.Reply.References[1] = "changed by the caller", "changed@example.com"
		stored := cloneApprovalValue(a)
		stored.Version = 1
		e.wantApproval("the approval after its caller changed the objects", a.ID, stored)
		e.wantApproval("the other approval", want.ID, want)
	})

	t.Run("CancelledContext", func(t *testing.T) {
		e := x.open(t)
		th := e.thread(e.world("acme"), Base)
		a := e.putApproval(newApproval(th, Base))
		ctx, cancel := context.WithCancel(e.ctx)
		cancel()
		for name, call := range map[string]func() error{
			"PutApproval":         func() error { _, err := e.s.PutApproval(ctx, newApproval(th, Base)); return err },
			"GetApproval":         func() error { _, err := e.s.GetApproval(ctx, a.ID); return err },
			"ApprovalByTokenHash": func() error { _, err := e.s.ApprovalByTokenHash(ctx, a.TokenHash); return err },
			"LatestApproval":      func() error { _, err := e.s.LatestApproval(ctx, th.ID); return err },
			"DecideApproval": func() error {
				_, err := e.s.DecideApproval(ctx, a.ID, hermes.ApprovalApproved, hermes.ViaPage, at(time.Hour))
				return err
			},
			"CompleteApproval": func() error { return e.s.CompleteApproval(ctx, a.ID, at(time.Hour)) },
		} {
			if err := call(); err == nil {
				t.Errorf("%s with a cancelled context: no error", name)
			}
		}
		e.wantApproval("the approval after cancelled calls", a.ID, a)
	})
}
