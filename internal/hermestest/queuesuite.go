package hermestest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

// QueueOpener tells QueueSuite how to get queues of the adapter under test.
type QueueOpener struct {
	// New returns a ready hermes.Queues on a backing store of its own (for
	// SQLite a fresh database file). It is called at the start of every
	// subtest, and subtests run in parallel. The backing store need not be
	// empty (an SQS adapter may share one emulator between all subtests):
	// the suite names every queue it creates with a random prefix of its
	// own, and deletes them when the subtest ends. hermes.Queues has no
	// Close, so New closes what it opens itself with t.Cleanup; cleanups
	// registered in New run after the suite's, so the handle is still open
	// while the suite deletes its queues. New reports its own failures with
	// t.Fatal.
	New func(t *testing.T) hermes.Queues

	// Reopen, when not nil, returns a second, independent handle on the
	// same backing store as q, which New returned in the same test: for
	// SQLite another Open of the same file (another process's view), for
	// SQS another client on the same endpoint. It closes the handle with
	// t.Cleanup itself. When Reopen is nil, the subtest that checks that a
	// long poll on one handle wakes on a send through the other is skipped.
	Reopen func(t *testing.T, q hermes.Queues) hermes.Queues
}

// QueueSuite runs the contract of hermes.Queues, as written on the interface
// in queue.go, against the queues that o opens.
//
// Queues are about time (visibility timeouts, long polls), and an SQS
// adapter cannot take a fake clock, so the suite runs on the real clock with
// short durations: visibility timeouts of 1 s, waits of whole seconds (SQS
// counts both in seconds), and loose bounds on how long a call may take.
// Subtests use queues of their own and run in parallel; the whole suite takes
// about 20 s of subtest time, so about 10 s of wall time at go test's
// -parallel 2, less with more. Where the contract allows an adapter to return
// fewer messages than it could (Receive returns "up to max"), the suite
// receives again rather than expect a full batch; Stats are approximate, so
// the suite waits up to a few seconds for them to settle.
func QueueSuite(t *testing.T, o QueueOpener) {
	t.Helper()
	if o.New == nil {
		t.Fatal("hermestest.QueueSuite: QueueOpener.New is nil")
	}
	x := &qsuite{o: o}
	type leaf struct {
		name string
		run  func(*testing.T)
	}
	groups := []struct {
		name   string
		leaves []leaf
	}{
		{"Manage", []leaf{
			{"CreateIdempotent", x.testCreateIdempotent},
			{"CreateUpdatesOptions", x.testCreateUpdatesOptions},
			{"InvalidNames", x.testInvalidNames},
			{"InvalidOptions", x.testInvalidOptions},
			{"DeadLetterMissing", x.testDeadLetterMissing},
			{"ListQueues", x.testListQueues},
			{"DeleteQueue", x.testDeleteQueue},
		}},
		{"Messages", []leaf{
			{"RoundTrip", x.testRoundTrip},
			{"UnknownQueue", x.testUnknownQueue},
			{"TooLarge", x.testTooLarge},
			{"BatchMax", x.testBatchMax},
			{"EachOnceWhenDeleted", x.testEachOnce},
			{"DeleteBatch", x.testDeleteBatch},
			{"DeleteBatchLimits", x.testDeleteBatchLimits},
		}},
		{"Visibility", []leaf{
			{"HiddenThenVisibleAgain", x.testHiddenThenVisible},
			{"ChangeVisibilityZero", x.testChangeVisibilityZero},
			{"ChangeVisibilityExtends", x.testChangeVisibilityExtends},
			{"ChangeVisibilityStaleReceipt", x.testChangeVisibilityStale},
			{"DeleteStaleReceipt", x.testDeleteStale},
			{"DeleteBatchStaleReceipts", x.testDeleteBatchStale},
		}},
		{"LongPoll", []leaf{
			{"WakesOnSend", x.testWakesOnSend},
			{"ZeroWaitEmpty", x.testZeroWaitEmpty},
			{"WaitEndsEmpty", x.testWaitEndsEmpty},
			{"WakesAcrossHandles", x.testWakesAcrossHandles},
		}},
		{"DeadLetter", []leaf{
			{"RedriveRoundTrip", x.testDeadLetter},
			{"RedriveMax", x.testRedriveMax},
			{"DeadLetterQueueDeleted", x.testDeadLetterDeleted},
			{"Purge", x.testPurge},
			{"Stats", x.testStats},
		}},
		{"Context", []leaf{
			{"CancelledBeforeReceive", x.testCancelledBefore},
			{"CancelledDuringWait", x.testCancelledDuringWait},
		}},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, l := range g.leaves {
				t.Run(l.name, func(t *testing.T) {
					t.Parallel() // every subtest has queues (and a handle) of its own
					l.run(t)
				})
			}
		})
	}
}

// Durations the suite works with.
const (
	qVis    = time.Second      // the short visibility timeout
	qLong   = 30 * time.Second // a visibility timeout no subtest outlives
	qSettle = 3 * time.Second  // how long approximate Stats may take to settle
	qSlack  = 100 * time.Millisecond
)

type qsuite struct{ o QueueOpener }

// qenv is one subtest's handle with helpers that fail the test on errors.
type qenv struct {
	t       *testing.T
	ctx     context.Context
	q       hermes.Queues
	x       *qsuite
	prefix  string          // unique to the subtest; every queue name starts with it
	created map[string]bool // queues whose deletion is registered
}

func (x *qsuite) open(t *testing.T) *qenv {
	t.Helper()
	q := x.o.New(t)
	if q == nil {
		t.Fatal("QueueOpener.New returned nil")
	}
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails
	return &qenv{t: t, ctx: t.Context(), q: q, x: x, prefix: "t" + hex.EncodeToString(b[:]), created: map[string]bool{}}
}

// reopen returns a second handle on the same backing store, or skips the
// test when the opener has no Reopen.
func (e *qenv) reopen() hermes.Queues {
	e.t.Helper()
	if e.x.o.Reopen == nil {
		e.t.Skip("QueueOpener.Reopen is nil")
	}
	q2 := e.x.o.Reopen(e.t, e.q)
	if q2 == nil {
		e.t.Fatal("QueueOpener.Reopen returned nil")
	}
	return q2
}

