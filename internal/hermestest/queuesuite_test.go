package hermestest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

// TestQueueSuite runs the suite against refQueues, a plain in-memory
// reference implementation of the contract on the real clock, so that the
// suite itself is checked: every failure here is a bug of the suite or of
// refQueues.
func TestQueueSuite(t *testing.T) {
	QueueSuite(t, QueueOpener{
		New: func(t *testing.T) hermes.Queues { return &refQueues{s: newRefQueueStore()} },
		Reopen: func(t *testing.T, q hermes.Queues) hermes.Queues {
			return &refQueues{s: q.(*refQueues).s}
		},
	})
}

// Bugs planted in refQueues, each of which the suite must catch.
const (
	bugDeleteBatchFirstOnly     = "DeleteBatchFirstOnly"     // deletes the first receipt only
	bugDeleteBatchStaleConflict = "DeleteBatchStaleConflict" // a stale receipt fails the batch (after deleting the others)
	bugDeleteBatchNoLimits      = "DeleteBatchNoLimits"      // takes 11 receipts, or an empty one
	bugDeleteBatchNoQueueCheck  = "DeleteBatchNoQueueCheck"  // no NotFound for a missing queue
)

// plantedBugEnv names the bug TestQueueSuitePlanted plants; it is set only
// in the test binaries that TestQueueSuiteCatchesBugs runs.
const plantedBugEnv = "HERMES_TEST_QUEUESUITE_BUG"

// TestQueueSuiteCatchesBugs runs the suite's subtests that should fail
// against refQueues with a planted bug (each in a test binary of its own,
// through TestQueueSuitePlanted, since a failing subtest fails its parent)
// and checks that they do: a suite that passes a broken adapter checks
// nothing.
func TestQueueSuiteCatchesBugs(t *testing.T) {
	if os.Getenv(plantedBugEnv) != "" {
		t.Skip("running a planted bug")
	}
	for _, c := range []struct {
		bug   string
		run   string // the -test.run pattern below TestQueueSuitePlanted
		fails string // the subtest that must fail
	}{
		{bugDeleteBatchFirstOnly, "Messages/^DeleteBatch$", "Messages/DeleteBatch"},
		{bugDeleteBatchFirstOnly, "Visibility/DeleteBatchStaleReceipts", "Visibility/DeleteBatchStaleReceipts"},
		{bugDeleteBatchStaleConflict, "Visibility/DeleteBatchStaleReceipts", "Visibility/DeleteBatchStaleReceipts"},
		{bugDeleteBatchNoLimits, "Messages/DeleteBatchLimits", "Messages/DeleteBatchLimits"},
		{bugDeleteBatchNoQueueCheck, "Messages/UnknownQueue", "Messages/UnknownQueue"},
		{bugDeleteBatchNoQueueCheck, "Manage/DeleteQueue", "Manage/DeleteQueue"},
	} {
		t.Run(c.bug+"/"+strings.ReplaceAll(c.fails, "/", "_"), func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestQueueSuitePlanted$/"+c.run, "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), plantedBugEnv+"="+c.bug)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("running the suite with bug %s: %v (want a failing exit)\n%s", c.bug, err, out)
			}
			if want := "--- FAIL: TestQueueSuitePlanted/" + c.fails + " "; !strings.Contains(string(out), want) {
				t.Errorf("with bug %s planted, %s did not fail; the output:\n%s", c.bug, c.fails, out)
			}
		})
	}
}

// TestQueueSuitePlanted runs the suite against refQueues with the bug that
// plantedBugEnv names; TestQueueSuiteCatchesBugs runs it, expecting it to
// fail. It is skipped otherwise.
func TestQueueSuitePlanted(t *testing.T) {
	bug := os.Getenv(plantedBugEnv)
	if bug == "" {
		t.Skip("no planted bug: run by TestQueueSuiteCatchesBugs")
	}
	QueueSuite(t, QueueOpener{
		New: func(t *testing.T) hermes.Queues { return &refQueues{s: newRefQueueStore(), bug: bug} },
		Reopen: func(t *testing.T, q hermes.Queues) hermes.Queues {
			return &refQueues{s: q.(*refQueues).s, bug: bug}
		},
	})
}

type refQueueStore struct {
	mu     sync.Mutex
	queues map[string]*refQueue
	wake   chan struct{} // closed and replaced whenever a message may have become visible
	seq    int
}

type refQueue struct {
	o    hermes.QueueOptions
	msgs []*refMessage
}

type refMessage struct {
	id, body  string
	attrs     map[string]string
	sentAt    time.Time
	visibleAt time.Time
	receipt   string
	count     int
}

