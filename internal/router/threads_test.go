package router_test

import (
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/mail"
	"github.com/webordinary/hermes/internal/router"
)

// noCap lifts the pending-job cap, for tests that queue many jobs.
var noCap = withRouter(func(r *router.Router) { r.PendingCap = 0 })

// emailThreadID is the thread id derived from a conversation's root
// Message-ID on amelia's site.
func emailThreadID(root string) string {
	return hermes.DeriveToken("amelia", "site", "scott", "email", "email:"+strings.ToLower(strings.Trim(root, "<> ")))
}

// ackMessageID returns the Message-ID (without brackets) of the email
// acknowledgement of a thread's latest message.
func (e *env) ackMessageID(threadID string) string {
	e.t.Helper()
	items := e.outboxFor(threadID)
	if len(items) == 0 {
		e.t.Fatalf("no outbox item on thread %s", threadID)
	}
	id := strings.Trim(items[len(items)-1].Headers["Message-ID"], "<>")
	if id == "" {
		e.t.Fatalf("ack has no Message-ID: %+v", items[len(items)-1])
	}
	return id
}

// Email threads (SPEC §4): each step is routed after the previous ones on
// one store; want names the step whose thread the message must join
// ("" = a new thread).
func TestEmailThreads(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noCap)
	threads := map[string]string{} // step → thread id
	type step struct {
		name string
		msg  func() *hermes.Message
		want string // the step whose thread it joins; "" = new thread
		// derived, when set, is the root whose derived id the new thread has.
		derived string
	}
	steps := []step{
		{name: "first", msg: func() *hermes.Message {
			return emailMsg("<CAfirst@mail.example.com>", "Header colour", "Make the header blue", nil, nil)
		}, derived: "CAfirst@mail.example.com"},
		{name: "reply to the ack (Hermes Message-ID only)", want: "first", msg: func() *hermes.Message {
			// The client kept only the parent: References has no root that
			// Hermes recorded. The Hermes Message-ID carries the thread.
			ack := e.ackMessageID(threads["first"])
			return emailMsg("<CAreply@mail.example.com>", "Re: Header colour", "and the footer", []string{ack}, []string{ack})
		}},
		{name: "Hermes Message-ID deep in References", want: "first", msg: func() *hermes.Message {
			ack := e.ackMessageID(threads["first"])
			return emailMsg("<CAdeep@mail.example.com>", "Re: Header colour", "and the logo", nil, []string{"unknown-root@x.example", ack, "unknown-parent@x.example"})
		}},
		{name: "token in the subject, no headers", want: "first", msg: func() *hermes.Message {
			tok := e.thread(threads["first"]).Token
			return emailMsg("<CAtoken@mail.example.com>", "New mail "+mail.FormatToken(tok), "the menu too", nil, nil)
		}},
		{name: "token in the body", want: "first", msg: func() *hermes.Message {
			tok := e.thread(threads["first"]).Token
			return emailMsg("<CAtokenbody@mail.example.com>", "New mail", "the menu too\nReference: "+mail.FormatToken(tok), nil, nil)
		}},
		{name: "References root recorded earlier", want: "first", msg: func() *hermes.Message {
			return emailMsg("<CAroot@mail.example.com>", "Re: Header colour", "bigger font",
				[]string{"lost-parent@x.example"}, []string{"CAfirst@mail.example.com", "lost-parent@x.example"})
		}},
		{name: "References root in another case", want: "first", msg: func() *hermes.Message {
			return emailMsg("<CAcase@mail.example.com>", "Re: Header colour", "smaller font",
				nil, []string{"<CAFIRST@MAIL.EXAMPLE.COM>"})
		}},
		{name: "In-Reply-To an earlier inbound message", want: "first", msg: func() *hermes.Message {
			// Root unknown, parent is scott's own earlier message.
			return emailMsg("<CAirt@mail.example.com>", "Re: Header colour", "wider",
				[]string{"CAreply@mail.example.com"}, nil)
		}},
		{name: "unrelated new email", derived: "CAnew@mail.example.com", msg: func() *hermes.Message {
			return emailMsg("<CAnew@mail.example.com>", "Calendar", "Add the March show", nil, nil)
		}},
		{name: "reply whose root was never seen", derived: "never-seen-root@x.example", msg: func() *hermes.Message {
			return emailMsg("<CAorphan@mail.example.com>", "Fwd: old", "from the old thread",
				[]string{"never-seen-parent@x.example"}, []string{"never-seen-root@x.example", "never-seen-parent@x.example"})
		}},
		{name: "the unseen root arrives late", want: "reply whose root was never seen", msg: func() *hermes.Message {
			return emailMsg("<never-seen-root@x.example>", "old", "the original", nil, nil)
		}},
		{name: "the thread started by the orphan continues", want: "reply whose root was never seen", msg: func() *hermes.Message {
			return emailMsg("<CAorphan2@mail.example.com>", "Re: old", "more",
				[]string{"never-seen-parent@x.example"}, []string{"never-seen-root@x.example"})
		}},
		{name: "a token wins over References", want: "unrelated new email", msg: func() *hermes.Message {
			tok := e.thread(threads["unrelated new email"]).Token
			return emailMsg("<CAmix@mail.example.com>", "Re: Header colour "+mail.FormatToken(tok), "mixed",
				nil, []string{"CAfirst@mail.example.com"})
		}},
		{name: "a Hermes Message-ID wins over a token", want: "first", msg: func() *hermes.Message {
			ack := e.ackMessageID(threads["first"])
			tok := e.thread(threads["unrelated new email"]).Token
			return emailMsg("<CAmix2@mail.example.com>", "Re: Calendar "+mail.FormatToken(tok), "mixed again", []string{ack}, []string{ack})
		}},
		{name: "no Message-ID at all", msg: func() *hermes.Message {
			return emailMsg("", "Other", "no id", nil, nil)
		}},
		{name: "an unknown token and a fake Hermes Message-ID", msg: func() *hermes.Message {
			fake := mail.NewMessageID(hermes.NewToken(), "amelia.example.com")
			return emailMsg("<CAfake@mail.example.com>", "Re: x [ref:aaaaaaaa]", "fake", []string{fake}, []string{fake})
		}, derived: ""},
	}
	for i, s := range steps {
		e.clock.Advance(time.Second)
		m := s.msg()
		out := e.queued(m)
		threads[s.name] = out.ThreadID
		if !hermes.ValidTokenID(out.ThreadID) {
			t.Fatalf("step %d %q: thread id %q is not valid", i, s.name, out.ThreadID)
		}
		if s.want != "" {
			if out.ThreadID != threads[s.want] {
				t.Errorf("step %d %q: thread %s, want the thread of %q (%s)", i, s.name, out.ThreadID, s.want, threads[s.want])
			}
			continue
		}
		for name, id := range threads {
			if name != s.name && id == out.ThreadID {
				t.Errorf("step %d %q: joined the thread of %q, want a new thread", i, s.name, name)
			}
		}
		if s.derived != "" && out.ThreadID != emailThreadID(s.derived) {
			t.Errorf("step %d %q: thread %s, want the id derived from %s (%s)", i, s.name, out.ThreadID, s.derived, emailThreadID(s.derived))
		}
		th := e.thread(out.ThreadID)
		if th.Channel != hermes.ChannelEmail || th.UserID != "scott" || th.ProjectID != "site" || th.ClientID != "amelia" {
			t.Errorf("step %d %q: thread %+v", i, s.name, th)
		}
	}
	if got := threads["first"]; e.thread(got).Subject != "Header colour" {
		t.Errorf("thread subject %q", e.thread(got).Subject)
	}
}