// name returns the subtest's queue name with the given suffix.
func (e *qenv) name(suffix string) string { return e.prefix + "-" + suffix }

// create creates the queue name(suffix) and returns its name.
func (e *qenv) create(suffix string, o hermes.QueueOptions) string {
	e.t.Helper()
	name := e.name(suffix)
	e.createNamed(name, o)
	return name
}

func (e *qenv) createNamed(name string, o hermes.QueueOptions) {
	e.t.Helper()
	if err := e.q.CreateQueue(e.ctx, name, o); err != nil {
		e.t.Fatalf("CreateQueue(%q, %+v): %v", name, o, err)
	}
	e.deleteAtEnd(name)
}

// deleteAtEnd registers the deletion of the queue when the test ends, so
// that a shared backing store (an SQS emulator) does not fill up.
func (e *qenv) deleteAtEnd(name string) {
	if e.created[name] {
		return
	}
	e.created[name] = true
	q, t := e.q, e.t
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := q.DeleteQueue(ctx, name); err != nil && !hermes.IsKind(err, hermes.NotFound) {
			t.Logf("cleanup: DeleteQueue(%q): %v", name, err)
		}
	})
}

func (e *qenv) send(queue, body string, attrs map[string]string) string {
	e.t.Helper()
	id, err := e.q.Send(e.ctx, queue, body, attrs)
	if err != nil {
		e.t.Fatalf("Send to %s: %v", queue, err)
	}
	if id == "" {
		e.t.Fatalf("Send to %s returned an empty id", queue)
	}
	return id
}

// receive calls Receive and checks what holds for every batch: at most max
// messages, each with an id and a receipt, no message twice.
func (e *qenv) receive(queue string, max int, wait, vis time.Duration) []hermes.Delivery {
	e.t.Helper()
	ds, err := e.q.Receive(e.ctx, queue, max, wait, vis)
	if err != nil {
		e.t.Fatalf("Receive(%s, max %d, wait %v, visibility %v): %v", queue, max, wait, vis, err)
	}
	checkBatch(e.t, queue, max, ds)
	return ds
}

func checkBatch(t testing.TB, queue string, max int, ds []hermes.Delivery) {
	t.Helper()
	if len(ds) > max {
		t.Errorf("Receive(%s, max %d) returned %d messages, want at most %d", queue, max, len(ds), max)
	}
	ids := map[string]bool{}
	for _, d := range ds {
		if d.ID == "" || d.Receipt == "" {
			t.Errorf("Receive(%s) returned a delivery with ID %q and Receipt %q, want both non-empty", queue, d.ID, d.Receipt)
		}
		if ids[d.ID] {
			t.Errorf("Receive(%s) returned message %s twice in one batch", queue, d.ID)
		}
		ids[d.ID] = true
	}
}

// receiveOne receives from queue (max 1, waits of 1 s) until a message comes
// or within passes; it fails the test, saying why a message was expected,
// when none came.
func (e *qenv) receiveOne(why, queue string, within, vis time.Duration) hermes.Delivery {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ds := e.receive(queue, 1, time.Second, vis)
		if len(ds) > 0 {
			return ds[0]
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: no message received from %s within %v", why, queue, within)
		}
	}
}

// receiveAll receives from queue (batches of up to 10, waits of 1 s) until
// n distinct messages came, hidden for vis, and returns them in the order
// received with the time the last Receive returned. It fails the test when
// they do not all come within 5 s, and skips it when one comes twice (the
// receives outlasted vis: too slow to check what the caller wants to).
func (e *qenv) receiveAll(why, queue string, n int, vis time.Duration) ([]hermes.Delivery, time.Time) {
	e.t.Helper()
	var got []hermes.Delivery
	seen := map[string]bool{}
	var last time.Time
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: received %d of %d messages from %s within 5 s", why, len(got), n, queue)
		}
		ds := e.receive(queue, min(n-len(got), hermes.MaxReceiveBatch), time.Second, vis)
		last = time.Now()
		for _, d := range ds {
			if seen[d.ID] {
				e.t.Skipf("too slow to check: message %s was received again, after its visibility of %v, before %d messages were received", d.ID, vis, n)
			}
			seen[d.ID] = true
			got = append(got, d)
		}
	}
	return got, last
}

// receipts returns the receipts of ds.
func receipts(ds []hermes.Delivery) []string {
	rs := make([]string, len(ds))
	for i, d := range ds {
		rs[i] = d.Receipt
	}
	return rs
}

// expectNone receives from queue with the given wait and fails the test if
// that returns anything.
func (e *qenv) expectNone(why, queue string, wait time.Duration) {
	e.t.Helper()
	if ds := e.receive(queue, hermes.MaxReceiveBatch, wait, qLong); len(ds) > 0 {
		e.t.Errorf("%s: Receive from %s returned %s, want nothing", why, queue, deliveries(ds))
	}
}

