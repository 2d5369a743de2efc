package hermestest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

// This file holds the contract of the store methods that route inbound
// messages and deliver replies: thread lookups (conversation tokens,
// references, the latest thread of a user), Intake, Outbox and Containers.
// StoreSuite runs its groups with the others.
//
// Where the contract leaves something open, the suite does not test it:
// the exact instant a lease ends (a claim held until now+lease is checked
// 1 ms before and 1 ms after), how ties are ordered, and what claiming does
// to an outbox item's NextAttemptAt (an adapter may keep the claim there).

// ---------------------------------------------------------------------------
// Fixtures

// newConvToken returns a conversation token: 8 lowercase base32 characters.
func newConvToken() string { return hermes.NewToken()[:8] }

// threadWith stores a thread of o with the token (none when "") created at
// created and last updated at updated, and returns what the store must hold.
func (e *env) threadWith(o owner, token string, created, updated time.Time) *hermes.Thread {
	e.t.Helper()
	th := newThread(o.client, o.project, o.user, created)
	th.Token, th.UpdatedAt = token, updated
	e.must("CreateThread", e.s.CreateThread(e.ctx, cloneThread(th)))
	return th
}

// wantThread checks that a lookup found want (or, when want is nil, that it
// failed with NotFound).
func wantThread(t testing.TB, what string, got *hermes.Thread, err error, want *hermes.Thread) {
	t.Helper()
	if want == nil {
		wantKind(t, what, err, hermes.NotFound)
		return
	}
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if got == nil {
		t.Errorf("%s: got a nil thread and no error", what)
		return
	}
	if got.ID != want.ID {
		t.Errorf("%s: got thread %s (updated %s), want %s (updated %s)", what, got.ID, got.UpdatedAt.Format(time.RFC3339Nano), want.ID, want.UpdatedAt.Format(time.RFC3339Nano))
		return
	}
	checkEqual(t, what, got, want)
}

func (e *env) wantByToken(token string, want *hermes.Thread) {
	e.t.Helper()
	got, err := e.s.ThreadByToken(e.ctx, token)
	wantThread(e.t, fmt.Sprintf("ThreadByToken(%q)", token), got, err, want)
}

func (e *env) wantByRef(ref string, want *hermes.Thread) {
	e.t.Helper()
	got, err := e.s.ThreadByRef(e.ctx, ref)
	wantThread(e.t, fmt.Sprintf("ThreadByRef(%q)", ref), got, err, want)
}

func (e *env) wantLatest(o owner, want *hermes.Thread) {
	e.t.Helper()
	got, err := e.s.LatestThread(e.ctx, o.client, o.project, o.user)
	wantThread(e.t, fmt.Sprintf("LatestThread(%s, %s, %s)", o.client, o.project, o.user), got, err, want)
}

// newOutboxItem returns a pending email reply with every field set: HTML,
// headers and a raw message with CRLFs, a NUL, bytes that are not UTF-8 and
// trailing blanks, which must come back byte for byte.
func newOutboxItem(created, due time.Time) *hermes.OutboxItem {
	id := hermes.NewToken()
	return &hermes.OutboxItem{
		ID:            id,
		Channel:       hermes.ChannelEmail,
		To:            "ann@example.com",
		From:          "edit@site.acme.example.com",
		Subject:       "Re: Please change the opening hours [#abcd2345]",
		Text:          "Done: the opening hours are 9–5.\n\nPreview: https://preview.example.com/x/\n",
		HTML:          "<p>Done: the opening hours are 9&ndash;5.</p>",
		Kind:          hermes.KindResult,
		Status:        hermes.OutboxPending,
		NextAttemptAt: due,
		ThreadID:      hermes.NewToken(),
		SessionID:     hermes.NewToken(),
		ClientID:      "acme",
		CreatedAt:     created,
		Headers: map[string]string{
			"Message-ID":  "<" + id + "@hermes.example.com>",
			"In-Reply-To": "<CAF1=abc@mail.example.com>",
			"References":  "<first@mail.example.com> <CAF1=abc@mail.example.com>",
		},
		Raw: []byte("Message-ID: <" + id + "@hermes.example.com>\r\nSubject: =?utf-8?q?Re=3A_caf=C3=A9?=\r\n\r\nDone.\x00\xff\xfe\x80 \t \r\n.\r\n"),
	}
}

// newSMSItem returns a pending SMS reply with only the required fields.
func newSMSItem(created, due time.Time) *hermes.OutboxItem {
	return &hermes.OutboxItem{
		ID:            hermes.NewToken(),
		Channel:       hermes.ChannelSMS,
		To:            "+15550100002",
		Text:          "On it.",
		Kind:          hermes.KindAck,
		Status:        hermes.OutboxPending,
		NextAttemptAt: due,
		ThreadID:      hermes.NewToken(),
		ClientID:      "globex",
		CreatedAt:     created,
	}
}

func cloneOutbox(it *hermes.OutboxItem) *hermes.OutboxItem {
	x := *it
	if it.SentAt != nil {
		s := *it.SentAt
		x.SentAt = &s
	}
	if it.Headers != nil {
		x.Headers = make(map[string]string, len(it.Headers))
		for k, v := range it.Headers {
			x.Headers[k] = v
		}
	}
	x.Raw = bytes.Clone(it.Raw)
	return &x
}

func cloneOutboxes(items []*hermes.OutboxItem) []*hermes.OutboxItem {
	out := make([]*hermes.OutboxItem, len(items))
	for i, it := range items {
		out[i] = cloneOutbox(it)
	}
	return out
}

// enqueue stores items and returns what the store must hold.
func (e *env) enqueue(items ...*hermes.OutboxItem) {
	e.t.Helper()
	e.must("EnqueueOutbox", e.s.EnqueueOutbox(e.ctx, cloneOutboxes(items)...))
}

func (e *env) getOutbox(id string) *hermes.OutboxItem {
	e.t.Helper()
	it, err := e.s.GetOutbox(e.ctx, id)
	e.must("GetOutbox "+id, err)
	if it == nil {
		e.t.Fatalf("GetOutbox %s: got nil and no error", id)
	}
	return it
}

// withoutDue returns copies of items whose NextAttemptAt is zero, for
// comparisons after a claim: the contract does not say whether a claim
// shows in NextAttemptAt.
func withoutDue(items ...*hermes.OutboxItem) []*hermes.OutboxItem {
	out := cloneOutboxes(items)
	for _, it := range out {
		it.NextAttemptAt = time.Time{}
	}
	return out
}

func outboxIDs(items []*hermes.OutboxItem) []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = fmt.Sprintf("%s(created %s, due %s, %s)", it.ID[:6], it.CreatedAt.Format("15:04:05.000"), it.NextAttemptAt.Format("15:04:05.000"), it.Status)
	}
	return ids
}

// checkItems checks that got holds want's items in want's order; when
// ignoreDue, NextAttemptAt is not compared.
func checkItems(t testing.TB, what string, got, want []*hermes.OutboxItem, ignoreDue bool) {
	t.Helper()
	if len(got) != len(want) || !slices.EqualFunc(got, want, func(a, b *hermes.OutboxItem) bool { return a.ID == b.ID }) {
		t.Errorf("%s: got items\n  %v\nwant\n  %v", what, outboxIDs(got), outboxIDs(want))
		return
	}
	if ignoreDue {
		got, want = withoutDue(got...), withoutDue(want...)
	}
	checkEqual(t, what, got, want)
}

// claim calls ClaimOutbox on s and fails the test on an error.
func (e *env) claim(s hermes.Store, now time.Time, lease time.Duration, limit int) []*hermes.OutboxItem {
	e.t.Helper()
	got, err := s.ClaimOutbox(e.ctx, now, lease, limit)
	e.must(fmt.Sprintf("ClaimOutbox(%s, %s, %d)", now.Format(time.RFC3339Nano), lease, limit), err)
	if len(got) > limit {
		e.t.Errorf("ClaimOutbox with limit %d handed out %d items", limit, len(got))
	}
	return got
}

// listOutboxAll pages through ListOutbox and returns every item it gave.
// Pages may be shorter than limit but never longer, and the listing must
// end with a "" cursor.
func (e *env) listOutboxAll(status hermes.OutboxStatus, limit int) []*hermes.OutboxItem {
	e.t.Helper()
	var all []*hermes.OutboxItem
	cursor := ""
	for page := 0; page < 100; page++ {
		got, next, err := e.s.ListOutbox(e.ctx, status, limit, cursor)
		if err != nil {
			e.t.Fatalf("ListOutbox(%q, %d) page %d: %v", status, limit, page, err)
		}
		if len(got) > limit {
			e.t.Errorf("ListOutbox(%q, %d) page %d: got %d items, more than the limit", status, limit, page, len(got))
		}
		all = append(all, got...)
		if next == "" {
			return all
		}
		if next == cursor {
			e.t.Fatalf("ListOutbox(%q, %d) page %d returned the cursor it was given", status, limit, page)
		}
		cursor = next
	}
	e.t.Fatalf("ListOutbox(%q, %d): no empty cursor after 100 pages", status, limit)
	return nil
}

func newContainer(o owner, created time.Time) *hermes.Container {
	id := hermes.ContainerID(o.client, o.project, o.user)
	hb := created.Add(30 * time.Second)
	return &hermes.Container{
		ID:            id,
		ClientID:      o.client,
		ProjectID:     o.project,
		UserID:        o.user,
		Status:        hermes.ContainerStarting,
		Detail:        "pulling image",
		Queues:        hermes.QueueSetFor("webordinary-", id),
		LastHeartbeat: &hb,
		CreatedAt:     created,
		UpdatedAt:     created.Add(time.Minute),
	}
}

