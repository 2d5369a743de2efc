package router_test

import (
	"bytes"
	"context"
	"fmt"
	netmail "net/mail"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/mail"
	"github.com/webordinary/hermes/internal/router"
)

// --- sessions (§2 step 3) ---

func TestSessions(t *testing.T) {
	t.Parallel()
	type step struct {
		name    string
		before  func(e *env, prev *router.Outcome) // e.g. advance the clock
		wantNew bool
		// prevReason, when the session changes, is why the previous one ended.
		prevReason string
	}
	tests := []struct {
		name  string
		msg   func(i int) *hermes.Message
		steps []step
	}{
		{
			name: "email",
			msg: func(i int) *hermes.Message {
				if i == 0 {
					return emailMsg("<s0@mail.example.com>", "Site", "first", nil, nil)
				}
				id := fmt.Sprintf("<s%d@mail.example.com>", i)
				return emailMsg(id, "Re: Site", fmt.Sprintf("message %d", i), []string{"s0@mail.example.com"}, []string{"s0@mail.example.com"})
			},
		},
		{
			name: "sms",
			msg:  func(i int) *hermes.Message { return smsMsg(fmt.Sprintf("SMs%d", i), fmt.Sprintf("message %d", i)) },
		},
		{
			name: "chat",
			msg: func(i int) *hermes.Message {
				if i == 0 {
					return chatMsg("Evs0", "1700000000.000100", "", "first")
				}
				return chatMsg(fmt.Sprintf("Evs%d", i), fmt.Sprintf("1700000000.%06d", 100+i), "1700000000.000100", fmt.Sprintf("message %d", i))
			},
		},
	}
	steps := []step{
		{name: "first message opens a session", wantNew: true},
		{name: "follow-up within the lease renews it", before: func(e *env, _ *router.Outcome) { e.clock.Advance(10 * time.Minute) }},
		{name: "follow-up just before the lease ends", before: func(e *env, _ *router.Outcome) { e.clock.Advance(30*time.Minute - time.Millisecond) }},
		{name: "after the lease passed: a new session", before: func(e *env, _ *router.Outcome) { e.clock.Advance(30 * time.Minute) },
			wantNew: true, prevReason: hermes.ReasonLease},
		{name: "renewed again", before: func(e *env, _ *router.Outcome) { e.clock.Advance(time.Minute) }},
		{name: "after deactivation: a new session", before: func(e *env, prev *router.Outcome) {
			e.clock.Advance(time.Minute)
			if _, err := e.sessions.Deactivate(e.ctx, prev.SessionID); err != nil {
				e.t.Fatal(err)
			}
			e.clock.Advance(time.Second)
		}, wantNew: true, prevReason: hermes.ReasonDeactivated},
		{name: "the new session is renewed", before: func(e *env, _ *router.Outcome) { e.clock.Advance(5 * time.Minute) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, noCap)
			var prev *router.Outcome
			sessionIDs := map[string]bool{}
			for i, s := range steps {
				if s.before != nil {
					s.before(e, prev)
				}
				now := e.clock.Now()
				out := e.queued(tc.msg(i))
				if out.NewSession != s.wantNew {
					t.Errorf("step %d %q: NewSession %v, want %v", i, s.name, out.NewSession, s.wantNew)
				}
				if prev != nil && out.ThreadID != prev.ThreadID {
					t.Fatalf("step %d %q: thread changed from %s to %s", i, s.name, prev.ThreadID, out.ThreadID)
				}
				sess := e.session(out.SessionID)
				if !sess.ExpiresAt.Equal(now.Add(30*time.Minute)) || !sess.LastActivity.Equal(now) {
					t.Errorf("step %d %q: lease %v, activity %v; want %v, %v", i, s.name, sess.ExpiresAt, sess.LastActivity, now.Add(30*time.Minute), now)
				}
				if s.wantNew {
					if sessionIDs[out.SessionID] {
						t.Errorf("step %d %q: session %s reused", i, s.name, out.SessionID)
					}
					if sess.Status != hermes.SessionInitializing || !sess.CreatedAt.Equal(now) || sess.ThreadID != out.ThreadID {
						t.Errorf("step %d %q: new session %+v", i, s.name, sess)
					}
					if prev != nil {
						old := e.session(prev.SessionID)
						if old.Status != hermes.SessionExpired || old.Reason != s.prevReason {
							t.Errorf("step %d %q: previous session %s/%s, want expired/%s", i, s.name, old.Status, old.Reason, s.prevReason)
						}
					}
				} else if prev != nil && out.SessionID != prev.SessionID {
					t.Errorf("step %d %q: session %s, want the previous %s", i, s.name, out.SessionID, prev.SessionID)
				}
				sessionIDs[out.SessionID] = true
				prev = out
			}
			// One live session per thread, three in all.
			all := e.sessionsOf("amelia")
			live := 0
			for _, s := range all {
				if s.Status.Live() {
					live++
				}
			}
			if len(all) != 3 || live != 1 {
				t.Errorf("%d sessions, %d live; want 3, 1", len(all), live)
			}
			// Each session's history holds its own instructions only.
			for _, s := range all {
				for _, h := range e.history(s.ID) {
					if h.SessionID != s.ID {
						t.Errorf("history entry of %s in %s", h.SessionID, s.ID)
					}
				}
			}
		})
	}
}