// wantStats waits up to qSettle for the queue's Stats to equal want (the
// counts are approximate).
func (e *qenv) wantStats(why, queue string, want hermes.QueueStats) {
	e.t.Helper()
	deadline := time.Now().Add(qSettle)
	for {
		got, err := e.q.Stats(e.ctx, queue)
		if err != nil {
			e.t.Fatalf("Stats(%s): %v", queue, err)
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Errorf("%s: Stats(%s) = %+v for %v, want %+v", why, queue, got, qSettle, want)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *qenv) list(prefix string) []string {
	e.t.Helper()
	names, err := e.q.ListQueues(e.ctx, prefix)
	if err != nil {
		e.t.Fatalf("ListQueues(%q): %v", prefix, err)
	}
	return names
}

func (e *qenv) mustDo(what string, err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}

// sleepUntil sleeps until t (not at all when t has passed).
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// deliveries describes ds for failure messages.
func deliveries(ds []hermes.Delivery) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		b := d.Body
		if len(b) > 40 {
			b = b[:40] + "…"
		}
		s[i] = fmt.Sprintf("{ID %s, ReceiveCount %d, Body %q}", d.ID, d.ReceiveCount, b)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// wantDelivery checks the message that d delivers against what was sent.
func wantDelivery(t testing.TB, why string, d hermes.Delivery, id, body string, attrs map[string]string, count int) {
	t.Helper()
	if id != "" && d.ID != id {
		t.Errorf("%s: got message %s, want %s", why, d.ID, id)
	}
	if d.Body != body {
		t.Errorf("%s: Body = %q, want %q", why, short40(d.Body), short40(body))
	}
	if !maps.Equal(d.Attributes, attrs) { // nil and empty are equal
		t.Errorf("%s: Attributes = %v, want %v", why, d.Attributes, attrs)
	}
	if count > 0 && d.ReceiveCount != count {
		t.Errorf("%s: ReceiveCount = %d, want %d", why, d.ReceiveCount, count)
	}
}

func short40(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%s… (%d bytes)", s[:40], len(s))
	}
	return s
}

// ---------------------------------------------------------------------------
// Creating, listing and deleting queues

func (x *qsuite) testCreateIdempotent(t *testing.T) {
	e := x.open(t)
	o := hermes.QueueOptions{VisibilityTimeout: qLong}
	q := e.create("a", o)
	if err := e.q.CreateQueue(e.ctx, q, o); err != nil {
		t.Errorf("CreateQueue of an existing queue with the same options: got %v, want no error", err)
	}
	id := e.send(q, "kept", nil)
	if err := e.q.CreateQueue(e.ctx, q, o); err != nil {
		t.Errorf("CreateQueue of an existing queue holding a message: got %v, want no error", err)
	}
	if got := e.list(e.prefix); !slices.Equal(got, []string{q}) {
		t.Errorf("ListQueues(%q) after creating %s three times = %q, want just it", e.prefix, q, got)
	}
	d := e.receiveOne("a message sent before CreateQueue was repeated must stay in the queue", q, 3*time.Second, qLong)
	wantDelivery(t, "message kept across CreateQueue", d, id, "kept", nil, 1)
}

// testCreateUpdatesOptions checks that CreateQueue of an existing queue
// updates its options, and that Receive with visibility 0 uses the queue's
// default.
func (x *qsuite) testCreateUpdatesOptions(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{VisibilityTimeout: qLong})
	e.createNamed(q, hermes.QueueOptions{VisibilityTimeout: qVis})
	id := e.send(q, "m", nil)
	start := time.Now()
	d1 := e.receiveOne("first receive", q, 3*time.Second, 0)
	d2 := e.receiveOne("the queue's VisibilityTimeout was updated from 30 s to 1 s by CreateQueue "+
		"and Receive with visibility 0 uses it, so the message must be visible again after 1 s", q, 4*time.Second, 0)
	if el := time.Since(start); el < qVis-qSlack {
		t.Errorf("message received again %v after the first receive began, before its visibility of %v ended", el, qVis)
	}
	wantDelivery(t, "first receive", d1, id, "m", nil, 1)
	wantDelivery(t, "second receive", d2, id, "m", nil, 2)
}

func (x *qsuite) testInvalidNames(t *testing.T) {
	e := x.open(t)
	names := []string{
		"",
		e.prefix + strings.Repeat("x", hermes.MaxQueueNameLen+1-len(e.prefix)), // 81 characters
		e.prefix + ".b",
		e.prefix + " b",
	}
	for _, name := range names {
		err := e.q.CreateQueue(e.ctx, name, hermes.QueueOptions{})
		if err == nil {
			e.deleteAtEnd(name)
		}
		wantKind(t, fmt.Sprintf("CreateQueue(%q) (%d characters)", name, len(name)), err, hermes.Invalid)
	}
	// 80 characters is the limit, not over it.
	longest := e.prefix + strings.Repeat("x", hermes.MaxQueueNameLen-len(e.prefix))
	if err := e.q.CreateQueue(e.ctx, longest, hermes.QueueOptions{}); err != nil {
		t.Errorf("CreateQueue of a valid name of %d characters: %v", len(longest), err)
	} else {
		e.deleteAtEnd(longest)
	}
}

func (x *qsuite) testInvalidOptions(t *testing.T) {
	e := x.open(t)
	name := e.name("neg")
	err := e.q.CreateQueue(e.ctx, name, hermes.QueueOptions{VisibilityTimeout: -time.Second})
	if err == nil {
		e.deleteAtEnd(name)
	}
	wantKind(t, "CreateQueue with a negative VisibilityTimeout", err, hermes.Invalid)
}

func (x *qsuite) testDeadLetterMissing(t *testing.T) {
	e := x.open(t)
	name := e.name("a")
	err := e.q.CreateQueue(e.ctx, name, hermes.QueueOptions{DeadLetter: e.name("missing"), MaxReceives: 2})
	if err == nil {
		e.deleteAtEnd(name)
	}
	wantKind(t, "CreateQueue with a DeadLetter queue that does not exist", err, hermes.NotFound)
}

func (x *qsuite) testListQueues(t *testing.T) {
	e := x.open(t)
	for _, s := range []string{"b", "c", "a"} {
		e.create(s, hermes.QueueOptions{})
	}
	other := e.prefix + "_z" // shares e.prefix but not e.prefix+"-"
	e.createNamed(other, hermes.QueueOptions{})
	a, b, c := e.name("a"), e.name("b"), e.name("c")

	cases := []struct {
		prefix string
		want   []string
	}{
		{e.prefix + "-", []string{a, b, c}},
		{e.prefix, []string{a, b, c, other}}, // '-' sorts before '_'
		{a, []string{a}},
		{e.name("zz"), nil},
	}
	for _, c := range cases {
		if got := e.list(c.prefix); !slices.Equal(got, c.want) {
			t.Errorf("ListQueues(%q) = %q, want %q", c.prefix, got, c.want)
		}
	}
	e.mustDo("DeleteQueue "+b, e.q.DeleteQueue(e.ctx, b))
	if got, want := e.list(e.prefix+"-"), []string{a, c}; !slices.Equal(got, want) {
		t.Errorf("ListQueues(%q) after DeleteQueue(%s) = %q, want %q", e.prefix+"-", b, got, want)
	}
}

