package router_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/directory"
	"github.com/webordinary/hermes/internal/lifecycle"
	"github.com/webordinary/hermes/internal/relay"
	"github.com/webordinary/hermes/internal/router"
	"github.com/webordinary/hermes/internal/sqlite"
)

// BenchmarkRoute routes email replies through the real router on SQLite,
// one conversation per parallel sender.
func BenchmarkRoute(b *testing.B) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "hermes.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	tree := &directory.ClientTree{Client: hermes.Client{ID: "bench", Name: "Bench"}}
	for i := range 64 {
		tree.Projects = append(tree.Projects, &hermes.Project{ID: fmt.Sprintf("site%d", i), RepoURL: "/srv/site.git",
			EmailAddresses: []string{fmt.Sprintf("edit%d@bench.example.com", i)}})
		tree.Users = append(tree.Users, &hermes.User{ID: fmt.Sprintf("user%d", i), Emails: []string{fmt.Sprintf("user%d@example.com", i)}})
	}
	tree.Normalize()
	if err := directory.Create(ctx, db, tree, time.Now()); err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	sessions := &lifecycle.Sessions{Store: db, Clock: time.Now, TTL: 30 * time.Minute, PublicBase: "http://localhost:3000", Log: log}
	rt := &router.Router{Store: db, Queues: db, Sessions: sessions, Clock: time.Now, Log: log,
		Acknowledger: &relay.Acks{FromEmail: "hermes@localhost"}}
	var sender atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := sender.Add(1) - 1
		prev := ""
		for i := 0; pb.Next(); i++ {
			id := fmt.Sprintf("m%d.%d@example.com", w, i)
			m := &hermes.Message{Channel: hermes.ChannelEmail, ChannelID: "email:" + id,
				From: fmt.Sprintf("user%d@example.com", w%64), To: fmt.Sprintf("edit%d@bench.example.com", w%64),
				Subject: "Change the title", Text: "Change the title", Thread: hermes.ThreadHints{MessageID: id}}
			if prev != "" {
				m.Thread.InReplyTo = []string{prev}
			}
			if _, err := rt.Route(ctx, m); err != nil {
				b.Error(err)
			}
			prev = id
		}
	})
}
