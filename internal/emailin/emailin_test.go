package emailin_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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