func (x *qsuite) testDeleteQueue(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{})
	e.send(q, "doomed", nil)
	e.mustDo("DeleteQueue", e.q.DeleteQueue(e.ctx, q))

	_, err := e.q.Send(e.ctx, q, "late", nil)
	wantKind(t, "Send to a deleted queue", err, hermes.NotFound)
	_, err = e.q.Receive(e.ctx, q, 1, 0, 0)
	wantKind(t, "Receive from a deleted queue", err, hermes.NotFound)
	_, err = e.q.Stats(e.ctx, q)
	wantKind(t, "Stats of a deleted queue", err, hermes.NotFound)
	wantKind(t, "DeleteBatch on a deleted queue", e.q.DeleteBatch(e.ctx, q, []string{"receipt-1"}), hermes.NotFound)
	wantKind(t, "DeleteQueue of a deleted queue", e.q.DeleteQueue(e.ctx, q), hermes.NotFound)
	wantKind(t, "DeleteQueue of a queue that never existed", e.q.DeleteQueue(e.ctx, e.name("never")), hermes.NotFound)
	if got := e.list(e.prefix); len(got) != 0 {
		t.Errorf("ListQueues(%q) after DeleteQueue = %q, want none", e.prefix, got)
	}
}

// ---------------------------------------------------------------------------
// Sending and receiving

func (x *qsuite) testRoundTrip(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{VisibilityTimeout: qLong})
	body := "héllo ✓\n{\"json\": [1, 2]}\t<end>"
	attrs := map[string]string{"kind": "instruction", "client-id": "amelia", "trace_id": "0af7651916cd43dd"}
	before := time.Now()
	id := e.send(q, body, attrs)
	after := time.Now()
	d := e.receiveOne("a sent message must be received", q, 3*time.Second, qLong)
	wantDelivery(t, "received message", d, id, body, attrs, 1)
	if d.SentAt.Before(before.Add(-2*time.Second)) || d.SentAt.After(after.Add(2*time.Second)) {
		t.Errorf("SentAt = %v, want between %v and %v (the Send call, ± 2 s)", d.SentAt, before, after)
	}
	e.mustDo("Delete", e.q.Delete(e.ctx, q, d.Receipt))
	e.wantStats("after the only message was deleted", q, hermes.QueueStats{})

	// Without attributes.
	id2 := e.send(q, "plain", nil)
	d2 := e.receiveOne("a message without attributes", q, 3*time.Second, qLong)
	wantDelivery(t, "message without attributes", d2, id2, "plain", nil, 1)
	if id2 == id {
		t.Errorf("two Sends returned the same id %s", id)
	}
}

func (x *qsuite) testUnknownQueue(t *testing.T) {
	e := x.open(t)
	missing := e.name("missing")
	_, err := e.q.Send(e.ctx, missing, "x", nil)
	wantKind(t, "Send to a queue that does not exist", err, hermes.NotFound)
	_, err = e.q.Receive(e.ctx, missing, 1, 0, 0)
	wantKind(t, "Receive from a queue that does not exist", err, hermes.NotFound)
	_, err = e.q.Stats(e.ctx, missing)
	wantKind(t, "Stats of a queue that does not exist", err, hermes.NotFound)
	err = e.q.DeleteBatch(e.ctx, missing, []string{"receipt-1", "receipt-2"})
	wantKind(t, "DeleteBatch on a queue that does not exist", err, hermes.NotFound)
}

func (x *qsuite) testTooLarge(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{VisibilityTimeout: qLong})
	_, err := e.q.Send(e.ctx, q, strings.Repeat("x", hermes.MaxMessageBytes+1), nil)
	wantKind(t, fmt.Sprintf("Send of a body of MaxMessageBytes+1 (%d) bytes", hermes.MaxMessageBytes+1), err, hermes.TooLarge)

	big := strings.Repeat("y", hermes.MaxMessageBytes-10) + "0123456789" // exactly the limit
	id := e.send(q, big, nil)
	d := e.receiveOne("a body of exactly MaxMessageBytes must be received", q, 3*time.Second, qLong)
	wantDelivery(t, "message of MaxMessageBytes", d, id, big, nil, 1)
}

func (x *qsuite) testBatchMax(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{VisibilityTimeout: qLong})
	sent := map[string]string{}
	for i := range 15 {
		body := fmt.Sprintf("m%02d", i)
		sent[e.send(q, body, nil)] = body
	}
	got := map[string]string{}
	deadline := time.Now().Add(5 * time.Second)
	for first := true; len(got) < len(sent) && time.Now().Before(deadline); first = false {
		ds := e.receive(q, hermes.MaxReceiveBatch, time.Second, qLong)
		if first && len(ds) == 0 {
			t.Errorf("Receive(max 10, wait 1 s) with 15 messages visible returned none")
		}
		for _, d := range ds {
			if _, dup := got[d.ID]; dup {
				t.Errorf("message %s received twice within its visibility of %v", d.ID, qLong)
			}
			got[d.ID] = d.Body
		}
	}
	if !maps.Equal(got, sent) {
		t.Errorf("received %d messages %v, want the %d sent %v", len(got), got, len(sent), sent)
	}
}