func newRefQueueStore() *refQueueStore {
	return &refQueueStore{queues: map[string]*refQueue{}, wake: make(chan struct{})}
}

// refQueues is one handle on a refQueueStore. (Without Reopen the suite
// only skips LongPoll/WakesAcrossHandles, so it is not run a second time
// without one: that would double the package's test time.) bug, when set,
// plants one of the bugs of TestQueueSuiteCatchesBugs.
type refQueues struct {
	s   *refQueueStore
	bug string
}

var _ hermes.Queues = (*refQueues)(nil)

func (h *refQueues) lock(ctx context.Context) (*refQueueStore, error) {
	if err := ctx.Err(); err != nil {
		return nil, hermes.E("ref", hermes.Unavailable, err)
	}
	h.s.mu.Lock()
	return h.s, nil
}

// notify wakes long polls; s.mu is held.
func (s *refQueueStore) notify() {
	close(s.wake)
	s.wake = make(chan struct{})
}

func (s *refQueueStore) next(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%d", prefix, s.seq)
}

func (s *refQueueStore) queue(name string) (*refQueue, error) {
	q := s.queues[name]
	if q == nil {
		return nil, hermes.Errorf(hermes.NotFound, "no queue %q", name)
	}
	return q, nil
}

func (h *refQueues) CreateQueue(ctx context.Context, name string, o hermes.QueueOptions) error {
	s, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	switch {
	case !hermes.ValidQueueName(name):
		return hermes.Errorf(hermes.Invalid, "bad queue name %q", name)
	case o.VisibilityTimeout < 0 || o.Retention < 0 || o.MaxReceives < 0:
		return hermes.Errorf(hermes.Invalid, "bad queue options")
	}
	if o.DeadLetter != "" {
		if _, err := s.queue(o.DeadLetter); err != nil {
			return err
		}
	}
	if o.VisibilityTimeout == 0 {
		o.VisibilityTimeout = 30 * time.Second
	}
	if o.MaxReceives == 0 {
		o.MaxReceives = hermes.DefaultMaxReceive
	}
	if q := s.queues[name]; q != nil {
		q.o = o
		return nil
	}
	s.queues[name] = &refQueue{o: o}
	return nil
}

func (h *refQueues) DeleteQueue(ctx context.Context, name string) error {
	s, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, err := s.queue(name); err != nil {
		return err
	}
	delete(s.queues, name)
	return nil
}