// A derived email thread id does not depend on any record: a reply whose
// root Hermes never recorded lands on the thread id that the root message
// itself got on another store.
func TestEmailThreadDerivedWithoutRecords(t *testing.T) {
	t.Parallel()
	a, b := newEnv(t), newEnv(t)
	first := a.queued(emailMsg("<root-x@mail.example.com>", "Site", "one", nil, nil))
	reply := b.queued(emailMsg("<reply-x@mail.example.com>", "Re: Site", "two", []string{"root-x@mail.example.com"}, []string{"root-x@mail.example.com"}))
	if first.ThreadID != reply.ThreadID || first.ThreadID != emailThreadID("root-x@mail.example.com") {
		t.Errorf("threads %s and %s, want both %s", first.ThreadID, reply.ThreadID, emailThreadID("root-x@mail.example.com"))
	}
}

// Hints that name someone else's thread are ignored: nobody continues
// another user's or another project's conversation.
func TestForeignThreadHints(t *testing.T) {
	t.Parallel()
	type scenario struct {
		name string
		// msg builds the message from scott's thread (id, token, inbound
		// Message-ID of its first message, the ack's Message-ID).
		msg   func(th *hermes.Thread, ack string) *hermes.Message
		owner string // whose new thread it must be
	}
	scenarios := []scenario{
		{"jo: thread id of scott's ack", func(th *hermes.Thread, ack string) *hermes.Message {
			return from(emailMsg("<jo1@mail.example.com>", "Re: Site", "jo here", []string{ack}, []string{ack}), joEmail)
		}, "jo"},
		{"jo: scott's token", func(th *hermes.Thread, _ string) *hermes.Message {
			return from(emailMsg("<jo2@mail.example.com>", "Site "+mail.FormatToken(th.Token), "jo here", nil, nil), joEmail)
		}, "jo"},
		{"jo: scott's References root", func(th *hermes.Thread, _ string) *hermes.Message {
			return from(emailMsg("<jo3@mail.example.com>", "Re: Site", "jo here", []string{"scott-root@mail.example.com"}, []string{"scott-root@mail.example.com"}), joEmail)
		}, "jo"},
		{"jo: scott's In-Reply-To", func(th *hermes.Thread, _ string) *hermes.Message {
			return from(emailMsg("<jo4@mail.example.com>", "Re: Site", "jo here", []string{"scott-root@mail.example.com"}, nil), joEmail)
		}, "jo"},
		{"ann (other client, her project): scott's thread id and token", func(th *hermes.Thread, ack string) *hermes.Message {
			m := to(from(emailMsg("<ann1@mail.example.com>", "Re: Site "+mail.FormatToken(th.Token), "ann here", []string{ack}, []string{ack, "scott-root@mail.example.com"}), annEmail), otherEmail)
			return m
		}, "ann"},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			first := e.queued(emailMsg("<scott-root@mail.example.com>", "Site", "make it blue", nil, nil))
			th := e.thread(first.ThreadID)
			ack := e.ackMessageID(th.ID)
			e.clock.Advance(time.Second)
			m := sc.msg(th, ack)
			out := e.queued(m)
			if out.ThreadID == th.ID {
				t.Fatalf("joined scott's thread")
			}
			if out.SessionID == first.SessionID {
				t.Fatalf("joined scott's session")
			}
			nt := e.thread(out.ThreadID)
			if nt.UserID != sc.owner {
				t.Errorf("new thread belongs to %q, want %q", nt.UserID, sc.owner)
			}
			// Nothing of scott's changed hands: his next reply still finds
			// his thread by its root.
			e.clock.Advance(time.Second)
			again := e.queued(emailMsg("<scott-2@mail.example.com>", "Re: Site", "and red", []string{"scott-root@mail.example.com"}, []string{"scott-root@mail.example.com"}))
			if again.ThreadID != th.ID {
				t.Errorf("scott's reply went to %s, want his thread %s", again.ThreadID, th.ID)
			}
		})
	}
}