// testEachOnce drains 30 messages with concurrent receivers that delete what
// they receive: with a visibility long enough for every delete, each message
// comes exactly once.
func (x *qsuite) testEachOnce(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{VisibilityTimeout: qLong})
	const n, receivers = 30, 4
	sent := map[string]string{}
	for i := range n {
		body := fmt.Sprintf("job %d", i)
		id := e.send(q, body, nil)
		if _, dup := sent[id]; dup {
			t.Fatalf("Send returned id %s twice", id)
		}
		sent[id] = body
	}

	var (
		mu    sync.Mutex
		seen  = map[string]int{}
		total int
		errs  []error
		wg    sync.WaitGroup
	)
	deadline := time.Now().Add(10 * time.Second)
	for range receivers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				mu.Lock()
				done := total >= n
				mu.Unlock()
				if done {
					return
				}
				ds, err := e.q.Receive(e.ctx, q, hermes.MaxReceiveBatch, time.Second, qLong)
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("receive: %w", err))
					mu.Unlock()
					return
				}
				checkBatch(t, q, hermes.MaxReceiveBatch, ds)
				for _, d := range ds {
					err := e.q.Delete(e.ctx, q, d.Receipt)
					mu.Lock()
					seen[d.ID]++
					total++
					if body, ok := sent[d.ID]; !ok {
						errs = append(errs, fmt.Errorf("received message %s that was never sent", d.ID))
					} else if d.Body != body {
						errs = append(errs, fmt.Errorf("message %s has Body %q, want %q", d.ID, d.Body, body))
					}
					if err != nil {
						errs = append(errs, fmt.Errorf("delete: %w", err))
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	for id := range sent {
		switch c := seen[id]; {
		case c == 0:
			t.Errorf("message %s was never received (%d receivers, 10 s)", id, receivers)
		case c > 1:
			t.Errorf("message %s was received %d times, want once: it was deleted well within its visibility of %v", id, c, qLong)
		}
	}
	e.wantStats("after every message was received and deleted", q, hermes.QueueStats{})
}

// testDeleteBatch deletes a full batch (MaxReceiveBatch messages) with one
// DeleteBatch: none comes back after its visibility, and the queue is empty.
func (x *qsuite) testDeleteBatch(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{VisibilityTimeout: qLong})
	const vis = 2 * time.Second
	for i := range hermes.MaxReceiveBatch {
		e.send(q, fmt.Sprintf("m%d", i), nil)
	}
	ds, received := e.receiveAll("the sent messages", q, hermes.MaxReceiveBatch, vis)
	e.mustDo(fmt.Sprintf("DeleteBatch of %d receipts", len(ds)), e.q.DeleteBatch(e.ctx, q, receipts(ds)))
	e.wantStats(fmt.Sprintf("after DeleteBatch of all %d received messages", len(ds)), q, hermes.QueueStats{})
	if err := e.q.DeleteBatch(e.ctx, q, receipts(ds)); err != nil {
		t.Errorf("DeleteBatch again of deleted messages: got %v, want no error (deletes are retried)", err)
	}
	// Had any not been deleted, it would be visible again now.
	sleepUntil(received.Add(vis + 200*time.Millisecond))
	e.expectNone(fmt.Sprintf("messages deleted with DeleteBatch must never come back after their visibility (%v)", vis), q, time.Second)
	e.wantStats("after DeleteBatch, past the visibility", q, hermes.QueueStats{})
}

// testDeleteBatchLimits checks that an empty list does nothing and that more
// than MaxReceiveBatch receipts, or an empty receipt, are Invalid and delete
// nothing.
func (x *qsuite) testDeleteBatchLimits(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{VisibilityTimeout: qLong})
	n := hermes.MaxReceiveBatch + 1
	for i := range n {
		e.send(q, fmt.Sprintf("m%d", i), nil)
	}
	ds, _ := e.receiveAll("the sent messages", q, n, qLong)
	rs := receipts(ds)

	if err := e.q.DeleteBatch(e.ctx, q, nil); err != nil {
		t.Errorf("DeleteBatch of a nil list: got %v, want no error (it does nothing)", err)
	}
	if err := e.q.DeleteBatch(e.ctx, q, []string{}); err != nil {
		t.Errorf("DeleteBatch of an empty list: got %v, want no error (it does nothing)", err)
	}
	wantKind(t, fmt.Sprintf("DeleteBatch of %d receipts (MaxReceiveBatch+1)", n), e.q.DeleteBatch(e.ctx, q, rs), hermes.Invalid)
	wantKind(t, "DeleteBatch of a receipt and an empty one", e.q.DeleteBatch(e.ctx, q, []string{rs[0], ""}), hermes.Invalid)
	e.wantStats(fmt.Sprintf("%d received messages after empty and refused DeleteBatch calls, which delete nothing", n), q, hermes.QueueStats{InFlight: n})

	e.mustDo("DeleteBatch of MaxReceiveBatch receipts", e.q.DeleteBatch(e.ctx, q, rs[:hermes.MaxReceiveBatch]))
	e.mustDo("DeleteBatch of one receipt", e.q.DeleteBatch(e.ctx, q, rs[hermes.MaxReceiveBatch:]))
	e.wantStats("after every received message was deleted in two batches", q, hermes.QueueStats{})
}

// ---------------------------------------------------------------------------
// Visibility

func (x *qsuite) testHiddenThenVisible(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{VisibilityTimeout: qLong})
	id := e.send(q, "m", nil)
	start := time.Now()
	d1 := e.receiveOne("first receive", q, 3*time.Second, qVis)
	ds := e.receive(q, hermes.MaxReceiveBatch, 0, qLong)
	// The message was hidden at some moment after start, for qVis: a second
	// Receive that ended before start+qVis must not see it.
	if len(ds) > 0 {
		if time.Since(start) < qVis {
			t.Fatalf("a second Receive right after the first returned %s, want nothing: a received message is hidden for its visibility (%v)", deliveries(ds), qVis)
		}
		t.Skipf("too slow to check: the second Receive ended %v after the first began", time.Since(start))
	}
	d2 := e.receiveOne("a received message that is not deleted must be visible again after its visibility (1 s)", q, 4*time.Second, qLong)
	if el := time.Since(start); el < qVis-qSlack {
		t.Errorf("message received again %v after the first receive began, before its visibility of %v ended", el, qVis)
	}
	wantDelivery(t, "first receive", d1, id, "m", nil, 1)
	wantDelivery(t, "receive after the visibility ended", d2, id, "m", nil, 2)
	if d2.Receipt == d1.Receipt {
		t.Errorf("the second receive has the same Receipt %q as the first, want a new one", d1.Receipt)
	}
	if !d2.SentAt.Equal(d1.SentAt) {
		t.Errorf("SentAt changed between receives: %v, then %v", d1.SentAt, d2.SentAt)
	}
}

func (x *qsuite) testChangeVisibilityZero(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{VisibilityTimeout: qLong})
	id := e.send(q, "m", nil)
	d1 := e.receiveOne("first receive", q, 3*time.Second, qLong)
	e.mustDo("ChangeVisibility(0)", e.q.ChangeVisibility(e.ctx, q, d1.Receipt, 0))
	d2 := e.receiveOne("ChangeVisibility(0) must make the message visible at once", q, 2*time.Second, qLong)
	wantDelivery(t, "receive after ChangeVisibility(0)", d2, id, "m", nil, 2)
}