func cloneContainer(c *hermes.Container) *hermes.Container {
	x := *c
	if c.LastHeartbeat != nil {
		hb := *c.LastHeartbeat
		x.LastHeartbeat = &hb
	}
	if c.StartedAt != nil {
		st := *c.StartedAt
		x.StartedAt = &st
	}
	return &x
}

// ensure stores c and returns what the store must hold (with the Version
// the store gave it, which must be set).
func (e *env) ensure(c *hermes.Container) *hermes.Container {
	e.t.Helper()
	got, err := e.s.EnsureContainer(e.ctx, cloneContainer(c))
	e.must("EnsureContainer "+c.ID, err)
	if got == nil {
		e.t.Fatalf("EnsureContainer %s: got nil and no error", c.ID)
	}
	if got.Version <= 0 {
		e.t.Errorf("EnsureContainer %s of a new container: Version %d, want it set (positive)", c.ID, got.Version)
	}
	want := cloneContainer(c)
	want.Version = got.Version
	checkEqual(e.t, "EnsureContainer's result for a new container", got, want)
	return want
}

// ---------------------------------------------------------------------------
// Threads: conversation tokens, references, the latest thread

func (x *suite) testThreadLookup(t *testing.T) {
	t.Run("TokenRoundTrip", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		th := e.threadWith(o, newConvToken(), at(time.Second), at(time.Minute))
		other := e.threadWith(o, newConvToken(), at(time.Second), at(time.Minute))
		got, err := e.s.GetThread(e.ctx, th.ID)
		e.must("GetThread", err)
		checkEqual(t, "GetThread of a thread with a token", got, th)
		e.wantByToken(th.Token, th)
		e.wantByToken(other.Token, other)
	})
	t.Run("TokenUnknown", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		e.wantByToken(newConvToken(), nil)
		th := e.threadWith(o, newConvToken(), Base, Base)
		e.threadWith(o, "", Base, Base)
		e.wantByToken(newConvToken(), nil)
		// A token is one key, not a prefix or a pattern.
		e.wantByToken(th.Token[:7], nil)
		e.wantByToken(th.Token+"a", nil)
	})
	t.Run("TokenDuplicate", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		first := e.threadWith(o, newConvToken(), Base, at(time.Minute))
		dup := newThread(o.client, o.project, o.user, at(time.Hour))
		dup.Token = first.Token
		wantKind(t, "CreateThread with a token another thread holds", e.s.CreateThread(e.ctx, cloneThread(dup)), hermes.Conflict)
		_, err := e.s.GetThread(e.ctx, dup.ID)
		wantKind(t, "GetThread of the refused thread", err, hermes.NotFound)
		e.wantByToken(first.Token, first)
		// The refused thread, the user's newest, must not be the latest.
		e.wantLatest(o, first)
		got, err := e.s.GetThread(e.ctx, first.ID)
		e.must("GetThread", err)
		checkEqual(t, "GetThread of the token's holder after the conflict", got, first)
	})
	t.Run("TokenDuplicateID", func(t *testing.T) {
		// A thread refused for its id leaves its token free.
		e := x.open(t)
		o := e.world("acme")
		th := e.threadWith(o, newConvToken(), Base, Base)
		dup := cloneThread(th)
		dup.Token = newConvToken()
		wantKind(t, "CreateThread of an existing id with a new token", e.s.CreateThread(e.ctx, cloneThread(dup)), hermes.Conflict)
		e.wantByToken(dup.Token, nil)
		e.wantByToken(th.Token, th)
		other := e.threadWith(o, dup.Token, Base, Base)
		e.wantByToken(dup.Token, other)
	})
	t.Run("WithoutToken", func(t *testing.T) {
		// Threads need not have a token; threads without one do not clash.
		e := x.open(t)
		o := e.world("acme")
		a := e.threadWith(o, "", Base, Base)
		b := e.threadWith(o, "", at(time.Second), at(time.Second))
		for _, th := range []*hermes.Thread{a, b} {
			got, err := e.s.GetThread(e.ctx, th.ID)
			e.must("GetThread", err)
			checkEqual(t, "GetThread of a thread without a token", got, th)
		}
	})

	t.Run("RefsRecordAndFind", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		th := e.threadWith(o, newConvToken(), Base, Base)
		other := e.threadWith(o, newConvToken(), Base, Base)
		refs := []string{"<CAF1=abc@mail.example.com>", "<" + th.ID + "@hermes.example.com>", "1700000000.000100"}
		e.must("AddThreadRefs", e.s.AddThreadRefs(e.ctx, th.ID, refs...))
		e.must("AddThreadRefs of the other thread", e.s.AddThreadRefs(e.ctx, other.ID, "<other@mail.example.com>"))
		for _, r := range refs {
			e.wantByRef(r, th)
		}
		e.wantByRef("<other@mail.example.com>", other)
	})
	t.Run("RefsIdempotent", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		th := e.threadWith(o, "", Base, Base)
		e.must("AddThreadRefs", e.s.AddThreadRefs(e.ctx, th.ID, "<a@mail.example.com>", "<b@mail.example.com>"))
		e.must("AddThreadRefs of the same refs again", e.s.AddThreadRefs(e.ctx, th.ID, "<a@mail.example.com>", "<b@mail.example.com>"))
		e.must("AddThreadRefs of an old and a new ref", e.s.AddThreadRefs(e.ctx, th.ID, "<b@mail.example.com>", "<c@mail.example.com>"))
		e.must("AddThreadRefs of one ref", e.s.AddThreadRefs(e.ctx, th.ID, "<c@mail.example.com>"))
		for _, r := range []string{"<a@mail.example.com>", "<b@mail.example.com>", "<c@mail.example.com>"} {
			e.wantByRef(r, th)
		}
	})
	t.Run("RefsFirstThreadKeeps", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		first := e.threadWith(o, "", Base, Base)
		second := e.threadWith(o, "", at(time.Minute), at(time.Minute))
		e.must("AddThreadRefs to the first thread", e.s.AddThreadRefs(e.ctx, first.ID, "<shared@mail.example.com>"))
		e.must("AddThreadRefs to the second thread of a ref the first holds (and a new one)",
			e.s.AddThreadRefs(e.ctx, second.ID, "<shared@mail.example.com>", "<own@mail.example.com>"))
		e.wantByRef("<shared@mail.example.com>", first)
		e.wantByRef("<own@mail.example.com>", second)
		e.must("AddThreadRefs to the second thread of the ref alone",
			e.s.AddThreadRefs(e.ctx, second.ID, "<shared@mail.example.com>"))
		e.wantByRef("<shared@mail.example.com>", first)
	})
	t.Run("RefsUnknownThread", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		wantKind(t, "AddThreadRefs to an unknown thread",
			e.s.AddThreadRefs(e.ctx, hermes.NewToken(), "<lost@mail.example.com>"), hermes.NotFound)
		e.wantByRef("<lost@mail.example.com>", nil)
		// The refused ref is still free.
		th := e.threadWith(o, "", Base, Base)
		e.must("AddThreadRefs", e.s.AddThreadRefs(e.ctx, th.ID, "<lost@mail.example.com>"))
		e.wantByRef("<lost@mail.example.com>", th)
	})
	t.Run("RefsUnknown", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		e.wantByRef("<nobody@mail.example.com>", nil)
		th := e.threadWith(o, "", Base, Base)
		e.must("AddThreadRefs", e.s.AddThreadRefs(e.ctx, th.ID, "<abc@mail.example.com>"))
		e.wantByRef("<nobody@mail.example.com>", nil)
		// A reference is an opaque key: its "<id>" form is the caller's
		// business, and neither a prefix nor the bare id finds it.
		e.wantByRef("abc@mail.example.com", nil)
		e.wantByRef("<abc@mail.example.com", nil)
	})
	t.Run("RefsAndTokensAreSeparate", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		th := e.threadWith(o, newConvToken(), Base, Base)
		e.must("AddThreadRefs", e.s.AddThreadRefs(e.ctx, th.ID, "1700000000.000200"))
		e.wantByRef(th.Token, nil)
		e.wantByToken("1700000000.000200", nil)
		e.wantByRef(th.ID, nil)
		e.wantByToken(th.ID, nil)
	})

	t.Run("LatestByUpdatedAt", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		ann := owner{"acme", "site", "ann"}
		blog := owner{"acme", "blog", "owner"}
		g := e.world("globex")
		e.createUser(newUser("acme", "ann", nil, nil, nil), Base)
		e.createProject(newProject("acme", "blog", nil, nil, nil), Base)
		// a was created first but updated last: UpdatedAt decides.
		a := e.threadWith(o, newConvToken(), at(time.Second), at(10*time.Minute))
		b := e.threadWith(o, newConvToken(), at(5*time.Minute), at(5*time.Minute))
		c := e.threadWith(o, "", at(8*time.Minute), at(8*time.Minute))
		// Newer threads of another user, project or client are not the user's.
		annTh := e.threadWith(ann, "", at(20*time.Minute), at(20*time.Minute))
		blogTh := e.threadWith(blog, "", at(30*time.Minute), at(30*time.Minute))
		gTh := e.threadWith(g, "", at(40*time.Minute), at(40*time.Minute))
		e.wantLatest(o, a)
		e.wantLatest(ann, annTh)
		e.wantLatest(blog, blogTh)
		e.wantLatest(g, gTh)

		e.must("TouchThread b", e.s.TouchThread(e.ctx, b.ID, at(11*time.Minute)))
		b.UpdatedAt = at(11 * time.Minute)
		e.wantLatest(o, b)
		e.must("TouchThread c", e.s.TouchThread(e.ctx, c.ID, at(12*time.Minute)))
		c.UpdatedAt = at(12 * time.Minute)
		e.wantLatest(o, c)
		e.must("TouchThread a", e.s.TouchThread(e.ctx, a.ID, at(13*time.Minute)))
		a.UpdatedAt = at(13 * time.Minute)
		e.wantLatest(o, a)
		e.wantLatest(ann, annTh)
		e.wantLatest(blog, blogTh)
		e.wantLatest(g, gTh)
	})
	t.Run("LatestNotFound", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		e.wantLatest(o, nil)
		e.createUser(newUser("acme", "bob", nil, nil, nil), Base)
		e.createProject(newProject("acme", "blog", nil, nil, nil), Base)
		e.threadWith(o, newConvToken(), Base, at(time.Minute))
		e.wantLatest(owner{"acme", "site", "bob"}, nil)
		e.wantLatest(owner{"acme", "blog", "owner"}, nil)
		e.wantLatest(owner{"globex", "site", "owner"}, nil)
		e.wantLatest(owner{"nobody", "nothing", "nobody"}, nil)
	})
	t.Run("Touch", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		th := e.threadWith(o, newConvToken(), at(time.Second), at(time.Minute))
		other := e.threadWith(o, newConvToken(), at(time.Second), at(time.Minute))
		e.must("AddThreadRefs", e.s.AddThreadRefs(e.ctx, th.ID, "<touch@mail.example.com>"))
		// now in another zone: UpdatedAt comes back as the same instant in UTC.
		zone := time.FixedZone("UTC-7", -7*3600)
		e.must("TouchThread", e.s.TouchThread(e.ctx, th.ID, at(time.Hour).In(zone)))
		th.UpdatedAt = at(time.Hour)
		got, err := e.s.GetThread(e.ctx, th.ID)
		e.must("GetThread", err)
		checkEqual(t, "GetThread after TouchThread (only UpdatedAt changes)", got, th)
		// Every lookup sees the thread as it is now.
		e.wantByToken(th.Token, th)
		e.wantByRef("<touch@mail.example.com>", th)
		e.wantLatest(o, th)
		got, err = e.s.GetThread(e.ctx, other.ID)
		e.must("GetThread", err)
		checkEqual(t, "GetThread of another thread after TouchThread", got, other)
	})
	t.Run("TouchUnknown", func(t *testing.T) {
		e := x.open(t)
		id := hermes.NewToken()
		wantKind(t, "TouchThread of an unknown thread", e.s.TouchThread(e.ctx, id, Base), hermes.NotFound)
		_, err := e.s.GetThread(e.ctx, id)
		wantKind(t, "GetThread after TouchThread of an unknown thread", err, hermes.NotFound)
	})
	t.Run("DeleteClientRemovesLookups", func(t *testing.T) {
		// DeleteClient removes the client's threads: no lookup finds them.
		e := x.open(t)
		oa, og := e.world("acme"), e.world("globex")
		a := e.threadWith(oa, newConvToken(), Base, Base)
		g := e.threadWith(og, newConvToken(), Base, Base)
		e.must("AddThreadRefs", e.s.AddThreadRefs(e.ctx, a.ID, "<acme@mail.example.com>"))
		e.must("AddThreadRefs", e.s.AddThreadRefs(e.ctx, g.ID, "<globex@mail.example.com>"))
		e.must("DeleteClient", e.s.DeleteClient(e.ctx, "acme"))
		_, err := e.s.GetThread(e.ctx, a.ID)
		wantKind(t, "GetThread of a deleted client's thread", err, hermes.NotFound)
		e.wantByToken(a.Token, nil)
		e.wantByRef("<acme@mail.example.com>", nil)
		e.wantLatest(oa, nil)
		e.wantByToken(g.Token, g)
		e.wantByRef("<globex@mail.example.com>", g)
		e.wantLatest(og, g)
	})
	t.Run("CancelledContext", func(t *testing.T) {
		e := x.open(t)
		o := e.world("acme")
		th := e.threadWith(o, newConvToken(), Base, Base)
		e.must("AddThreadRefs", e.s.AddThreadRefs(e.ctx, th.ID, "<r@mail.example.com>"))
		ctx, cancel := context.WithCancel(e.ctx)
		cancel()
		cancelled(t, map[string]func() error{
			"ThreadByToken": func() error { _, err := e.s.ThreadByToken(ctx, th.Token); return err },
			"AddThreadRefs": func() error { return e.s.AddThreadRefs(ctx, th.ID, "<s@mail.example.com>") },
			"ThreadByRef":   func() error { _, err := e.s.ThreadByRef(ctx, "<r@mail.example.com>"); return err },
			"LatestThread":  func() error { _, err := e.s.LatestThread(ctx, o.client, o.project, o.user); return err },
			"TouchThread":   func() error { return e.s.TouchThread(ctx, th.ID, at(time.Hour)) },
		})
	})
}

