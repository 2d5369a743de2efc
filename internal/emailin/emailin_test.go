package emailin_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/directory"
	"github.com/webordinary/hermes/internal/emailin"
	"github.com/webordinary/hermes/internal/lifecycle"
	"github.com/webordinary/hermes/internal/router"
	"github.com/webordinary/hermes/internal/ses"
	"github.com/webordinary/hermes/internal/sqlite"
)

func setup(t *testing.T) (*sqlite.DB, *emailin.Intake) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hermes.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tree := &directory.ClientTree{Client: hermes.Client{ID: "amelia", Name: "Amelia"},
		Projects: []*hermes.Project{{ID: "site", RepoURL: "/srv/site.git", EmailAddresses: []string{"edit@amelia.example.com"}}},
		Users:    []*hermes.User{{ID: "scott", Emails: []string{"scott@example.com"}}}}
	tree.Normalize()
	if err := directory.Create(ctx, db, tree, time.Now()); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sessions := &lifecycle.Sessions{Store: db, Clock: time.Now, TTL: time.Hour, PublicBase: "http://hermes.test", Log: log}
	rt := &router.Router{Store: db, Queues: db, Sessions: sessions, Clock: time.Now, Log: log}
	return db, &emailin.Intake{Router: rt, Store: db, Policy: ses.DefaultPolicy(), Log: log}
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "ses", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The intake queue consumer routes SES notifications from the queue and
// deletes them: good mail becomes one job, bad notifications are removed
// rather than retried for ever, and a redelivered notification is no
// second job.
func TestConsumeQueue(t *testing.T) {
	db, in := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const q = "ses-intake"
	if err := db.CreateQueue(ctx, q, hermes.QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { in.ConsumeQueue(ctx, db, q); close(done) }()

	for _, body := range [][]byte{fixture(t, "sns_base64.json"), []byte(`{"not":"ses"}`), fixture(t, "sns_base64.json"), fixture(t, "subscription_confirmation.json")} {
		if _, err := db.Send(ctx, q, string(body), nil); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, _ := db.Stats(ctx, q)
		jobs, _ := db.Stats(ctx, "webordinary-input-amelia_site_scott")
		if st.Visible == 0 && st.InFlight == 0 && jobs.Visible == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("intake queue %+v, jobs %+v", st, jobs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ConsumeQueue did not stop with its context")
	}
}

// recordingQueues records the deletes of the intake queue.
type recordingQueues struct {
	hermes.Queues
	mu      sync.Mutex
	batches []int // the receipts of each DeleteBatch
	deletes int   // Delete calls
}

func (q *recordingQueues) Delete(ctx context.Context, queue, receipt string) error {
	q.mu.Lock()
	q.deletes++
	q.mu.Unlock()
	return q.Queues.Delete(ctx, queue, receipt)
}

func (q *recordingQueues) DeleteBatch(ctx context.Context, queue string, receipts []string) error {
	q.mu.Lock()
	if len(receipts) > 0 {
		q.batches = append(q.batches, len(receipts))
	}
	q.mu.Unlock()
	return q.Queues.DeleteBatch(ctx, queue, receipts)
}

func (q *recordingQueues) sizes() ([]int, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.batches), q.deletes
}

// unavailableS3 fails every fetch as S3 being unreachable would.
type unavailableS3 struct{}

func (unavailableS3) FetchRaw(context.Context, string, string) ([]byte, error) {
	return nil, hermes.Errorf(hermes.Unavailable, "s3 is unreachable")
}

// The notifications of one receive are deleted with one DeleteBatch once
// handled, those refused for good included; one whose mail could not be
// fetched for now is left for its retry.
func TestConsumeQueueDeletesBatch(t *testing.T) {
	db, in := setup(t)
	in.S3 = unavailableS3{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const q = "ses-intake"
	if err := db.CreateQueue(ctx, q, hermes.QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, body := range [][]byte{fixture(t, "sns_base64.json"), []byte(`{"not":"ses"}`), fixture(t, "sns_s3.json"), fixture(t, "subscription_confirmation.json")} {
		if _, err := db.Send(ctx, q, string(body), nil); err != nil {
			t.Fatal(err)
		}
	}
	rq := &recordingQueues{Queues: db}
	done := make(chan struct{})
	go func() { in.ConsumeQueue(ctx, rq, q); close(done) }()

	deadline := time.Now().Add(15 * time.Second)
	for {
		if sizes, _ := rq.sizes(); len(sizes) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no DeleteBatch within 15 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(25 * time.Second):
		t.Fatal("ConsumeQueue did not stop with its context")
	}
	if sizes, deletes := rq.sizes(); !slices.Equal(sizes, []int{3}) || deletes != 0 {
		t.Errorf("deletes of a batch of 4 notifications, one left for retry: DeleteBatch sizes %v and %d Delete calls, want [3] and 0", sizes, deletes)
	}
	if st, _ := db.Stats(context.Background(), q); st != (hermes.QueueStats{InFlight: 1}) {
		t.Errorf("intake queue %+v, want the notification of the unreachable S3 object in flight", st)
	}
	if jobs, _ := db.Stats(context.Background(), "webordinary-input-amelia_site_scott"); jobs.Visible != 1 {
		t.Errorf("jobs %+v, want the mail's", jobs)
	}
}

// Failing verdicts drop SES mail without a job or a reply.
func TestVerdictsDrop(t *testing.T) {
	db, in := setup(t)
	outs, err := in.HandleSES(context.Background(), fixture(t, "sns_failing_verdicts.json"))
	if err != nil || len(outs) != 1 || outs[0].Status != router.Dropped {
		t.Fatalf("outcomes %+v, err %v", outs, err)
	}
	if cs, _ := db.ListContainers(context.Background()); len(cs) != 0 {
		t.Errorf("a container was made for dropped mail: %+v", cs)
	}
}