func (x *qsuite) testChangeVisibilityExtends(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{VisibilityTimeout: qLong})
	id := e.send(q, "m", nil)
	d1 := e.receiveOne("first receive", q, 3*time.Second, qVis)
	received := time.Now()
	const extended = 3 * time.Second
	changeStart := time.Now()
	e.mustDo("ChangeVisibility(3 s)", e.q.ChangeVisibility(e.ctx, q, d1.Receipt, extended))

	// The original visibility (1 s) ended by received+1s; the extended one
	// does not end before changeStart+3s.
	sleepUntil(received.Add(qVis + 300*time.Millisecond))
	ds := e.receive(q, hermes.MaxReceiveBatch, time.Second, qLong)
	if len(ds) > 0 {
		if el := time.Since(changeStart); el < extended {
			t.Fatalf("Receive %v after ChangeVisibility(%v) returned %s, want nothing: the message must stay hidden past its original visibility of %v",
				el.Round(time.Millisecond), extended, deliveries(ds), qVis)
		}
		t.Skipf("too slow to check: the Receive ended %v after ChangeVisibility(%v) began", time.Since(changeStart), extended)
	}
	d2 := e.receiveOne("the message must be visible again once the extended visibility ends", q, 4*time.Second, qLong)
	wantDelivery(t, "receive after the extended visibility", d2, id, "m", nil, 2)
	if el := time.Since(changeStart); el < extended-qSlack {
		t.Errorf("message received again %v after ChangeVisibility(%v), before the extended visibility ended", el, extended)
	}
}

func (x *qsuite) testChangeVisibilityStale(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{VisibilityTimeout: qLong})
	id := e.send(q, "m", nil)
	d1 := e.receiveOne("first receive", q, 3*time.Second, qVis)
	d2 := e.receiveOne("receive after the visibility (1 s) ended", q, 4*time.Second, qLong)
	wantDelivery(t, "second receive", d2, id, "m", nil, 2)

	err := e.q.ChangeVisibility(e.ctx, q, d1.Receipt, qLong)
	wantKind(t, "ChangeVisibility with the receipt of an earlier receive (the message was received again)", err, hermes.Conflict)

	// The current receipt works.
	e.mustDo("ChangeVisibility(0) with the current receipt", e.q.ChangeVisibility(e.ctx, q, d2.Receipt, 0))
	d3 := e.receiveOne("ChangeVisibility(0) with the current receipt must make the message visible", q, 2*time.Second, qLong)
	wantDelivery(t, "third receive", d3, id, "m", nil, 3)

	e.mustDo("Delete", e.q.Delete(e.ctx, q, d3.Receipt))
	err = e.q.ChangeVisibility(e.ctx, q, d3.Receipt, qLong)
	wantKind(t, "ChangeVisibility with the receipt of a deleted message", err, hermes.Conflict)
}

func (x *qsuite) testDeleteStale(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{VisibilityTimeout: qLong})
	e.send(q, "m", nil)
	d1 := e.receiveOne("first receive", q, 3*time.Second, qVis)
	d2 := e.receiveOne("receive after the visibility (1 s) ended", q, 4*time.Second, qVis)
	received := time.Now()

	if err := e.q.Delete(e.ctx, q, d1.Receipt); err != nil {
		t.Errorf("Delete with the receipt of an earlier receive: got %v, want no error", err)
	}
	if err := e.q.Delete(e.ctx, q, d2.Receipt); err != nil {
		t.Errorf("Delete with the current receipt: %v", err)
	}
	if err := e.q.Delete(e.ctx, q, d2.Receipt); err != nil {
		t.Errorf("Delete again of a deleted message: got %v, want no error (deletes are retried)", err)
	}
	// Had the message not been deleted, it would be visible again now.
	sleepUntil(received.Add(qVis + 200*time.Millisecond))
	e.expectNone("a deleted message must never come back", q, time.Second)
	e.wantStats("after the only message was deleted", q, hermes.QueueStats{})
}

// testDeleteBatchStale deletes a batch that mixes live receipts with a stale
// one (its message was received again) and one of a deleted message: no
// error, and the live ones are deleted.
func (x *qsuite) testDeleteBatchStale(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{VisibilityTimeout: qLong})
	const vis = 2 * time.Second
	e.send(q, "received twice", nil)
	a1 := e.receiveOne("first receive", q, 3*time.Second, qVis)
	a2 := e.receiveOne("receive after the visibility (1 s) ended", q, 4*time.Second, vis)
	if a2.ID != a1.ID || a2.Receipt == a1.Receipt {
		t.Fatalf("the second receive got %s with receipt %q, want %s again with a new receipt", a2.ID, a2.Receipt, a1.ID)
	}
	e.send(q, "live", nil)
	e.send(q, "deleted", nil)
	ds, received := e.receiveAll("the two messages sent next", q, 2, vis)
	live, gone := ds[0], ds[1]
	if live.Body != "live" {
		live, gone = gone, live
	}
	e.mustDo("Delete", e.q.Delete(e.ctx, q, gone.Receipt))

	batch := []string{a1.Receipt, live.Receipt, gone.Receipt, a2.Receipt}
	if err := e.q.DeleteBatch(e.ctx, q, batch); err != nil {
		t.Fatalf("DeleteBatch of [a stale receipt (the message was received again), a live one, one of a deleted message, "+
			"the current one of the message received again]: got %v, want no error", err)
	}
	err := e.q.ChangeVisibility(e.ctx, q, live.Receipt, 0)
	wantKind(t, "ChangeVisibility with a live receipt deleted in a DeleteBatch that held stale receipts too", err, hermes.Conflict)
	e.wantStats("after DeleteBatch of every live receipt", q, hermes.QueueStats{})
	// Had the live ones not been deleted, they would be visible again now.
	sleepUntil(received.Add(vis + 200*time.Millisecond))
	e.expectNone("messages deleted with DeleteBatch among stale receipts must never come back", q, time.Second)
}

// ---------------------------------------------------------------------------
// Long polling