// An active session (the container reported ready) stays active on a
// follow-up: the router renews the lease, it does not reset the status.
func TestSessionActiveStaysActive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.queued(smsMsg("SMa1", "one"))
	if _, err := e.db.UpdateSession(e.ctx, first.SessionID, func(s *hermes.Session) error {
		s.Status = hermes.SessionActive
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	out := e.queued(smsMsg("SMa2", "two"))
	if out.SessionID != first.SessionID || out.NewSession {
		t.Fatalf("follow-up %+v", out)
	}
	if s := e.session(out.SessionID); s.Status != hermes.SessionActive || !s.ExpiresAt.Equal(t0.Add(31*time.Minute)) {
		t.Errorf("session %s, lease %v", s.Status, s.ExpiresAt)
	}
}

// --- pending cap ---

func TestPendingCap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		msg     func(i int) *hermes.Message
		channel string
		to      string
		ack     bool // acknowledgements on
	}{
		{"email", func(i int) *hermes.Message {
			return simple(fmt.Sprintf("<cap%d@mail.example.com>", i), fmt.Sprintf("change %d", i))
		}, hermes.ChannelEmail, scottEmail, true},
		{"sms", func(i int) *hermes.Message { return smsMsg(fmt.Sprintf("SMcap%d", i), fmt.Sprintf("change %d", i)) }, hermes.ChannelSMS, scottPhone, true},
		{"chat", func(i int) *hermes.Message {
			return chatMsg(fmt.Sprintf("Evcap%d", i), fmt.Sprintf("17000000%02d.000100", i), "", fmt.Sprintf("change %d", i))
		}, hermes.ChannelChat, ameliaChat, true},
		{"sms, acknowledgements off", func(i int) *hermes.Message {
			return smsMsg(fmt.Sprintf("SMcapq%d", i), fmt.Sprintf("change %d", i))
		}, hermes.ChannelSMS, scottPhone, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withRouter(func(r *router.Router) { r.PendingCap = 3 }), withRunner())
			if !tc.ack {
				e.setAcknowledge("amelia", "site", false)
			}
			acks := 0
			if tc.ack {
				acks = 3
			}
			for i := range 3 {
				e.clock.Advance(time.Second)
				e.queued(tc.msg(i))
			}
			e.clock.Advance(time.Second)
			busy := e.route(tc.msg(3))
			if busy.Status != router.Busy {
				t.Fatalf("4th message: %+v, want busy", busy)
			}
			if busy.JobID != "" || busy.ThreadID == "" || busy.ContainerID != scottContainer {
				t.Errorf("busy outcome %+v", busy)
			}
			if n := e.depth(scottInput); n != 3 {
				t.Errorf("depth %d, want 3 (the 4th not queued)", n)
			}
			if n := e.runner.count(); n != 3 {
				t.Errorf("%d wakes, want 3 (none for the refused message)", n)
			}
			items := e.outbox()
			if len(items) != acks+1 {
				t.Fatalf("%d outbox items, want %d", len(items), acks+1)
			}
			b := items[len(items)-1]
			if b.Kind != "busy" || b.Channel != tc.channel || b.To != tc.to || b.ThreadID != busy.ThreadID || b.SessionID != busy.SessionID {
				t.Errorf("busy item %+v", b)
			}
			if !strings.Contains(strings.ToLower(b.Text), "too many requests") {
				t.Errorf("busy text %q", b.Text)
			}
			// The refused message is in the history as the reply only: no
			// queued instruction for it.
			for _, h := range e.history(busy.SessionID) {
				if h.Direction == hermes.DirectionIn && h.Meta["channelMessageId"] == tc.msg(3).ChannelID {
					t.Errorf("a refused message is recorded as an instruction: %+v", h)
				}
			}
			// A refused message is not done: its redelivery is routed again
			// (still busy here), so a retry after the queue drains is queued.
			if again := e.route(tc.msg(3)); again.Status != router.Busy {
				t.Errorf("redelivery of the refused message: %+v", again)
			}
			// The container runs: no cap.
			e.setContainerStatus(scottContainer, hermes.ContainerRunning)
			for i := 4; i < 7; i++ {
				e.clock.Advance(time.Second)
				e.queued(tc.msg(i))
			}
			if n := e.depth(scottInput); n != 6 {
				t.Errorf("depth %d, want 6", n)
			}
			if n := e.runner.count(); n != 3 {
				t.Errorf("%d wakes, want 3 (a running container is not woken)", n)
			}
		})
	}
}