// Jo answering in a conversation that scott started (she was in Cc) gets a
// thread of her own, and her later messages in that conversation should
// keep to it. The derived id of a conversation is shared by all users of the
// project, so hers collides with scott's and she gets a random id; her next
// message that names only scott's messages finds neither and starts yet
// another thread.
func TestForeignRootSecondMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	scott := e.queued(emailMsg("<s-root@mail.example.com>", "Site", "make it blue", nil, nil))
	e.clock.Advance(time.Second)
	jo1 := e.queued(from(emailMsg("<jo-a@mail.example.com>", "Re: Site", "jo one", []string{"s-root@mail.example.com"}, []string{"s-root@mail.example.com"}), joEmail))
	e.clock.Advance(time.Second)
	jo2 := e.queued(from(emailMsg("<jo-b@mail.example.com>", "Re: Site", "jo two", []string{"s-root@mail.example.com"}, []string{"s-root@mail.example.com"}), joEmail))
	if jo1.ThreadID == scott.ThreadID || jo2.ThreadID == scott.ThreadID {
		t.Fatal("jo joined scott's thread")
	}
	if jo1.ThreadID != jo2.ThreadID {
		t.Logf("KNOWN ISSUE: jo's two messages in one conversation got two threads (%s, %s)", jo1.ThreadID, jo2.ThreadID)
	}
}