// cancelled checks that every call fails (its context is cancelled).
func cancelled(t *testing.T, calls map[string]func() error) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(calls)) {
		if err := calls[name](); err == nil {
			t.Errorf("%s with a cancelled context: got no error", name)
		}
	}
}

// ---------------------------------------------------------------------------
// Intake

func (x *suite) testIntake(t *testing.T) {
	const lease = 5 * time.Minute
	t0 := at(time.Minute)
	const msg = "<CAF1=first@mail.example.com>"

	claimOn := func(t *testing.T, e *env, s hermes.Store, channel, id string, now time.Time, want hermes.DedupState) {
		t.Helper()
		got, err := s.ClaimMessage(e.ctx, channel, id, now, lease)
		what := fmt.Sprintf("ClaimMessage(%s, %s) at Base+%s", channel, id, now.Sub(Base))
		if err != nil {
			t.Errorf("%s: %v", what, err)
			return
		}
		if got != want {
			t.Errorf("%s: got %q, want %q", what, got, want)
		}
	}
	claim := func(t *testing.T, e *env, channel, id string, now time.Time, want hermes.DedupState) {
		t.Helper()
		claimOn(t, e, e.s, channel, id, now, want)
	}

	t.Run("ClaimHoldsLease", func(t *testing.T) {
		e := x.open(t)
		hs := e.handles()
		claim(t, e, hermes.ChannelEmail, msg, t0, hermes.DedupNew)
		claim(t, e, hermes.ChannelEmail, msg, t0, hermes.DedupInProgress)
		claim(t, e, hermes.ChannelEmail, msg, t0.Add(time.Second), hermes.DedupInProgress)
		claim(t, e, hermes.ChannelEmail, msg, t0.Add(lease-time.Millisecond), hermes.DedupInProgress)
		for i, s := range hs {
			t.Run(fmt.Sprintf("handle%d", i), func(t *testing.T) {
				claimOn(t, e, s, hermes.ChannelEmail, msg, t0.Add(time.Minute), hermes.DedupInProgress)
			})
		}
		// Another message is not held by this claim.
		claim(t, e, hermes.ChannelEmail, "<CAF1=second@mail.example.com>", t0, hermes.DedupNew)
	})
	t.Run("LeasePasses", func(t *testing.T) {
		e := x.open(t)
		hs := e.handles()
		s2 := hs[len(hs)-1]
		claim(t, e, hermes.ChannelSMS, "SM0123456789abcdef0123456789abcdef", t0, hermes.DedupNew)
		// The handler crashed: once the lease passed, the redelivery is routed.
		t1 := t0.Add(lease + time.Millisecond)
		claimOn(t, e, s2, hermes.ChannelSMS, "SM0123456789abcdef0123456789abcdef", t1, hermes.DedupNew)
		// The new claim holds from t1 on, on both handles.
		claim(t, e, hermes.ChannelSMS, "SM0123456789abcdef0123456789abcdef", t1, hermes.DedupInProgress)
		claimOn(t, e, s2, hermes.ChannelSMS, "SM0123456789abcdef0123456789abcdef", t1.Add(lease-time.Millisecond), hermes.DedupInProgress)
		claim(t, e, hermes.ChannelSMS, "SM0123456789abcdef0123456789abcdef", t1.Add(lease+time.Millisecond), hermes.DedupNew)
	})
	t.Run("LongerLease", func(t *testing.T) {
		// The lease is the caller's: a claim with a longer one holds longer.
		e := x.open(t)
		got, err := e.s.ClaimMessage(e.ctx, hermes.ChannelChat, "Ev01ABCDEF", t0, time.Hour)
		e.must("ClaimMessage", err)
		if got != hermes.DedupNew {
			t.Errorf("ClaimMessage of a new message: got %q, want %q", got, hermes.DedupNew)
		}
		claim(t, e, hermes.ChannelChat, "Ev01ABCDEF", t0.Add(time.Hour-time.Millisecond), hermes.DedupInProgress)
		claim(t, e, hermes.ChannelChat, "Ev01ABCDEF", t0.Add(time.Hour+time.Millisecond), hermes.DedupNew)
	})
	t.Run("Complete", func(t *testing.T) {
		e := x.open(t)
		hs := e.handles()
		claim(t, e, hermes.ChannelEmail, msg, t0, hermes.DedupNew)
		e.must("CompleteMessage", e.s.CompleteMessage(e.ctx, hermes.ChannelEmail, msg, t0.Add(time.Second)))
		claim(t, e, hermes.ChannelEmail, msg, t0.Add(time.Second), hermes.DedupDone)
		// Done outlives the claim's lease.
		claim(t, e, hermes.ChannelEmail, msg, t0.Add(lease+time.Millisecond), hermes.DedupDone)
		claim(t, e, hermes.ChannelEmail, msg, t0.Add(30*24*time.Hour), hermes.DedupDone)
		for i, s := range hs {
			t.Run(fmt.Sprintf("handle%d", i), func(t *testing.T) {
				claimOn(t, e, s, hermes.ChannelEmail, msg, t0.Add(10*lease), hermes.DedupDone)
			})
		}
		// Idempotent, on either handle, at any time.
		e.must("CompleteMessage again", e.s.CompleteMessage(e.ctx, hermes.ChannelEmail, msg, t0.Add(2*time.Second)))
		e.must("CompleteMessage again on the last handle", hs[len(hs)-1].CompleteMessage(e.ctx, hermes.ChannelEmail, msg, t0.Add(lease+time.Hour)))
		claim(t, e, hermes.ChannelEmail, msg, t0.Add(2*lease), hermes.DedupDone)
	})
	t.Run("CompleteAfterLeasePassed", func(t *testing.T) {
		// A slow handler completes after its lease passed: the message is
		// done all the same.
		e := x.open(t)
		claim(t, e, hermes.ChannelEmail, msg, t0, hermes.DedupNew)
		e.must("CompleteMessage after the lease", e.s.CompleteMessage(e.ctx, hermes.ChannelEmail, msg, t0.Add(2*lease)))
		claim(t, e, hermes.ChannelEmail, msg, t0.Add(2*lease), hermes.DedupDone)
		claim(t, e, hermes.ChannelEmail, msg, t0.Add(3*lease), hermes.DedupDone)
	})
	t.Run("CompleteWithoutClaim", func(t *testing.T) {
		// CompleteMessage records the message whether or not it was claimed.
		e := x.open(t)
		e.must("CompleteMessage of a message never claimed", e.s.CompleteMessage(e.ctx, hermes.ChannelAPI, "msg-0001", t0))
		claim(t, e, hermes.ChannelAPI, "msg-0001", t0, hermes.DedupDone)
		claim(t, e, hermes.ChannelAPI, "msg-0001", t0.Add(2*lease), hermes.DedupDone)
	})
	t.Run("Release", func(t *testing.T) {
		e := x.open(t)
		hs := e.handles()
		claim(t, e, hermes.ChannelEmail, msg, t0, hermes.DedupNew)
		e.must("ReleaseMessage", e.s.ReleaseMessage(e.ctx, hermes.ChannelEmail, msg))
		// Routed again at once, well within the released claim's lease.
		claimOn(t, e, hs[len(hs)-1], hermes.ChannelEmail, msg, t0.Add(time.Second), hermes.DedupNew)
		claim(t, e, hermes.ChannelEmail, msg, t0.Add(2*time.Second), hermes.DedupInProgress)
		// Idempotent.
		e.must("ReleaseMessage", e.s.ReleaseMessage(e.ctx, hermes.ChannelEmail, msg))
		e.must("ReleaseMessage again", hs[len(hs)-1].ReleaseMessage(e.ctx, hermes.ChannelEmail, msg))
		claim(t, e, hermes.ChannelEmail, msg, t0.Add(3*time.Second), hermes.DedupNew)
		e.must("CompleteMessage", e.s.CompleteMessage(e.ctx, hermes.ChannelEmail, msg, t0.Add(4*time.Second)))
		claim(t, e, hermes.ChannelEmail, msg, t0.Add(5*time.Second), hermes.DedupDone)
	})
	t.Run("ReleaseUnknown", func(t *testing.T) {
		e := x.open(t)
		e.must("ReleaseMessage of a message never claimed", e.s.ReleaseMessage(e.ctx, hermes.ChannelSMS, "SMffffffffffffffffffffffffffffffff"))
		claim(t, e, hermes.ChannelSMS, "SMffffffffffffffffffffffffffffffff", t0, hermes.DedupNew)
	})
	t.Run("ChannelsAreSeparate", func(t *testing.T) {
		e := x.open(t)
		const id = "0123456789"
		chans := []string{hermes.ChannelEmail, hermes.ChannelSMS, hermes.ChannelChat, hermes.ChannelAPI}
		for _, ch := range chans {
			claim(t, e, ch, id, t0, hermes.DedupNew)
		}
		for _, ch := range chans {
			claim(t, e, ch, id, t0, hermes.DedupInProgress)
		}
		e.must("CompleteMessage on email", e.s.CompleteMessage(e.ctx, hermes.ChannelEmail, id, t0))
		e.must("ReleaseMessage on sms", e.s.ReleaseMessage(e.ctx, hermes.ChannelSMS, id))
		claim(t, e, hermes.ChannelEmail, id, t0.Add(time.Second), hermes.DedupDone)
		claim(t, e, hermes.ChannelSMS, id, t0.Add(time.Second), hermes.DedupNew)
		claim(t, e, hermes.ChannelChat, id, t0.Add(time.Second), hermes.DedupInProgress)
		claim(t, e, hermes.ChannelAPI, id, t0.Add(time.Second), hermes.DedupInProgress)
		// A message id is one key, not a prefix.
		claim(t, e, hermes.ChannelChat, id+"0", t0, hermes.DedupNew)
		claim(t, e, hermes.ChannelChat, id[:9], t0, hermes.DedupNew)
	})
	const n = 20
	raceClaims := func(t *testing.T, e *env, hs []hermes.Store, id string, now time.Time) {
		t.Helper()
		states := make([]hermes.DedupState, n)
		errs := make([]error, n)
		race(n, func(i int) {
			states[i], errs[i] = hs[i%len(hs)].ClaimMessage(e.ctx, hermes.ChannelEmail, id, now, lease)
		})
		winner := -1
		for i := range n {
			switch {
			case errs[i] != nil:
				t.Errorf("claimer %d: %v", i, errs[i])
			case states[i] == hermes.DedupNew && winner >= 0:
				t.Errorf("claimers %d and %d both got %q: the message would be routed twice", winner, i, hermes.DedupNew)
			case states[i] == hermes.DedupNew:
				winner = i
			case states[i] != hermes.DedupInProgress:
				t.Errorf("claimer %d: got %q, want %q (or %q for one claimer)", i, states[i], hermes.DedupInProgress, hermes.DedupNew)
			}
		}
		if winner < 0 {
			t.Errorf("no claimer got %q: the message would never be routed", hermes.DedupNew)
		}
	}
	t.Run("RaceFirstSight", func(t *testing.T) {
		e := x.open(t)
		hs := e.handles()
		raceClaims(t, e, hs, msg, t0)
		claim(t, e, hermes.ChannelEmail, msg, t0.Add(time.Second), hermes.DedupInProgress)
	})
	t.Run("RaceAfterLease", func(t *testing.T) {
		e := x.open(t)
		hs := e.handles()
		claim(t, e, hermes.ChannelEmail, msg, t0, hermes.DedupNew)
		raceClaims(t, e, hs, msg, t0.Add(lease+time.Millisecond))
	})
	t.Run("RaceAfterRelease", func(t *testing.T) {
		e := x.open(t)
		hs := e.handles()
		claim(t, e, hermes.ChannelEmail, msg, t0, hermes.DedupNew)
		e.must("ReleaseMessage", e.s.ReleaseMessage(e.ctx, hermes.ChannelEmail, msg))
		raceClaims(t, e, hs, msg, t0.Add(time.Second))
	})
	t.Run("CancelledContext", func(t *testing.T) {
		e := x.open(t)
		claim(t, e, hermes.ChannelEmail, msg, t0, hermes.DedupNew)
		ctx, cancel := context.WithCancel(e.ctx)
		cancel()
		cancelled(t, map[string]func() error{
			"ClaimMessage": func() error {
				_, err := e.s.ClaimMessage(ctx, hermes.ChannelEmail, "<other@mail.example.com>", t0, lease)
				return err
			},
			"CompleteMessage": func() error { return e.s.CompleteMessage(ctx, hermes.ChannelEmail, msg, t0) },
			"ReleaseMessage":  func() error { return e.s.ReleaseMessage(ctx, hermes.ChannelEmail, msg) },
		})
	})
}