// The API channel has the cap too; its answer is the HTTP response, so no
// busy item goes to the outbox.
func TestPendingCapAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withRouter(func(r *router.Router) { r.PendingCap = 1 }))
	first := e.queued(apiMsg("api-c1", "scott", "one", ""))
	out := e.route(apiMsg("api-c2", "scott", "two", first.ThreadID))
	if out.Status != router.Busy || out.ThreadID != first.ThreadID || out.SessionID != first.SessionID {
		t.Errorf("second: %+v, want busy on the first thread", out)
	}
	if n := len(e.outbox()); n != 0 {
		t.Errorf("%d outbox items", n)
	}
	if n := e.depth(scottInput); n != 1 {
		t.Errorf("depth %d", n)
	}
	// The cap is per container: jo is not held up by scott's backlog.
	if out := e.route(apiMsg("api-c3", "jo", "three", "")); out.Status != router.Queued {
		t.Errorf("jo: %+v", out)
	}
}

// The cap counts jobs waiting on the queue: a job the container has taken
// (in flight) no longer counts.
func TestPendingCapCountsVisibleJobs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withRouter(func(r *router.Router) { r.PendingCap = 2 }))
	e.queued(smsMsg("SMv1", "one"))
	e.queued(smsMsg("SMv2", "two"))
	if out := e.route(smsMsg("SMv3", "three")); out.Status != router.Busy {
		t.Fatalf("third: %+v, want busy", out)
	}
	if ds, err := e.db.Receive(e.ctx, scottInput, 1, 0, 0); err != nil || len(ds) != 1 {
		t.Fatalf("receive: %v %v", ds, err)
	}
	if out := e.route(smsMsg("SMv4", "four")); out.Status != router.Queued {
		t.Errorf("with one job in flight: %+v, want queued", out)
	}
}

// --- acknowledgements (§2 step 6) ---