// Another project of the same user: a hint naming the user's thread on one
// project does not carry a message to another project's thread.
func TestThreadOfAnotherProject(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	blog := &hermes.Project{ClientID: "amelia", ID: "blog", RepoURL: "https://example.com/blog.git", EmailAddresses: []string{"blog@amelia.example.com"}}
	blog.Normalize()
	if err := e.db.CreateProject(e.ctx, blog, t0); err != nil {
		t.Fatal(err)
	}
	site := e.queued(emailMsg("<p-root@mail.example.com>", "Site", "make it blue", nil, nil))
	th := e.thread(site.ThreadID)
	ack := e.ackMessageID(th.ID)
	m := to(emailMsg("<p-2@mail.example.com>", "Re: Site "+mail.FormatToken(th.Token), "on the blog", []string{ack}, []string{"p-root@mail.example.com", ack}), "blog@amelia.example.com")
	out := e.queued(m)
	if out.ThreadID == th.ID {
		t.Fatal("a blog message joined the site's thread")
	}
	if nt := e.thread(out.ThreadID); nt.ProjectID != "blog" || nt.UserID != "scott" {
		t.Errorf("thread %+v", nt)
	}
	if out.ContainerID != "amelia_blog_scott" {
		t.Errorf("container %s", out.ContainerID)
	}
	// The API channel refuses a thread of another project outright.
	_, err := e.r.Route(e.ctx, &hermes.Message{Channel: hermes.ChannelAPI, ChannelID: "api-p", ClientID: "amelia", ProjectID: "blog", UserID: "scott", Text: "x", Thread: hermes.ThreadHints{ThreadID: th.ID}})
	if !hermes.IsKind(err, hermes.Unprocessable) {
		t.Errorf("API with another project's thread: %v, want Unprocessable", err)
	}
}

func TestAPIThreads(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	scottEmailThread := e.queued(emailMsg("<api-root@mail.example.com>", "Site", "make it blue", nil, nil)).ThreadID
	joThread := e.queued(from(emailMsg("<api-jo@mail.example.com>", "Site", "jo", nil, nil), joEmail)).ThreadID

	// No thread: a new one, each time.
	a1 := e.queued(apiMsg("api-1", "scott", "one", ""))
	a2 := e.queued(apiMsg("api-2", "scott", "two", ""))
	if a1.ThreadID == a2.ThreadID || a1.ThreadID == scottEmailThread {
		t.Errorf("API messages without a thread: %s, %s", a1.ThreadID, a2.ThreadID)
	}
	if th := e.thread(a1.ThreadID); th.Channel != hermes.ChannelAPI || th.Subject != "one" {
		t.Errorf("API thread %+v", th)
	}
	// The caller's own thread, on any channel: continued.
	if out := e.queued(apiMsg("api-3", "scott", "three", a1.ThreadID)); out.ThreadID != a1.ThreadID || out.SessionID != a1.SessionID {
		t.Errorf("continuing an API thread: %+v", out)
	}
	if out := e.queued(apiMsg("api-4", "scott", "four", scottEmailThread)); out.ThreadID != scottEmailThread {
		t.Errorf("continuing an email thread over the API: %+v", out)
	}
	// Someone else's thread, or none: Unprocessable, nothing routed.
	for _, tc := range []struct{ name, id string }{
		{"jo's thread", joThread},
		{"an unknown thread", hermes.NewToken()},
	} {
		before := e.depth(scottInput)
		_, err := e.r.Route(e.ctx, apiMsg("api-x-"+tc.id, "scott", "hijack", tc.id))
		if !hermes.IsKind(err, hermes.Unprocessable) {
			t.Errorf("%s: %v, want Unprocessable", tc.name, err)
		}
		if e.depth(scottInput) != before {
			t.Errorf("%s: a job was queued", tc.name)
		}
	}
	if n := len(e.outboxFor(a1.ThreadID)); n != 0 {
		t.Errorf("API messages got %d outbox items, want none", n)
	}
}