func (h *refQueues) ListQueues(ctx context.Context, prefix string) ([]string, error) {
	s, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var names []string
	for n := range s.queues {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

func (h *refQueues) Send(ctx context.Context, queue, body string, attrs map[string]string) (string, error) {
	s, err := h.lock(ctx)
	if err != nil {
		return "", err
	}
	defer s.mu.Unlock()
	q, err := s.queue(queue)
	if err != nil {
		return "", err
	}
	if len(body) > hermes.MaxMessageBytes {
		return "", hermes.Errorf(hermes.TooLarge, "body over %d bytes", hermes.MaxMessageBytes)
	}
	now := time.Now()
	m := &refMessage{id: s.next("m"), body: body, sentAt: now.UTC().Truncate(time.Millisecond), visibleAt: now}
	if len(attrs) > 0 {
		m.attrs = make(map[string]string, len(attrs))
		for k, v := range attrs {
			m.attrs[k] = v
		}
	}
	q.msgs = append(q.msgs, m)
	s.notify()
	return m.id, nil
}

func (h *refQueues) Receive(ctx context.Context, queue string, max int, wait, visibility time.Duration) ([]hermes.Delivery, error) {
	if max < 1 || max > hermes.MaxReceiveBatch || wait < 0 || wait > hermes.MaxReceiveWait || visibility < 0 {
		return nil, hermes.Errorf(hermes.Invalid, "bad receive arguments")
	}
	deadline := time.Now().Add(wait)
	for {
		s, err := h.lock(ctx)
		if err != nil {
			return nil, err
		}
		q, err := s.queue(queue)
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		vis := visibility
		if vis == 0 {
			vis = q.o.VisibilityTimeout
		}
		now := time.Now()
		var next time.Time // when the first hidden message becomes visible
		out := []hermes.Delivery{}
		for i := 0; i < len(q.msgs) && len(out) < max; {
			m := q.msgs[i]
			if m.visibleAt.After(now) {
				if next.IsZero() || m.visibleAt.Before(next) {
					next = m.visibleAt
				}
				i++
				continue
			}
			if q.o.DeadLetter != "" && m.count >= q.o.MaxReceives {
				if dlq := s.queues[q.o.DeadLetter]; dlq != nil {
					q.msgs = slices.Delete(q.msgs, i, i+1)
					m.receipt, m.visibleAt = "", now
					dlq.msgs = append(dlq.msgs, m)
					s.notify()
					continue
				}
			}
			m.count++
			m.receipt = s.next("r")
			m.visibleAt = now.Add(vis)
			out = append(out, hermes.Delivery{ID: m.id, Body: m.body, Attributes: m.attrs, Receipt: m.receipt, ReceiveCount: m.count, SentAt: m.sentAt})
			i++
		}
		wake := s.wake
		s.mu.Unlock()
		if len(out) > 0 || !now.Before(deadline) {
			return out, nil
		}
		until := deadline
		if !next.IsZero() && next.Before(until) {
			until = next
		}
		timer := time.NewTimer(time.Until(until))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, hermes.E("ref", hermes.Unavailable, ctx.Err())
		case <-wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// find returns the index of the message with the receipt, or -1.
func (q *refQueue) find(receipt string) int {
	return slices.IndexFunc(q.msgs, func(m *refMessage) bool { return m.receipt != "" && m.receipt == receipt })
}

func (h *refQueues) Delete(ctx context.Context, queue, receipt string) error {
	s, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	q, err := s.queue(queue)
	if err != nil {
		return err
	}
	if i := q.find(receipt); i >= 0 {
		q.msgs = slices.Delete(q.msgs, i, i+1)
	}
	return nil
}

func (h *refQueues) DeleteBatch(ctx context.Context, queue string, receipts []string) error {
	if h.bug != bugDeleteBatchNoLimits && (len(receipts) > hermes.MaxReceiveBatch || slices.Contains(receipts, "")) {
		return hermes.Errorf(hermes.Invalid, "bad receipts")
	}
	if len(receipts) == 0 {
		return nil
	}
	s, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	q, err := s.queue(queue)
	if err != nil && h.bug != bugDeleteBatchNoQueueCheck {
		return err
	}
	if q == nil {
		return nil
	}
	if h.bug == bugDeleteBatchFirstOnly {
		receipts = receipts[:1]
	}
	stale := false
	for _, r := range receipts {
		if i := q.find(r); i >= 0 {
			q.msgs = slices.Delete(q.msgs, i, i+1)
		} else {
			stale = true
		}
	}
	if stale && h.bug == bugDeleteBatchStaleConflict {
		return hermes.Errorf(hermes.Conflict, "a receipt is not current")
	}
	return nil
}

func (h *refQueues) ChangeVisibility(ctx context.Context, queue, receipt string, d time.Duration) error {
	s, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	q, err := s.queue(queue)
	if err != nil {
		return err
	}
	if d < 0 {
		return hermes.Errorf(hermes.Invalid, "negative visibility")
	}
	i := q.find(receipt)
	if i < 0 {
		return hermes.Errorf(hermes.Conflict, "receipt is not current")
	}
	q.msgs[i].visibleAt = time.Now().Add(d)
	s.notify()
	return nil
}

func (h *refQueues) Stats(ctx context.Context, queue string) (hermes.QueueStats, error) {
	s, err := h.lock(ctx)
	if err != nil {
		return hermes.QueueStats{}, err
	}
	defer s.mu.Unlock()
	q, err := s.queue(queue)
	if err != nil {
		return hermes.QueueStats{}, err
	}
	var st hermes.QueueStats
	now := time.Now()
	for _, m := range q.msgs {
		if m.visibleAt.After(now) {
			st.InFlight++
		} else {
			st.Visible++
		}
	}
	return st, nil
}

func (h *refQueues) Purge(ctx context.Context, queue string) error {
	s, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	q, err := s.queue(queue)
	if err != nil {
		return err
	}
	q.msgs = nil
	return nil
}

func (h *refQueues) Redrive(ctx context.Context, deadLetter, queue string, max int) (int, error) {
	s, err := h.lock(ctx)
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	from, err := s.queue(deadLetter)
	if err != nil {
		return 0, err
	}
	to, err := s.queue(queue)
	if err != nil {
		return 0, err
	}
	if max < 1 {
		return 0, hermes.Errorf(hermes.Invalid, "bad max")
	}
	n := min(max, len(from.msgs))
	now := time.Now()
	for _, m := range from.msgs[:n] {
		m.receipt, m.count, m.visibleAt = "", 0, now
		to.msgs = append(to.msgs, m)
	}
	from.msgs = slices.Delete(from.msgs, 0, n)
	if n > 0 {
		s.notify()
	}
	return n, nil
}