func TestAckEmail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.queued(emailMsg("<CAack1@mail.example.com>", "Header colour", "Make the header blue", nil, nil))
	th := e.thread(first.ThreadID)
	items := e.outbox()
	if len(items) != 1 {
		t.Fatalf("%d outbox items, want 1", len(items))
	}
	it := items[0]
	checkEmailAck(t, it, th, "Header colour", "<CAack1@mail.example.com>", "<CAack1@mail.example.com>")
	if it.Status != hermes.OutboxPending || !it.NextAttemptAt.Equal(t0) || !it.CreatedAt.Equal(t0) {
		t.Errorf("item state %s, due %v, created %v", it.Status, it.NextAttemptAt, it.CreatedAt)
	}

	// The reply to the ack carries the full chain: root … inbound.
	e.clock.Advance(time.Minute)
	ack1 := strings.Trim(it.Headers["Message-ID"], "<>")
	refs := []string{"CAack1@mail.example.com", ack1}
	second := e.queued(emailMsg("<CAack2@mail.example.com>", "Re: Header colour "+mail.FormatToken(th.Token), "and the footer", []string{ack1}, refs))
	if second.ThreadID != th.ID {
		t.Fatalf("reply went to %s", second.ThreadID)
	}
	items = e.outbox()
	if len(items) != 2 {
		t.Fatalf("%d outbox items, want 2", len(items))
	}
	it2 := items[1]
	checkEmailAck(t, it2, th, "Header colour", "<CAack2@mail.example.com>",
		"<CAack1@mail.example.com> <"+ack1+"> <CAack2@mail.example.com>")
	if it2.Headers["Message-ID"] == it.Headers["Message-ID"] {
		t.Error("two acknowledgements share a Message-ID")
	}
	if it2.ID == it.ID {
		t.Error("two acknowledgements share an outbox id")
	}
	// The second message is queued behind the first (the container has not
	// taken it).
	if !strings.Contains(it2.Text, "queued behind") {
		t.Errorf("second ack text %q, want the queued wording", it2.Text)
	}
}

func checkEmailAck(t *testing.T, it *hermes.OutboxItem, th *hermes.Thread, subject, inReplyTo, references string) {
	t.Helper()
	if it.Kind != hermes.KindAck || it.Channel != hermes.ChannelEmail || it.To != scottEmail || it.From != ameliaEmail {
		t.Errorf("item %s/%s to %s from %s", it.Kind, it.Channel, it.To, it.From)
	}
	wantSubject := "Re: " + subject + " " + mail.FormatToken(th.Token)
	if it.Subject != wantSubject {
		t.Errorf("subject %q, want %q", it.Subject, wantSubject)
	}
	if tid, ok := mail.ThreadFromMessageID(it.Headers["Message-ID"]); !ok || tid != th.ID {
		t.Errorf("Message-ID %q does not carry thread %s", it.Headers["Message-ID"], th.ID)
	}
	if !strings.Contains(it.Headers["Message-ID"], th.ID) || !strings.HasSuffix(it.Headers["Message-ID"], "@amelia.example.com>") {
		t.Errorf("Message-ID %q", it.Headers["Message-ID"])
	}
	if it.Headers["In-Reply-To"] != inReplyTo {
		t.Errorf("In-Reply-To %q, want %q", it.Headers["In-Reply-To"], inReplyTo)
	}
	if it.Headers["References"] != references {
		t.Errorf("References %q, want %q", it.Headers["References"], references)
	}
	if !strings.Contains(it.Text, mail.FormatToken(th.Token)) {
		t.Errorf("text has no token: %q", it.Text)
	}
	if len(it.Raw) == 0 {
		t.Fatal("no raw message")
	}
	msg, err := netmail.ReadMessage(bytes.NewReader(it.Raw))
	if err != nil {
		t.Fatalf("raw message: %v", err)
	}
	for k, want := range map[string]string{
		"Message-Id": it.Headers["Message-ID"], "In-Reply-To": inReplyTo, "References": references,
		"Subject": wantSubject, "X-Hermes-Thread": th.ID, "Auto-Submitted": "auto-replied",
	} {
		if got := strings.Join(strings.Fields(msg.Header.Get(k)), " "); got != want {
			t.Errorf("raw %s %q, want %q", k, got, want)
		}
	}
	if a, err := msg.Header.AddressList("To"); err != nil || len(a) != 1 || a[0].Address != scottEmail {
		t.Errorf("raw To %v %v", a, err)
	}
	if a, err := netmail.ParseAddress(msg.Header.Get("From")); err != nil || a.Address != ameliaEmail {
		t.Errorf("raw From %v %v", a, err)
	}
	if !strings.HasPrefix(msg.Header.Get("Content-Type"), "multipart/alternative") {
		t.Errorf("Content-Type %q", msg.Header.Get("Content-Type"))
	}
}