func TestSMSThreads(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noCap)
	threads := map[string]string{}
	type step struct {
		name string
		msg  func() *hermes.Message
		want string // "" = new thread
	}
	steps := []step{
		{name: "first", msg: func() *hermes.Message { return smsMsg("SM01", "make the header blue") }},
		{name: "follow-up", want: "first", msg: func() *hermes.Message { return smsMsg("SM02", "and the footer") }},
		{name: "new", msg: func() *hermes.Message {
			m := smsMsg("SM03", "new: add the March show")
			m.Thread.NewThread = true
			return m
		}},
		{name: "follow-up of new", want: "new", msg: func() *hermes.Message { return smsMsg("SM04", "with a photo") }},
		{name: "token of first", want: "first", msg: func() *hermes.Message {
			m := smsMsg("SM05", "back to the header ref:"+e.thread(threads["first"]).Token)
			m.Thread.Token = e.thread(threads["first"]).Token
			return m
		}},
		{name: "latest is first again", want: "first", msg: func() *hermes.Message { return smsMsg("SM06", "darker") }},
		{name: "email thread", msg: func() *hermes.Message {
			return emailMsg("<sms-email@mail.example.com>", "Gallery", "add a gallery", nil, nil)
		}},
		{name: "token of the email thread (cross-channel)", want: "email thread", msg: func() *hermes.Message {
			m := smsMsg("SM07", "gallery: 3 columns")
			m.Thread.Token = e.thread(threads["email thread"]).Token
			return m
		}},
		{name: "new again", msg: func() *hermes.Message {
			m := smsMsg("SM08", "new thing")
			m.Thread.NewThread = true
			return m
		}},
		{name: "unknown token: latest thread", want: "new again", msg: func() *hermes.Message {
			m := smsMsg("SM09", "ref:zzzzzzzz")
			m.Thread.Token = "zzzzzzzz"
			return m
		}},
	}
	for i, s := range steps {
		e.clock.Advance(time.Second)
		out := e.queued(s.msg())
		threads[s.name] = out.ThreadID
		if s.want != "" {
			if out.ThreadID != threads[s.want] {
				t.Errorf("step %d %q: thread %s, want the thread of %q (%s)", i, s.name, out.ThreadID, s.want, threads[s.want])
			}
			continue
		}
		for name, id := range threads {
			if name != s.name && id == out.ThreadID {
				t.Errorf("step %d %q: joined the thread of %q, want a new thread", i, s.name, name)
			}
		}
	}
	if th := e.thread(threads["first"]); th.Channel != hermes.ChannelSMS || th.Subject != "make the header blue" {
		t.Errorf("SMS thread %+v", th)
	}
}

// SMS from jo's thread token, or with no thread of his own: scott's own
// latest thread or a new one, never jo's.
func TestSMSForeignToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jo := e.queued(from(emailMsg("<sms-jo@mail.example.com>", "Site", "jo", nil, nil), joEmail))
	tok := e.thread(jo.ThreadID).Token
	m := smsMsg("SMf1", "take over ref:"+tok)
	m.Thread.Token = tok
	out := e.queued(m)
	if out.ThreadID == jo.ThreadID {
		t.Fatal("scott's SMS joined jo's thread")
	}
	if th := e.thread(out.ThreadID); th.UserID != "scott" {
		t.Errorf("thread %+v", th)
	}
	// Scott's latest thread is per project: jo's newer activity does not
	// move it.
	e.clock.Advance(time.Second)
	e.queued(from(emailMsg("<sms-jo2@mail.example.com>", "Re: Site", "jo again", []string{"sms-jo@mail.example.com"}, nil), joEmail))
	e.clock.Advance(time.Second)
	if again := e.queued(smsMsg("SMf2", "more")); again.ThreadID != out.ThreadID {
		t.Errorf("scott's follow-up went to %s, want %s", again.ThreadID, out.ThreadID)
	}
}

func TestChatThreads(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const ts1, ts2 = "1700000000.000100", "1700000100.000200"
	top := e.queued(chatMsg("Ev1", ts1, "", "make the header blue"))
	wantID := hermes.DeriveToken("amelia", "site", "scott", "chat", "chat:"+ameliaChat+":"+ts1)
	if top.ThreadID != wantID {
		t.Errorf("chat thread %s, want the id derived from the channel and ts (%s)", top.ThreadID, wantID)
	}
	e.clock.Advance(time.Second)
	reply := e.queued(chatMsg("Ev2", "1700000050.000300", ts1, "and the footer"))
	if reply.ThreadID != top.ThreadID || reply.SessionID != top.SessionID {
		t.Errorf("reply in the Slack thread: %+v, want thread %s", reply, top.ThreadID)
	}
	e.clock.Advance(time.Second)
	other := e.queued(chatMsg("Ev3", ts2, "", "add the March show"))
	if other.ThreadID == top.ThreadID {
		t.Error("a new top-level message joined the first thread")
	}
	// A token in a new top-level message continues the token's thread.
	e.clock.Advance(time.Second)
	m := chatMsg("Ev4", "1700000200.000400", "", "back to the header ref:"+e.thread(top.ThreadID).Token)
	m.Thread.Token = e.thread(top.ThreadID).Token
	if out := e.queued(m); out.ThreadID != top.ThreadID {
		t.Errorf("chat message with a token: thread %s, want %s", out.ThreadID, top.ThreadID)
	}
	// ...and its replies (keyed by that message's ts) follow it there.
	e.clock.Advance(time.Second)
	if out := e.queued(chatMsg("Ev5", "1700000210.000500", "1700000200.000400", "darker")); out.ThreadID != top.ThreadID {
		t.Errorf("reply under the token message: thread %s, want %s", out.ThreadID, top.ThreadID)
	}
	if th := e.thread(top.ThreadID); th.Channel != hermes.ChannelChat {
		t.Errorf("thread %+v", th)
	}
	// The same ts in another channel is another conversation; it does not
	// matter here (one channel), but the reference names the channel.
}