// ---------------------------------------------------------------------------
// Outbox

func (x *suite) testOutbox(t *testing.T) {
	const lease = 2 * time.Minute
	now := at(time.Hour)

	t.Run("RoundTrip", func(t *testing.T) {
		e := x.open(t)
		mail := newOutboxItem(at(time.Second), at(2*time.Second))
		sms := newSMSItem(at(3*time.Second), at(3*time.Second))
		// Times written in another zone come back as the same instant in UTC.
		zone := time.FixedZone("UTC+9", 9*3600)
		zoned := newOutboxItem(at(4*time.Second).In(zone), at(5*time.Second).In(zone))
		zoned.Channel, zoned.Kind, zoned.Headers = hermes.ChannelChat, hermes.KindPlan, map[string]string{"thread": "1700000000.000100", "empty": ""}
		e.enqueue(mail, sms, zoned)
		zoned.CreatedAt, zoned.NextAttemptAt = at(4*time.Second), at(5*time.Second)
		for _, want := range []*hermes.OutboxItem{mail, sms, zoned} {
			got := e.getOutbox(want.ID)
			checkEqual(t, "GetOutbox of a "+want.Channel+" item", got, want)
			if !bytes.Equal(got.Raw, want.Raw) {
				t.Errorf("GetOutbox of a %s item: Raw is %q, want %q byte for byte", want.Channel, got.Raw, want.Raw)
			}
			if got.SentAt != nil {
				t.Errorf("GetOutbox of a new item: SentAt %s, want nil", got.SentAt)
			}
		}
		page, _, err := e.s.ListOutbox(e.ctx, "", 1000, "")
		e.must("ListOutbox", err)
		checkItems(t, "ListOutbox", page, []*hermes.OutboxItem{zoned, sms, mail}, false)
	})
	t.Run("EnqueueIdempotent", func(t *testing.T) {
		e := x.open(t)
		a := newOutboxItem(at(time.Second), now)
		e.enqueue(a)
		again := newOutboxItem(at(time.Minute), now.Add(-time.Minute))
		again.ID, again.Text, again.To = a.ID, "a retried step wrote other text", "bob@example.com"
		b := newSMSItem(at(2*time.Second), now)
		e.must("EnqueueOutbox of the same id again", e.s.EnqueueOutbox(e.ctx, cloneOutbox(again)))
		e.must("EnqueueOutbox of an old and a new item", e.s.EnqueueOutbox(e.ctx, cloneOutbox(again), cloneOutbox(b)))
		checkEqual(t, "GetOutbox after enqueueing the id three times (the first write stays)", e.getOutbox(a.ID), a)
		checkEqual(t, "GetOutbox of the new item enqueued with an old one", e.getOutbox(b.ID), b)
		all := e.listOutboxAll("", 1000)
		checkItems(t, "ListOutbox after the repeated enqueues", all, []*hermes.OutboxItem{b, a}, false)
	})
	t.Run("EnqueueAfterSent", func(t *testing.T) {
		// A retried step enqueues a reply that was sent meanwhile: it is
		// not sent again.
		e := x.open(t)
		a := newOutboxItem(at(time.Second), now)
		e.enqueue(a)
		checkItems(t, "ClaimOutbox", e.claim(e.s, now, lease, 10), []*hermes.OutboxItem{a}, true)
		e.must("FinishOutbox sent", e.s.FinishOutbox(e.ctx, a.ID, hermes.OutboxSent, now.Add(time.Second), time.Time{}, ""))
		e.enqueue(a)
		got := e.getOutbox(a.ID)
		if got.Status != hermes.OutboxSent || got.Attempts != 1 {
			t.Errorf("GetOutbox after enqueueing a sent item again: status %q, %d attempts, want %q, 1", got.Status, got.Attempts, hermes.OutboxSent)
		}
		checkItems(t, "ClaimOutbox after enqueueing a sent item again", e.claim(e.s, now.Add(time.Hour), lease, 10), nil, true)
	})
	t.Run("GetUnknown", func(t *testing.T) {
		e := x.open(t)
		e.enqueue(newSMSItem(Base, Base))
		_, err := e.s.GetOutbox(e.ctx, hermes.NewToken())
		wantKind(t, "GetOutbox of an unknown id", err, hermes.NotFound)
	})

	// outboxSet stores five items created at distinct times, enqueued out of
	// order, and leaves one sent, one failed and three pending; it returns
	// them newest first.
	outboxSet := func(t *testing.T) (*env, []*hermes.OutboxItem) {
		e := x.open(t)
		var items []*hermes.OutboxItem
		for _, d := range []time.Duration{3, 1, 5, 2, 4} {
			it := newOutboxItem(at(d*time.Second), at(d*time.Second))
			if d%2 == 0 {
				it = newSMSItem(at(d*time.Second), at(d*time.Second))
			}
			items = append(items, it)
		}
		e.enqueue(items[:2]...)
		e.enqueue(items[2])
		e.enqueue(items[3:]...)
		slices.SortFunc(items, func(a, b *hermes.OutboxItem) int { return b.CreatedAt.Compare(a.CreatedAt) })
		// items[1] (created at 4s) is sent, items[3] (2s) failed.
		sentAt := at(10 * time.Second)
		for i, st := range map[int]hermes.OutboxStatus{1: hermes.OutboxSent, 3: hermes.OutboxFailed} {
			e.must("FinishOutbox", e.s.FinishOutbox(e.ctx, items[i].ID, st, sentAt, time.Time{}, "x"))
			got := e.getOutbox(items[i].ID)
			items[i].Status, items[i].Attempts, items[i].LastError = st, 1, "x"
			items[i].NextAttemptAt = got.NextAttemptAt // not the contract's business
			if st == hermes.OutboxSent {
				items[i].SentAt = &sentAt
			}
		}
		return e, items
	}
	byStatus := func(items []*hermes.OutboxItem, st hermes.OutboxStatus) []*hermes.OutboxItem {
		var out []*hermes.OutboxItem
		for _, it := range items {
			if st == "" || it.Status == st {
				out = append(out, it)
			}
		}
		return out
	}
	t.Run("ListNewestFirst", func(t *testing.T) {
		e, items := outboxSet(t)
		got, next, err := e.s.ListOutbox(e.ctx, "", 1000, "")
		e.must("ListOutbox", err)
		checkItems(t, "ListOutbox of every item", got, items, false)
		if next != "" {
			t.Errorf("ListOutbox of every item: next cursor %q, want \"\"", next)
		}
	})
	t.Run("ListPaginate", func(t *testing.T) {
		e, items := outboxSet(t)
		checkItems(t, "ListOutbox by pages of 2", e.listOutboxAll("", 2), items, false)
		for _, limit := range []int{1, 3, 4, 5, 6} {
			checkItems(t, fmt.Sprintf("ListOutbox by pages of %d", limit), e.listOutboxAll("", limit), items, false)
		}
		first, next, err := e.s.ListOutbox(e.ctx, "", 2, "")
		e.must("ListOutbox", err)
		if len(first) == 0 || next == "" {
			t.Fatalf("first page of 2 of 5 items: got %d items and cursor %q, want items and a cursor", len(first), next)
		}
		checkItems(t, "first page", first, items[:len(first)], false)
		checkItems(t, "pending items by pages of 2", e.listOutboxAll(hermes.OutboxPending, 2), byStatus(items, hermes.OutboxPending), false)
	})
	t.Run("ListStatusFilter", func(t *testing.T) {
		e, items := outboxSet(t)
		for _, st := range []hermes.OutboxStatus{"", hermes.OutboxPending, hermes.OutboxSent, hermes.OutboxFailed} {
			got, next, err := e.s.ListOutbox(e.ctx, st, 1000, "")
			e.must("ListOutbox", err)
			checkItems(t, fmt.Sprintf("ListOutbox(%q)", st), got, byStatus(items, st), false)
			if next != "" {
				t.Errorf("ListOutbox(%q): next cursor %q, want \"\"", st, next)
			}
			checkItems(t, fmt.Sprintf("ListOutbox(%q) by pages of 1", st), e.listOutboxAll(st, 1), byStatus(items, st), false)
		}
	})
	t.Run("ListTies", func(t *testing.T) {
		// Items created in the same millisecond: pages still hand out each
		// once. Their order among themselves is not the contract's business.
		e := x.open(t)
		var items []*hermes.OutboxItem
		for i := range 7 {
			created := at(2 * time.Second)
			switch i {
			case 0:
				created = at(time.Second)
			case 6:
				created = at(3 * time.Second)
			}
			items = append(items, newSMSItem(created, now))
		}
		e.enqueue(items[3:]...)
		e.enqueue(items[:3]...)
		for _, limit := range []int{1, 2, 3} {
			got := e.listOutboxAll("", limit)
			what := fmt.Sprintf("ListOutbox by pages of %d over items created in the same millisecond", limit)
			if !slices.IsSortedFunc(got, func(a, b *hermes.OutboxItem) int { return b.CreatedAt.Compare(a.CreatedAt) }) {
				t.Errorf("%s: not newest first: %v", what, outboxIDs(got))
			}
			gotIDs := make([]string, len(got))
			for i, it := range got {
				gotIDs[i] = it.ID
			}
			wantIDs := make([]string, len(items))
			for i, it := range items {
				wantIDs[i] = it.ID
			}
			slices.Sort(gotIDs)
			slices.Sort(wantIDs)
			if !slices.Equal(gotIDs, wantIDs) {
				t.Errorf("%s: got %d items %v, want each of the %d once", what, len(got), outboxIDs(got), len(items))
			}
		}
	})
	t.Run("ListEmpty", func(t *testing.T) {
		e := x.open(t)
		got, next, err := e.s.ListOutbox(e.ctx, "", 10, "")
		e.must("ListOutbox of an empty outbox", err)
		if len(got) != 0 || next != "" {
			t.Errorf("ListOutbox of an empty outbox: got %d items and cursor %q, want none and \"\"", len(got), next)
		}
	})
	t.Run("ListInvalidCursor", func(t *testing.T) {
		e, _ := outboxSet(t)
		for _, cursor := range []string{"not a cursor", "!!!!", "{}", "%00", "\x00\xff", strings.Repeat("~", 300)} {
			_, _, err := e.s.ListOutbox(e.ctx, "", 2, cursor)
			wantKind(t, fmt.Sprintf("ListOutbox with cursor %q", cursor), err, hermes.Invalid)
		}
	})

	// dueSet stores pending items due before, at and after now, enqueued
	// and created in an order unlike their due order, and a sent and a
	// failed item due long ago. It returns the due items, oldest due first,
	// and the one due 1 ms after now.
	dueSet := func(t *testing.T) (*env, []*hermes.OutboxItem, *hermes.OutboxItem) {
		e := x.open(t)
		sent := newOutboxItem(Base, Base)
		failed := newSMSItem(Base, Base)
		e.enqueue(sent, failed)
		e.must("FinishOutbox sent", e.s.FinishOutbox(e.ctx, sent.ID, hermes.OutboxSent, at(time.Second), time.Time{}, ""))
		e.must("FinishOutbox failed", e.s.FinishOutbox(e.ctx, failed.ID, hermes.OutboxFailed, at(time.Second), time.Time{}, "550 no such user"))
		d1 := newOutboxItem(at(30*time.Minute), now.Add(-3*time.Minute))
		d2 := newSMSItem(at(10*time.Minute), now.Add(-2*time.Minute))
		d3 := newOutboxItem(at(50*time.Minute), now.Add(-time.Minute))
		d4 := newSMSItem(at(20*time.Minute), now) // due exactly now
		later := newOutboxItem(at(5*time.Minute), now.Add(time.Millisecond))
		e.enqueue(d3, later)
		e.enqueue(d4, d1, d2)
		return e, []*hermes.OutboxItem{d1, d2, d3, d4}, later
	}
	t.Run("ClaimDueOldestFirst", func(t *testing.T) {
		e, due, later := dueSet(t)
		got := e.claim(e.s, now, lease, 100)
		checkItems(t, "ClaimOutbox of every due item", got, due, true)
		for _, it := range got {
			if it.SentAt != nil {
				t.Errorf("ClaimOutbox handed out %s with SentAt set", it.ID)
			}
		}
		// At a later time the item that was not yet due is handed out, and
		// the claimed ones are not.
		checkItems(t, "ClaimOutbox 1 ms later", e.claim(e.s, now.Add(time.Millisecond), lease, 100), []*hermes.OutboxItem{later}, true)
	})
	t.Run("ClaimNothingDue", func(t *testing.T) {
		e, due, _ := dueSet(t)
		checkItems(t, "ClaimOutbox before anything is due", e.claim(e.s, due[0].NextAttemptAt.Add(-time.Millisecond), lease, 100), nil, true)
		checkItems(t, "ClaimOutbox when only the oldest is due", e.claim(e.s, due[0].NextAttemptAt, lease, 100), due[:1], true)
	})
	t.Run("ClaimLimit", func(t *testing.T) {
		e, due, _ := dueSet(t)
		checkItems(t, "ClaimOutbox limit 2", e.claim(e.s, now, lease, 2), due[:2], true)
		checkItems(t, "ClaimOutbox limit 1 after", e.claim(e.s, now, lease, 1), due[2:3], true)
		checkItems(t, "ClaimOutbox limit 5 after", e.claim(e.s, now, lease, 5), due[3:], true)
		checkItems(t, "ClaimOutbox once every due item is claimed", e.claim(e.s, now, lease, 5), nil, true)
	})
	t.Run("ClaimHoldsLease", func(t *testing.T) {
		e := x.open(t)
		hs := e.handles()
		a := newOutboxItem(at(time.Second), now)
		e.enqueue(a)
		checkItems(t, "ClaimOutbox", e.claim(e.s, now, lease, 10), []*hermes.OutboxItem{a}, true)
		for i, s := range hs {
			checkItems(t, fmt.Sprintf("ClaimOutbox on handle %d while claimed", i), e.claim(s, now, lease, 10), nil, true)
			checkItems(t, fmt.Sprintf("ClaimOutbox on handle %d 1 ms before the lease passes", i), e.claim(s, now.Add(lease-time.Millisecond), lease, 10), nil, true)
		}
		// The sender crashed: once the lease passed, another sender gets it.
		t1 := now.Add(lease + time.Millisecond)
		checkItems(t, "ClaimOutbox once the lease passed", e.claim(hs[len(hs)-1], t1, lease, 10), []*hermes.OutboxItem{a}, true)
		checkItems(t, "ClaimOutbox while reclaimed", e.claim(e.s, t1.Add(lease-time.Millisecond), lease, 10), nil, true)
		// A claim changes no attempt count: only FinishOutbox records attempts.
		got := e.getOutbox(a.ID)
		if got.Attempts != 0 || got.Status != hermes.OutboxPending {
			t.Errorf("GetOutbox after two claims: %d attempts, status %q; want 0, %q", got.Attempts, got.Status, hermes.OutboxPending)
		}
	})
	t.Run("ClaimRace", func(t *testing.T) {
		const items, claimers, limit = 25, 10, 3
		e := x.open(t)
		hs := e.handles()
		all := map[string]bool{}
		for i := range items {
			it := newSMSItem(at(time.Duration(i)*time.Second), now.Add(-time.Duration(i)*time.Millisecond))
			e.enqueue(it)
			all[it.ID] = true
		}
		got := make([][]*hermes.OutboxItem, claimers)
		errs := make([]error, claimers)
		race(claimers, func(i int) {
			got[i], errs[i] = hs[i%len(hs)].ClaimOutbox(e.ctx, now, lease, limit)
		})
		owner := map[string]int{}
		for i := range claimers {
			if errs[i] != nil {
				t.Errorf("claimer %d: %v", i, errs[i])
				continue
			}
			if len(got[i]) > limit {
				t.Errorf("claimer %d got %d items, more than the limit %d", i, len(got[i]), limit)
			}
			for _, it := range got[i] {
				if j, dup := owner[it.ID]; dup {
					t.Errorf("claimers %d and %d both got item %s: it would be sent twice", j, i, it.ID)
				}
				owner[it.ID] = i
			}
		}
		// What the claimers left is still there to claim, once each.
		for _, it := range e.claim(e.s, now, lease, 100) {
			if j, dup := owner[it.ID]; dup {
				t.Errorf("item %s claimed by claimer %d was handed out again within its lease", it.ID, j)
			}
			owner[it.ID] = -1
		}
		for id := range all {
			if _, ok := owner[id]; !ok {
				t.Errorf("item %s was never handed out", id)
			}
		}
		if len(owner) != len(all) {
			t.Errorf("%d distinct items handed out, want %d", len(owner), len(all))
		}
	})
	t.Run("FinishSent", func(t *testing.T) {
		e := x.open(t)
		a := newOutboxItem(at(time.Second), now.Add(-time.Second))
		keep := newSMSItem(at(time.Second), now)
		e.enqueue(a, keep)
		checkItems(t, "ClaimOutbox", e.claim(e.s, now, lease, 1), []*hermes.OutboxItem{a}, true)
		// now in another zone: SentAt comes back as the same instant in UTC.
		zone := time.FixedZone("UTC-3", -3*3600)
		e.must("FinishOutbox sent", e.s.FinishOutbox(e.ctx, a.ID, hermes.OutboxSent, now.Add(time.Second).In(zone), time.Time{}, ""))
		want := cloneOutbox(a)
		sentAt := now.Add(time.Second)
		want.Status, want.SentAt, want.Attempts = hermes.OutboxSent, &sentAt, 1
		got := e.getOutbox(a.ID)
		checkItems(t, "GetOutbox after FinishOutbox sent", []*hermes.OutboxItem{got}, []*hermes.OutboxItem{want}, true)
		// Never handed out again.
		checkItems(t, "ClaimOutbox after the lease", e.claim(e.s, now.Add(lease+time.Millisecond), lease, 10), []*hermes.OutboxItem{keep}, true)
		checkItems(t, "ClaimOutbox a day later", e.claim(e.s, now.Add(24*time.Hour), lease, 10), []*hermes.OutboxItem{keep}, true)
		checkItems(t, "ListOutbox sent", e.listOutboxAll(hermes.OutboxSent, 10), []*hermes.OutboxItem{got}, false)
	})
	t.Run("FinishRetry", func(t *testing.T) {
		e := x.open(t)
		hs := e.handles()
		a := newOutboxItem(at(time.Second), now)
		e.enqueue(a)
		checkItems(t, "ClaimOutbox", e.claim(e.s, now, lease, 10), []*hermes.OutboxItem{a}, true)
		retryAt := now.Add(10 * time.Minute) // well after the claim's lease
		e.must("FinishOutbox pending", e.s.FinishOutbox(e.ctx, a.ID, hermes.OutboxPending, now.Add(time.Second), retryAt, "451 try again later"))
		want := cloneOutbox(a)
		want.Attempts, want.LastError, want.NextAttemptAt = 1, "451 try again later", retryAt
		checkEqual(t, "GetOutbox after FinishOutbox pending (NextAttemptAt = retryAt)", e.getOutbox(a.ID), want)
		for i, s := range hs {
			checkItems(t, fmt.Sprintf("ClaimOutbox on handle %d after the lease, before retryAt", i), e.claim(s, retryAt.Add(-time.Millisecond), lease, 10), nil, true)
		}
		got := e.claim(hs[len(hs)-1], retryAt, lease, 10)
		checkItems(t, "ClaimOutbox at retryAt", got, []*hermes.OutboxItem{want}, true)
		e.must("FinishOutbox pending again", e.s.FinishOutbox(e.ctx, a.ID, hermes.OutboxPending, retryAt.Add(time.Second), retryAt.Add(time.Hour), "connection reset"))
		want.Attempts, want.LastError, want.NextAttemptAt = 2, "connection reset", retryAt.Add(time.Hour)
		checkEqual(t, "GetOutbox after the second failed attempt", e.getOutbox(a.ID), want)
		checkItems(t, "ClaimOutbox before the second retryAt", e.claim(e.s, retryAt.Add(time.Hour-time.Millisecond), lease, 10), nil, true)
		checkItems(t, "ClaimOutbox after the second retryAt", e.claim(e.s, retryAt.Add(2*time.Hour), lease, 10), []*hermes.OutboxItem{want}, true)
		sentAt := retryAt.Add(2*time.Hour + time.Second)
		e.must("FinishOutbox sent", e.s.FinishOutbox(e.ctx, a.ID, hermes.OutboxSent, sentAt, time.Time{}, "sent on the third attempt"))
		want.Attempts, want.LastError, want.Status, want.SentAt = 3, "sent on the third attempt", hermes.OutboxSent, &sentAt
		checkItems(t, "GetOutbox after the third attempt sent it", []*hermes.OutboxItem{e.getOutbox(a.ID)}, []*hermes.OutboxItem{want}, true)
		checkItems(t, "ClaimOutbox once sent", e.claim(e.s, retryAt.Add(24*time.Hour), lease, 10), nil, true)
	})
	t.Run("FinishFailed", func(t *testing.T) {
		e := x.open(t)
		a := newSMSItem(at(time.Second), now)
		e.enqueue(a)
		checkItems(t, "ClaimOutbox", e.claim(e.s, now, lease, 10), []*hermes.OutboxItem{a}, true)
		e.must("FinishOutbox failed", e.s.FinishOutbox(e.ctx, a.ID, hermes.OutboxFailed, now.Add(time.Second), now.Add(time.Minute), "21211 invalid 'To' number"))
		want := cloneOutbox(a)
		want.Status, want.Attempts, want.LastError = hermes.OutboxFailed, 1, "21211 invalid 'To' number"
		got := e.getOutbox(a.ID)
		checkItems(t, "GetOutbox after FinishOutbox failed (SentAt nil)", []*hermes.OutboxItem{got}, []*hermes.OutboxItem{want}, true)
		checkItems(t, "ClaimOutbox after the retryAt it was given", e.claim(e.s, now.Add(time.Hour), lease, 10), nil, true)
		checkItems(t, "ListOutbox failed", e.listOutboxAll(hermes.OutboxFailed, 10), []*hermes.OutboxItem{got}, false)
		checkItems(t, "ListOutbox pending", e.listOutboxAll(hermes.OutboxPending, 10), nil, false)
	})
	t.Run("FinishUnknown", func(t *testing.T) {
		e := x.open(t)
		id := hermes.NewToken()
		wantKind(t, "FinishOutbox of an unknown id", e.s.FinishOutbox(e.ctx, id, hermes.OutboxSent, now, time.Time{}, ""), hermes.NotFound)
		_, err := e.s.GetOutbox(e.ctx, id)
		wantKind(t, "GetOutbox after FinishOutbox of an unknown id", err, hermes.NotFound)
	})
	t.Run("Copies", func(t *testing.T) {
		e := x.open(t)
		a := newOutboxItem(at(time.Second), now)
		passed := cloneOutbox(a)
		e.must("EnqueueOutbox", e.s.EnqueueOutbox(e.ctx, passed))
		passed.Text, passed.Headers["Message-ID"], passed.Raw[0] = "mutated", "mutated", 'X'
		checkEqual(t, "GetOutbox after mutating the enqueued item", e.getOutbox(a.ID), a)
		got := e.getOutbox(a.ID)
		got.Headers["In-Reply-To"], got.Raw[1], got.Subject = "mutated", 'X', "mutated"
		page, _, err := e.s.ListOutbox(e.ctx, "", 10, "")
		e.must("ListOutbox", err)
		for _, it := range page {
			it.Headers["References"], it.Raw[2] = "mutated", 'X'
		}
		for _, it := range e.claim(e.s, now, lease, 10) {
			it.Headers["References"], it.Raw[3] = "mutated", 'X'
		}
		checkEqual(t, "GetOutbox after mutating returned items", e.getOutbox(a.ID), a)
		sentAt := now.Add(time.Second)
		e.must("FinishOutbox", e.s.FinishOutbox(e.ctx, a.ID, hermes.OutboxSent, sentAt, time.Time{}, ""))
		got = e.getOutbox(a.ID)
		*got.SentAt = Base
		got = e.getOutbox(a.ID)
		if got.SentAt == nil || !got.SentAt.Equal(sentAt) {
			t.Errorf("GetOutbox after mutating a returned SentAt: SentAt %v, want %s", got.SentAt, sentAt)
		}
	})
	t.Run("CancelledContext", func(t *testing.T) {
		e := x.open(t)
		a := newSMSItem(Base, Base)
		e.enqueue(a)
		ctx, cancel := context.WithCancel(e.ctx)
		cancel()
		cancelled(t, map[string]func() error{
			"EnqueueOutbox": func() error { return e.s.EnqueueOutbox(ctx, newSMSItem(Base, Base)) },
			"GetOutbox":     func() error { _, err := e.s.GetOutbox(ctx, a.ID); return err },
			"ListOutbox":    func() error { _, _, err := e.s.ListOutbox(ctx, "", 10, ""); return err },
			"ClaimOutbox":   func() error { _, err := e.s.ClaimOutbox(ctx, now, lease, 10); return err },
			"FinishOutbox": func() error {
				return e.s.FinishOutbox(ctx, a.ID, hermes.OutboxSent, now, time.Time{}, "")
			},
		})
	})
}

