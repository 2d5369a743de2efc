package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/sqlite"
)

func TestQueueSmoke(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "q.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.CreateQueue(ctx, "dlq", hermes.QueueOptions{}))
	must(db.CreateQueue(ctx, "in", hermes.QueueOptions{DeadLetter: "dlq", MaxReceives: 2, VisibilityTimeout: time.Second}))
	go func() { time.Sleep(100 * time.Millisecond); db.Send(ctx, "in", "hello", map[string]string{"a": "b"}) }()
	start := time.Now()
	got, err := db.Receive(ctx, "in", 10, 5*time.Second, 0)
	must(err)
	if len(got) != 1 || got[0].Body != "hello" || got[0].Attributes["a"] != "b" || time.Since(start) > time.Second {
		t.Fatalf("%+v after %s", got, time.Since(start))
	}
	must(db.ChangeVisibility(ctx, "in", got[0].Receipt, 0))
	got, _ = db.Receive(ctx, "in", 10, 0, 0)
	if len(got) != 1 || got[0].ReceiveCount != 2 {
		t.Fatalf("%+v", got)
	}
	must(db.ChangeVisibility(ctx, "in", got[0].Receipt, 0))
	got, _ = db.Receive(ctx, "in", 10, 0, 0)
	if len(got) != 0 {
		t.Fatalf("past max receives: %+v", got)
	}
	s, _ := db.Stats(ctx, "dlq")
	if s.Visible != 1 {
		t.Fatalf("dlq %+v", s)
	}
	n, err := db.Redrive(ctx, "dlq", "in", 10)
	must(err)
	got, _ = db.Receive(ctx, "in", 10, 0, 0)
	if n != 1 || len(got) != 1 || got[0].ReceiveCount != 1 {
		t.Fatalf("redrive %d %+v", n, got)
	}
}