func (x *qsuite) testWakesOnSend(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{VisibilityTimeout: qLong})
	sendErr := make(chan error, 1)
	go func() {
		time.Sleep(200 * time.Millisecond)
		_, err := e.q.Send(e.ctx, q, "wake", nil)
		sendErr <- err
	}()
	start := time.Now()
	ds, err := e.q.Receive(e.ctx, q, hermes.MaxReceiveBatch, 5*time.Second, qLong)
	el := time.Since(start)
	if err := <-sendErr; err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err != nil {
		t.Fatalf("Receive with wait 5 s: %v", err)
	}
	if len(ds) != 1 || ds[0].Body != "wake" {
		t.Errorf("Receive with wait 5 s, one message sent after 200 ms: got %s, want that message", deliveries(ds))
	}
	if el >= 3*time.Second {
		t.Errorf("Receive with wait 5 s returned %v after it began, for a message sent after 200 ms; want it to return as soon as the message arrives (under 3 s)", el.Round(time.Millisecond))
	}
}

func (x *qsuite) testZeroWaitEmpty(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{})
	start := time.Now()
	ds := e.receive(q, hermes.MaxReceiveBatch, 0, 0)
	el := time.Since(start)
	if len(ds) != 0 {
		t.Errorf("Receive from an empty queue returned %s", deliveries(ds))
	}
	if el >= time.Second {
		t.Errorf("Receive with wait 0 from an empty queue took %v, want it to return at once", el.Round(time.Millisecond))
	}
}

func (x *qsuite) testWaitEndsEmpty(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{})
	start := time.Now()
	ds := e.receive(q, hermes.MaxReceiveBatch, time.Second, 0)
	el := time.Since(start)
	if len(ds) != 0 {
		t.Errorf("Receive from an empty queue returned %s", deliveries(ds))
	}
	if el < 900*time.Millisecond || el > 3*time.Second {
		t.Errorf("Receive with wait 1 s from an empty queue returned after %v, want about 1 s (0.9–3 s)", el.Round(time.Millisecond))
	}
}

// testWakesAcrossHandles checks that a long poll on one handle returns soon
// after a send through another handle on the same store (another process).
func (x *qsuite) testWakesAcrossHandles(t *testing.T) {
	e := x.open(t)
	q2 := e.reopen()
	q := e.create("a", hermes.QueueOptions{VisibilityTimeout: qLong})
	if got := e.list(e.prefix); !slices.Contains(got, q) {
		t.Fatalf("ListQueues(%q) through the first handle = %q, want %s", e.prefix, got, q)
	}
	if names, err := q2.ListQueues(e.ctx, e.prefix); err != nil || !slices.Contains(names, q) {
		t.Fatalf("ListQueues(%q) through the reopened handle = %q, %v; want %s, created through the first", e.prefix, names, err, q)
	}
	handles := []struct {
		name string
		h    hermes.Queues
	}{{"first", e.q}, {"reopened", q2}}
	for i, recv := range handles {
		send := handles[1-i]
		body := "from the " + send.name + " handle"
		type sent struct {
			at  time.Time
			err error
		}
		done := make(chan sent, 1)
		go func() {
			time.Sleep(200 * time.Millisecond)
			_, err := send.h.Send(e.ctx, q, body, nil)
			done <- sent{time.Now(), err}
		}()
		ds, err := recv.h.Receive(e.ctx, q, hermes.MaxReceiveBatch, 5*time.Second, qLong)
		returned := time.Now()
		s := <-done
		if s.err != nil {
			t.Fatalf("Send through the %s handle: %v", send.name, s.err)
		}
		if err != nil {
			t.Fatalf("Receive with wait 5 s through the %s handle: %v", recv.name, err)
		}
		if len(ds) != 1 || ds[0].Body != body {
			t.Errorf("Receive with wait 5 s through the %s handle: got %s, want the message sent through the %s handle",
				recv.name, deliveries(ds), send.name)
			continue
		}
		if lag := returned.Sub(s.at); lag >= 2*time.Second {
			t.Errorf("Receive with wait 5 s through the %s handle returned %v after the Send through the %s handle returned, want under 2 s",
				recv.name, lag.Round(time.Millisecond), send.name)
		}
		e.mustDo("Delete", recv.h.Delete(e.ctx, q, ds[0].Receipt))
	}
}

// ---------------------------------------------------------------------------
// Dead letters, redrive, purge, stats

func (x *qsuite) testDeadLetter(t *testing.T) {
	e := x.open(t)
	dlq := e.create("dlq", hermes.QueueOptions{VisibilityTimeout: qLong})
	q := e.create("main", hermes.QueueOptions{VisibilityTimeout: qVis, DeadLetter: dlq, MaxReceives: 2})
	body, attrs := "poison", map[string]string{"kind": "instruction", "attempt": "x"}
	id := e.send(q, body, attrs)

	// Receive it twice without deleting it (visibility 0: the queue's 1 s).
	start := time.Now()
	d1 := e.receiveOne("first receive", q, 3*time.Second, 0)
	wantDelivery(t, "first receive", d1, id, body, attrs, 1)
	d2 := e.receiveOne("receive after the queue's VisibilityTimeout (1 s) ended", q, 4*time.Second, 0)
	received := time.Now()
	wantDelivery(t, "second receive", d2, id, body, attrs, 2)
	if el := received.Sub(start); el < qVis-qSlack {
		t.Errorf("message received again %v after the first receive began, before the queue's VisibilityTimeout of %v ended", el, qVis)
	}

	// The third receive finds it over MaxReceives: it goes to the DLQ.
	sleepUntil(received.Add(qVis + 200*time.Millisecond))
	e.expectNone("a message received MaxReceives (2) times must go to the dead-letter queue instead of being returned", q, time.Second)
	e.wantStats("the queue, after its message went to the dead-letter queue", q, hermes.QueueStats{})
	e.wantStats("the dead-letter queue, holding the message", dlq, hermes.QueueStats{Visible: 1})
	dd := e.receiveOne("the message must be in the dead-letter queue", dlq, 3*time.Second, qLong)
	wantDelivery(t, "message in the dead-letter queue", dd, "", body, attrs, 0)
	e.mustDo("ChangeVisibility(0) in the dead-letter queue", e.q.ChangeVisibility(e.ctx, dlq, dd.Receipt, 0))

	// Redrive moves it back with a fresh receive count.
	n, err := e.q.Redrive(e.ctx, dlq, q, 10)
	e.mustDo("Redrive", err)
	if n != 1 {
		t.Errorf("Redrive(dlq, queue, 10) with one message in the dead-letter queue = %d, want 1", n)
	}
	e.wantStats("the dead-letter queue after Redrive", dlq, hermes.QueueStats{})
	e.wantStats("the queue after Redrive", q, hermes.QueueStats{Visible: 1})
	r := e.receiveOne("a redriven message must be receivable from the queue", q, 3*time.Second, qLong)
	wantDelivery(t, "redriven message", r, "", body, attrs, 1)
}