// One thread id everywhere: outcome, job, branch, session, outbox item,
// history, and the Message-ID of the email acknowledgement.
func TestOneThreadIDEverywhere(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		msg  *hermes.Message
	}{
		{"email", emailMsg("<one@mail.example.com>", "Site", "make it blue", nil, nil)},
		{"sms", smsMsg("SMone", "make it blue")},
		{"chat", chatMsg("EvOne", "1700000000.000100", "", "make it blue")},
		{"api", apiMsg("api-one", "scott", "make it blue", "")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			out := e.queued(tc.msg)
			id := out.ThreadID
			jobs := e.jobs(scottInput)
			if len(jobs) != 1 {
				t.Fatalf("%d jobs", len(jobs))
			}
			j := jobs[0]
			if j.ThreadID != id || j.Branch != "thread-"+id || j.Attrs["threadId"] != id || j.SessionID != out.SessionID {
				t.Errorf("job thread %s branch %s attrs %v session %s; outcome %+v", j.ThreadID, j.Branch, j.Attrs, j.SessionID, out)
			}
			if s := e.session(out.SessionID); s.ThreadID != id {
				t.Errorf("session thread %s, want %s", s.ThreadID, id)
			}
			if j.Reply.Token != e.thread(id).Token {
				t.Errorf("job token %q, thread token %q", j.Reply.Token, e.thread(id).Token)
			}
			for _, h := range e.history(out.SessionID) {
				if h.ThreadID != id || h.SessionID != out.SessionID {
					t.Errorf("history entry %+v", h)
				}
			}
			items := e.outbox()
			if tc.name == "api" {
				if len(items) != 0 {
					t.Errorf("API: %d outbox items", len(items))
				}
				return
			}
			if len(items) != 1 {
				t.Fatalf("%d outbox items", len(items))
			}
			if items[0].ThreadID != id || items[0].SessionID != out.SessionID || items[0].ClientID != "amelia" {
				t.Errorf("outbox item %+v", items[0])
			}
			if tc.name == "email" {
				got, ok := mail.ThreadFromMessageID(items[0].Headers["Message-ID"])
				if !ok || got != id {
					t.Errorf("ack Message-ID %q carries thread %q, want %s", items[0].Headers["Message-ID"], got, id)
				}
			}
		})
	}
}

// Two members in one Slack thread: each keeps a thread of their own, and a
// member's replies in that Slack thread stay on it. Today the derived id
// (client, project, channel+ts) is shared by all members: the second member
// collides with the first member's thread, gets a random id, records no
// reference (the first thread keeps it), and so every one of her replies
// starts yet another thread, session and branch.
func TestChatThreadTwoMembers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, err := e.db.GetUser(e.ctx, "amelia", "jo")
	if err != nil {
		t.Fatal(err)
	}
	u.ChatIDs = []string{"U0789"}
	if err := e.db.UpdateUser(e.ctx, u, t0); err != nil {
		t.Fatal(err)
	}
	scott := e.queued(chatMsg("EvM1", "1700000000.000100", "", "make it blue"))
	var jo []string
	for i, ev := range []string{"EvM2", "EvM3", "EvM4"} {
		e.clock.Advance(time.Second)
		m := chatMsg(ev, "1700000000.00020"+string(rune('0'+i)), "1700000000.000100", "jo's reply")
		m.From = "U0789"
		jo = append(jo, e.queued(m).ThreadID)
	}
	if jo[0] == scott.ThreadID {
		t.Fatal("jo joined scott's thread")
	}
	if jo[1] != jo[0] || jo[2] != jo[0] {
		t.Errorf("jo's replies in one Slack thread landed on %v, want one thread", jo)
	}
}