func TestAckSMS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text string
	}{
		{"short", "make the header blue"},
		{"long", strings.Repeat("please change the colour of every heading on the events page ", 10)},
		{"unicode", "mach den Header blau 🎨 — “bitte” ñ 漢字"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withRouter(func(r *router.Router) { r.WakeEstimate = func() time.Duration { return 44500 * time.Millisecond } }))
			out := e.queued(smsMsg("SMack", tc.text))
			th := e.thread(out.ThreadID)
			items := e.outbox()
			if len(items) != 1 {
				t.Fatalf("%d outbox items", len(items))
			}
			it := items[0]
			if it.Channel != hermes.ChannelSMS || it.Kind != hermes.KindAck || it.To != scottPhone || it.From != ameliaSMS {
				t.Errorf("item %+v", it)
			}
			if n := utf8.RuneCountInString(it.Text); n > 160 || n == 0 {
				t.Errorf("SMS of %d characters: %q", n, it.Text)
			}
			if !strings.Contains(it.Text, "ref:"+th.Token) {
				t.Errorf("SMS has no token: %q", it.Text)
			}
			if !strings.Contains(it.Text, "45 seconds") {
				t.Errorf("SMS has no wake estimate: %q", it.Text)
			}
			if len(it.Raw) != 0 || it.Headers["Message-ID"] != "" {
				t.Errorf("SMS item has email parts: %+v", it)
			}
		})
	}
}

func TestAckChat(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	out := e.queued(chatMsg("EvAck1", "1700000000.000100", "", "make the header blue"))
	e.queued(chatMsg("EvAck2", "1700000005.000200", "1700000000.000100", "and the footer"))
	items := e.outbox()
	if len(items) != 2 {
		t.Fatalf("%d outbox items", len(items))
	}
	for i, it := range items {
		if it.Channel != hermes.ChannelChat || it.Kind != hermes.KindAck || it.To != ameliaChat || it.ThreadID != out.ThreadID {
			t.Errorf("item %d %+v", i, it)
		}
		if it.Headers["thread_ts"] != "1700000000.000100" {
			t.Errorf("item %d thread_ts %q, want the thread's root ts", i, it.Headers["thread_ts"])
		}
		if !strings.Contains(it.Text, "ref:"+e.thread(out.ThreadID).Token) {
			t.Errorf("item %d text %q has no token", i, it.Text)
		}
	}
}

// The wording follows the container: waking (with the estimate), working
// (running, nothing pending), queued behind (pending work).
func TestAckWording(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withRouter(func(r *router.Router) { r.WakeEstimate = func() time.Duration { return 90 * time.Second } }))
	e.queued(smsMsg("SMw1", "one"))
	e.clock.Advance(time.Second)
	e.queued(smsMsg("SMw2", "two"))
	e.clock.Advance(time.Second)
	if err := e.db.Purge(e.ctx, scottInput); err != nil {
		t.Fatal(err)
	}
	e.setContainerStatus(scottContainer, hermes.ContainerRunning)
	e.queued(smsMsg("SMw3", "three"))
	items := e.outbox()
	if len(items) != 3 {
		t.Fatalf("%d items", len(items))
	}
	for i, want := range []string{"waking up, usually about 90 seconds", "queued behind", "working on it now"} {
		if !strings.Contains(items[i].Text, want) {
			t.Errorf("ack %d %q, want %q", i, items[i].Text, want)
		}
	}
}

func TestAckAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	out := e.queued(apiMsg("api-ack", "scott", "make it blue", ""))
	if items := e.outbox(); len(items) != 0 {
		t.Errorf("API channel: %d outbox items, want none", len(items))
	}
	h := e.history(out.SessionID)
	if len(h) != 1 || h[0].Kind != hermes.KindInstruction {
		t.Errorf("history %+v", h)
	}
}

func TestAckDisabled(t *testing.T) {
	t.Parallel()
	for _, m := range []*hermes.Message{
		simple("<off@mail.example.com>", "make it blue"),
		smsMsg("SMoff", "make it blue"),
		chatMsg("EvOff", "1700000000.000100", "", "make it blue"),
	} {
		t.Run(m.Channel, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.setAcknowledge("amelia", "site", false)
			out := e.queued(m)
			if items := e.outbox(); len(items) != 0 {
				t.Errorf("%d outbox items with acknowledgements off", len(items))
			}
			if h := e.history(out.SessionID); len(h) != 1 || h[0].Direction != hermes.DirectionIn {
				t.Errorf("history %+v", h)
			}
		})
	}
}