func (x *qsuite) testRedriveMax(t *testing.T) {
	e := x.open(t)
	dlq := e.create("dlq", hermes.QueueOptions{VisibilityTimeout: qLong})
	q := e.create("main", hermes.QueueOptions{VisibilityTimeout: qLong, DeadLetter: dlq, MaxReceives: 2})
	n, err := e.q.Redrive(e.ctx, dlq, q, 10)
	e.mustDo("Redrive of an empty dead-letter queue", err)
	if n != 0 {
		t.Errorf("Redrive of an empty dead-letter queue = %d, want 0", n)
	}
	want := map[string]bool{}
	for i := range 3 {
		want[fmt.Sprintf("dead %d", i)] = true
		e.send(dlq, fmt.Sprintf("dead %d", i), nil)
	}
	e.wantStats("the dead-letter queue after 3 sends", dlq, hermes.QueueStats{Visible: 3})
	moved := 0
	deadline := time.Now().Add(5 * time.Second)
	for moved < 3 && time.Now().Before(deadline) {
		n, err := e.q.Redrive(e.ctx, dlq, q, 2)
		e.mustDo("Redrive", err)
		if n < 0 || n > 2 {
			t.Fatalf("Redrive(dlq, queue, 2) = %d, want at most 2", n)
		}
		moved += n
	}
	if moved != 3 {
		t.Errorf("Redrive(dlq, queue, 2) moved %d messages in all, want the 3 in the dead-letter queue", moved)
	}
	e.wantStats("the dead-letter queue after Redrive", dlq, hermes.QueueStats{})
	e.wantStats("the queue after Redrive", q, hermes.QueueStats{Visible: 3})
	got := map[string]bool{}
	for len(got) < 3 {
		d := e.receiveOne("redriven messages must be receivable", q, 3*time.Second, qLong)
		wantDelivery(t, "redriven message", d, "", d.Body, nil, 1)
		got[d.Body] = true
	}
	if !maps.Equal(got, want) {
		t.Errorf("received %v after Redrive, want %v", got, want)
	}
}

// testDeadLetterDeleted deletes a dead-letter queue that another queue still
// names. The contract says neither that DeleteQueue refuses that nor what
// becomes of a message over MaxReceives whose dead-letter queue is gone, so
// the subtest checks only what it does say: DeleteQueue succeeds, and Receive
// from the other queue, which exists, does not fail.
func (x *qsuite) testDeadLetterDeleted(t *testing.T) {
	e := x.open(t)
	dlq := e.create("dlq", hermes.QueueOptions{})
	q := e.create("main", hermes.QueueOptions{VisibilityTimeout: qLong, DeadLetter: dlq, MaxReceives: 1})
	e.send(q, "poison", nil)
	d := e.receiveOne("first receive", q, 3*time.Second, qLong)
	e.mustDo("ChangeVisibility(0)", e.q.ChangeVisibility(e.ctx, q, d.Receipt, 0))
	e.mustDo("DeleteQueue of the dead-letter queue", e.q.DeleteQueue(e.ctx, dlq))
	// The message is visible and over MaxReceives (1), its dead-letter queue gone.
	if _, err := e.q.Receive(e.ctx, q, hermes.MaxReceiveBatch, 0, qLong); err != nil {
		t.Errorf("Receive from a queue whose dead-letter queue was deleted, holding a message over MaxReceives: got %v, want no error", err)
	}
}

func (x *qsuite) testPurge(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{VisibilityTimeout: qLong})
	for i := range 3 {
		e.send(q, fmt.Sprintf("m%d", i), nil)
	}
	e.receiveOne("receive before Purge", q, 3*time.Second, qVis)
	received := time.Now()
	e.mustDo("Purge", e.q.Purge(e.ctx, q))
	e.wantStats("after Purge", q, hermes.QueueStats{})
	// The message received before Purge would be visible again now.
	sleepUntil(received.Add(qVis + 200*time.Millisecond))
	e.expectNone("Purge deletes every message, those in flight too", q, time.Second)
}

func (x *qsuite) testStats(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{VisibilityTimeout: qLong})
	e.wantStats("an empty queue", q, hermes.QueueStats{})
	for i := range 3 {
		e.send(q, fmt.Sprintf("m%d", i), nil)
	}
	e.wantStats("after 3 sends", q, hermes.QueueStats{Visible: 3})
	d := e.receiveOne("receive", q, 3*time.Second, qLong)
	e.wantStats("after 3 sends and 1 receive", q, hermes.QueueStats{Visible: 2, InFlight: 1})
	e.mustDo("Delete", e.q.Delete(e.ctx, q, d.Receipt))
	e.wantStats("after 3 sends, 1 receive and its delete", q, hermes.QueueStats{Visible: 2})
}

// ---------------------------------------------------------------------------
// Contexts

func (x *qsuite) testCancelledBefore(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{})
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	start := time.Now()
	_, err := e.q.Receive(ctx, q, hermes.MaxReceiveBatch, 5*time.Second, 0)
	el := time.Since(start)
	if err == nil {
		t.Error("Receive with a cancelled context: got no error")
	}
	if el >= time.Second {
		t.Errorf("Receive (wait 5 s) with a cancelled context took %v, want it to return at once", el.Round(time.Millisecond))
	}
}

func (x *qsuite) testCancelledDuringWait(t *testing.T) {
	e := x.open(t)
	q := e.create("a", hermes.QueueOptions{})
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	timer := time.AfterFunc(200*time.Millisecond, cancel)
	defer timer.Stop()
	start := time.Now()
	_, err := e.q.Receive(ctx, q, hermes.MaxReceiveBatch, 10*time.Second, 0)
	el := time.Since(start)
	if err == nil {
		t.Error("Receive whose context was cancelled during its wait: got no error")
	}
	if el >= 2*time.Second {
		t.Errorf("Receive (wait 10 s) whose context was cancelled after 200 ms returned after %v, want promptly (under 2 s)", el.Round(time.Millisecond))
	}
}