// ---------------------------------------------------------------------------
// Containers

func (x *suite) testContainers(t *testing.T) {
	acme := owner{"acme", "site", "owner"}

	t.Run("EnsureCreatesOnce", func(t *testing.T) {
		e := x.open(t)
		hs := e.handles()
		c := newContainer(acme, at(time.Second))
		want := e.ensure(c)
		got, err := e.s.GetContainer(e.ctx, c.ID)
		e.must("GetContainer", err)
		checkEqual(t, "GetContainer of the ensured container", got, want)

		other := newContainer(acme, at(time.Hour))
		other.Status, other.Detail, other.LastHeartbeat = hermes.ContainerStopped, "", nil
		other.Queues = hermes.QueueSetFor("other-", c.ID)
		for i, s := range hs {
			got, err := s.EnsureContainer(e.ctx, cloneContainer(other))
			e.must(fmt.Sprintf("EnsureContainer of an existing id on handle %d", i), err)
			checkEqual(t, fmt.Sprintf("EnsureContainer of an existing id on handle %d (the stored container, unchanged)", i), got, want)
		}
		got, err = e.s.GetContainer(e.ctx, c.ID)
		e.must("GetContainer", err)
		checkEqual(t, "GetContainer after the second EnsureContainer", got, want)
	})
	t.Run("EnsureWithoutHeartbeat", func(t *testing.T) {
		e := x.open(t)
		c := newContainer(acme, at(time.Second))
		c.Status, c.Detail, c.LastHeartbeat = hermes.ContainerStopped, "", nil
		want := e.ensure(c)
		got, err := e.s.GetContainer(e.ctx, c.ID)
		e.must("GetContainer", err)
		checkEqual(t, "GetContainer of a container without a heartbeat", got, want)
	})
	t.Run("EnsureUTC", func(t *testing.T) {
		e := x.open(t)
		zone := time.FixedZone("UTC+1", 3600)
		c := newContainer(acme, at(time.Second).In(zone))
		hb := at(2 * time.Second).In(zone)
		c.LastHeartbeat = &hb
		got, err := e.s.EnsureContainer(e.ctx, cloneContainer(c))
		e.must("EnsureContainer", err)
		want := cloneContainer(c)
		want.CreatedAt, want.UpdatedAt = at(time.Second), at(time.Second+time.Minute)
		hbUTC := at(2 * time.Second)
		want.LastHeartbeat, want.Version = &hbUTC, got.Version
		checkEqual(t, "EnsureContainer's result (times in UTC)", got, want)
		got, err = e.s.GetContainer(e.ctx, c.ID)
		e.must("GetContainer", err)
		checkEqual(t, "GetContainer (times in UTC)", got, want)
	})
	t.Run("EnsureRace", func(t *testing.T) {
		const n = 20
		e := x.open(t)
		hs := e.handles()
		got := make([]*hermes.Container, n)
		errs := make([]error, n)
		race(n, func(i int) {
			c := newContainer(acme, at(time.Duration(i)*time.Second))
			c.Detail = fmt.Sprintf("ensured by %d", i)
			got[i], errs[i] = hs[i%len(hs)].EnsureContainer(e.ctx, c)
		})
		var first *hermes.Container
		for i := range n {
			if errs[i] != nil {
				t.Errorf("EnsureContainer %d: %v", i, errs[i])
				continue
			}
			if first == nil {
				first = got[i]
				continue
			}
			checkEqual(t, fmt.Sprintf("EnsureContainer %d's result (the same container for everyone)", i), got[i], first)
		}
		if first == nil {
			t.Fatal("no EnsureContainer succeeded")
		}
		stored, err := e.s.GetContainer(e.ctx, first.ID)
		e.must("GetContainer", err)
		checkEqual(t, "GetContainer after the race", stored, first)
	})
	t.Run("GetUnknown", func(t *testing.T) {
		e := x.open(t)
		e.ensure(newContainer(acme, Base))
		_, err := e.s.GetContainer(e.ctx, hermes.ContainerID("acme", "site", "ann"))
		wantKind(t, "GetContainer of an unknown id", err, hermes.NotFound)
	})
	t.Run("ListOrderedByID", func(t *testing.T) {
		e := x.open(t)
		got, err := e.s.ListContainers(e.ctx)
		e.must("ListContainers", err)
		if len(got) != 0 {
			t.Errorf("ListContainers of an empty store: got %d containers, want none", len(got))
		}
		var want []*hermes.Container
		for i, o := range []owner{
			{"acme", "site", "owner"}, {"globex", "site", "owner"}, {"acme", "blog", "ann"},
			{"a-b", "c", "d"}, {"acme", "site", "ann"}, {"a", "b-c", "d"}, {"9", "site", "owner"},
		} {
			want = append(want, e.ensure(newContainer(o, at(time.Duration(i)*time.Second))))
		}
		slices.SortFunc(want, func(a, b *hermes.Container) int { return strings.Compare(a.ID, b.ID) })
		got, err = e.s.ListContainers(e.ctx)
		e.must("ListContainers", err)
		checkEqual(t, "ListContainers", got, want)
	})
	t.Run("UpdateStoresAndReturnsNewVersion", func(t *testing.T) {
		e := x.open(t)
		c := e.ensure(newContainer(acme, Base))
		var seen *hermes.Container
		hb := at(5 * time.Minute)
		got, err := e.s.UpdateContainer(e.ctx, c.ID, func(x *hermes.Container) error {
			seen = cloneContainer(x)
			x.Status, x.Detail = hermes.ContainerRunning, "idle"
			x.LastHeartbeat = &hb
			x.UpdatedAt = at(5 * time.Minute)
			x.Queues.Input = "webordinary-input-elsewhere"
			// The start claim of the ECS runner (compare-and-set across replicas).
			x.Task, x.StartClaim, x.StartedAt, x.StartFailures = "arn:aws:ecs:us-east-1:123456789012:task/c/abc", "claim1", &hb, 2
			return nil
		})
		e.must("UpdateContainer", err)
		checkEqual(t, "the container fn was given", seen, c)
		if got == nil {
			t.Fatal("UpdateContainer returned a nil container")
		}
		if got.Version <= c.Version {
			t.Errorf("UpdateContainer returned Version %d, want more than %d", got.Version, c.Version)
		}
		want := cloneContainer(c)
		want.Status, want.Detail, want.LastHeartbeat, want.UpdatedAt = hermes.ContainerRunning, "idle", &hb, at(5*time.Minute)
		want.Queues.Input, want.Version = "webordinary-input-elsewhere", got.Version
		want.Task, want.StartClaim, want.StartedAt, want.StartFailures = "arn:aws:ecs:us-east-1:123456789012:task/c/abc", "claim1", &hb, 2
		checkEqual(t, "UpdateContainer's result", got, want)
		stored, err := e.s.GetContainer(e.ctx, c.ID)
		e.must("GetContainer", err)
		checkEqual(t, "GetContainer after UpdateContainer", stored, want)

		got2, err := e.s.UpdateContainer(e.ctx, c.ID, func(x *hermes.Container) error {
			seen = cloneContainer(x)
			x.Status, x.Detail, x.LastHeartbeat = hermes.ContainerMissing, "", nil
			return nil
		})
		e.must("second UpdateContainer", err)
		checkEqual(t, "the container fn was given the second time", seen, want)
		if got2.Version <= want.Version {
			t.Errorf("second UpdateContainer returned Version %d, want more than %d", got2.Version, want.Version)
		}
		want.Status, want.Detail, want.LastHeartbeat, want.Version = hermes.ContainerMissing, "", nil, got2.Version
		stored, err = e.s.GetContainer(e.ctx, c.ID)
		e.must("GetContainer", err)
		checkEqual(t, "GetContainer after the second UpdateContainer", stored, want)
		// EnsureContainer returns the container as it is now.
		ens, err := e.s.EnsureContainer(e.ctx, newContainer(acme, Base))
		e.must("EnsureContainer of the updated container", err)
		checkEqual(t, "EnsureContainer of an updated container", ens, want)
	})
	t.Run("UpdateUnknown", func(t *testing.T) {
		e := x.open(t)
		id := hermes.ContainerID("acme", "site", "ann")
		_, err := e.s.UpdateContainer(e.ctx, id, func(x *hermes.Container) error { x.Detail = "x"; return nil })
		wantKind(t, "UpdateContainer of an unknown id", err, hermes.NotFound)
		_, err = e.s.GetContainer(e.ctx, id)
		wantKind(t, "GetContainer after UpdateContainer of an unknown id", err, hermes.NotFound)
	})
	for _, c := range []struct {
		name string
		err  error
	}{
		{"PlainError", errors.New("hermestest: fn refuses")},
		{"HermesError", hermes.Errorf(hermes.Conflict, "hermestest: fn refuses")},
	} {
		t.Run("UpdateFnError/"+c.name, func(t *testing.T) {
			e := x.open(t)
			want := e.ensure(newContainer(acme, Base))
			got, err := e.s.UpdateContainer(e.ctx, want.ID, func(x *hermes.Container) error {
				x.Status, x.Detail = hermes.ContainerError, "changed"
				return c.err
			})
			if err != c.err {
				t.Errorf("UpdateContainer whose fn fails: got error %v (%T), want fn's error returned as is", err, err)
			}
			if got != nil {
				t.Errorf("UpdateContainer whose fn fails: got a container, want nil")
			}
			stored, err := e.s.GetContainer(e.ctx, want.ID)
			e.must("GetContainer", err)
			checkEqual(t, "GetContainer after fn failed (nothing stored, Version unchanged)", stored, want)
		})
	}
	t.Run("UpdateRace", func(t *testing.T) {
		const n = 20
		e := x.open(t)
		hs := e.handles()
		c := e.ensure(newContainer(acme, Base))
		results := make([]*hermes.Container, n)
		errs := make([]error, n)
		race(n, func(i int) {
			results[i], errs[i] = hs[i%len(hs)].UpdateContainer(e.ctx, c.ID, func(x *hermes.Container) error {
				runtime.Gosched() // widen the window between read and write
				hb := x.LastHeartbeat.Add(time.Millisecond)
				x.LastHeartbeat = &hb
				x.Detail += "+"
				return nil
			})
		})
		versions := map[int64]int{}
		var last int64
		for i, err := range errs {
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
				continue
			}
			if v := results[i].Version; v <= c.Version {
				t.Errorf("writer %d got Version %d, want more than %d", i, v, c.Version)
			} else if j, dup := versions[v]; dup {
				t.Errorf("writers %d and %d both got Version %d: one update overwrote the other", j, i, v)
			} else {
				versions[v] = i
				last = max(last, v)
			}
		}
		want := cloneContainer(c)
		hb := c.LastHeartbeat.Add(n * time.Millisecond)
		want.LastHeartbeat, want.Detail, want.Version = &hb, c.Detail+strings.Repeat("+", n), last
		stored, err := e.s.GetContainer(e.ctx, c.ID)
		e.must("GetContainer", err)
		checkEqual(t, fmt.Sprintf("GetContainer after %d concurrent increments", n), stored, want)
	})
	t.Run("Copies", func(t *testing.T) {
		e := x.open(t)
		c := newContainer(acme, Base)
		want := cloneContainer(c)
		passed := cloneContainer(c)
		got, err := e.s.EnsureContainer(e.ctx, passed)
		e.must("EnsureContainer", err)
		want.Version = got.Version
		*passed.LastHeartbeat, passed.Detail = at(time.Hour), "mutated"
		*got.LastHeartbeat, got.Detail = at(2*time.Hour), "mutated"
		stored, err := e.s.GetContainer(e.ctx, c.ID)
		e.must("GetContainer", err)
		checkEqual(t, "GetContainer after mutating the passed and returned containers", stored, want)
		*stored.LastHeartbeat = at(3 * time.Hour)
		cs, err := e.s.ListContainers(e.ctx)
		e.must("ListContainers", err)
		*cs[0].LastHeartbeat = at(4 * time.Hour)
		upd, err := e.s.UpdateContainer(e.ctx, c.ID, func(x *hermes.Container) error { return nil })
		e.must("UpdateContainer", err)
		want.Version = upd.Version
		*upd.LastHeartbeat = at(5 * time.Hour)
		stored, err = e.s.GetContainer(e.ctx, c.ID)
		e.must("GetContainer", err)
		checkEqual(t, "GetContainer after mutating returned containers", stored, want)
	})
	t.Run("CancelledContext", func(t *testing.T) {
		e := x.open(t)
		c := e.ensure(newContainer(acme, Base))
		ctx, cancel := context.WithCancel(e.ctx)
		cancel()
		cancelled(t, map[string]func() error{
			"EnsureContainer": func() error {
				_, err := e.s.EnsureContainer(ctx, newContainer(owner{"acme", "site", "ann"}, Base))
				return err
			},
			"GetContainer":   func() error { _, err := e.s.GetContainer(ctx, c.ID); return err },
			"ListContainers": func() error { _, err := e.s.ListContainers(ctx); return err },
			"UpdateContainer": func() error {
				_, err := e.s.UpdateContainer(ctx, c.ID, func(x *hermes.Container) error { x.Detail = "x"; return nil })
				return err
			},
		})
	})
}