// The history holds the instruction (in, queued) and then its
// acknowledgement (out), in order, for every message.
func TestAckHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m1 := emailMsg("<h1@mail.example.com>", "Site", "Make the header blue", nil, nil)
	m2 := emailMsg("<h2@mail.example.com>", "Re: Site", "and the footer", []string{"h1@mail.example.com"}, []string{"h1@mail.example.com"})
	out1 := e.queued(m1)
	e.clock.Advance(time.Second)
	out2 := e.queued(m2)
	if out1.SessionID != out2.SessionID {
		t.Fatal("two sessions")
	}
	h := e.history(out1.SessionID)
	items := e.outbox()
	if len(h) != 4 || len(items) != 2 {
		t.Fatalf("history %d entries, outbox %d items", len(h), len(items))
	}
	want := []struct {
		dir, kind, text string
		msg             *hermes.Message
		out             *router.Outcome
	}{
		{hermes.DirectionIn, hermes.KindInstruction, "Make the header blue", m1, out1},
		{hermes.DirectionOut, hermes.KindAck, items[0].Text, m1, out1},
		{hermes.DirectionIn, hermes.KindInstruction, "and the footer", m2, out2},
		{hermes.DirectionOut, hermes.KindAck, items[1].Text, m2, out2},
	}
	for i, w := range want {
		got := h[i]
		if got.Direction != w.dir || got.Kind != w.kind || got.Text != w.text || got.Channel != hermes.ChannelEmail {
			t.Errorf("entry %d: %s/%s %q, want %s/%s %q", i, got.Direction, got.Kind, got.Text, w.dir, w.kind, w.text)
		}
		if w.dir == hermes.DirectionIn {
			if got.Delivery != hermes.DeliveryQueued || got.ID != w.out.JobID || got.Meta["jobId"] != w.out.JobID ||
				got.Meta["channelMessageId"] != w.msg.ChannelID || got.Meta["subject"] != w.msg.Subject {
				t.Errorf("entry %d: %+v", i, got)
			}
		} else if got.Meta["outboxId"] != items[i/2].ID || got.ID != items[i/2].ID {
			t.Errorf("entry %d: %+v, want outbox id %s", i, got, items[i/2].ID)
		}
	}
}

// failingAcks fails to compose acknowledgements.
type failingAcks struct{}

func (failingAcks) Ack(context.Context, router.Ack) ([]*hermes.OutboxItem, error) {
	return nil, hermes.Errorf(hermes.Internal, "template broken")
}

// outboxFailStore fails to enqueue outbox items.
type outboxFailStore struct{ hermes.Store }

func (outboxFailStore) EnqueueOutbox(context.Context, ...*hermes.OutboxItem) error {
	return hermes.Errorf(hermes.Unavailable, "outbox down")
}

// A failed acknowledgement does not fail the message: the job is queued
// and recorded, and its result will be answered all the same.
func TestAckFailureKeepsTheJob(t *testing.T) {
	t.Parallel()
	for name, opt := range map[string]envOption{
		"compose fails": withRouter(func(r *router.Router) { r.Acknowledger = failingAcks{} }),
		"outbox fails":  withStore(func(s hermes.Store) hermes.Store { return outboxFailStore{s} }),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, opt)
			out := e.queued(simple("<ackfail@mail.example.com>", "make it blue"))
			if n := e.depth(scottInput); n != 1 {
				t.Errorf("depth %d", n)
			}
			h := e.history(out.SessionID)
			if len(h) != 1 || h[0].Kind != hermes.KindInstruction || h[0].Delivery != hermes.DeliveryQueued {
				t.Errorf("history %+v, want the instruction only", h)
			}
			if again := e.route(simple("<ackfail@mail.example.com>", "make it blue")); again.Status != router.Duplicate {
				t.Errorf("redelivery %+v", again)
			}
		})
	}
}
