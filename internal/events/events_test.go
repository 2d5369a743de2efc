package events_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/events"
	"github.com/webordinary/hermes/internal/hermestest"
)

var t0 = time.Date(2026, 11, 27, 1, 17, 7, 642e6, time.UTC)

func newHub(buffer int) *events.Hub {
	return events.NewHub(buffer, hermestest.NewClock(t0).Now)
}

func recv(t *testing.T, s *events.Subscription) events.Event {
	t.Helper()
	select {
	case e, ok := <-s.C:
		if !ok {
			t.Fatalf("subscription ended: %v", s.Err())
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return events.Event{}
}

func TestPublishReachesTheSessionsSubscribersOnly(t *testing.T) {
	h := newHub(4)
	a1 := h.Subscribe(t.Context(), "sessa")
	a2 := h.Subscribe(t.Context(), "sessa")
	b := h.Subscribe(t.Context(), "sessb")
	h.Publish("sessa", events.Event{Type: events.Started, JobID: "job1"})
	for _, s := range []*events.Subscription{a1, a2} {
		e := recv(t, s)
		if e.Type != events.Started || e.SessionID != "sessa" || e.JobID != "job1" || !e.At.Equal(t0) || !events.ValidID(e.ID) {
			t.Errorf("event %+v", e)
		}
	}
	select {
	case e := <-b.C:
		t.Errorf("another session's subscriber got %+v", e)
	default:
	}
}

func TestSlowSubscriberIsDroppedWithoutBlocking(t *testing.T) {
	h := newHub(2)
	slow := h.Subscribe(t.Context(), "sess") // never reads
	fast := h.Subscribe(t.Context(), "sess") // reads every event
	done := make(chan []string)
	go func() {
		var got []string
		for range 100 {
			h.Publish("sess", events.Event{Type: events.Progress})
			if e, ok := <-fast.C; ok {
				got = append(got, e.ID)
			}
		}
		done <- got
	}()
	var got []string
	select {
	case got = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
	if len(got) != 100 {
		t.Errorf("the subscriber that keeps up got %d events, want 100", len(got))
	}
	// The slow subscriber got its buffer's worth, then was dropped.
	n := 0
	for range slow.C {
		n++
	}
	if n != 2 || !errors.Is(slow.Err(), events.ErrSlow) {
		t.Errorf("slow subscriber: %d events, err %v; want 2 and ErrSlow", n, slow.Err())
	}
	if fast.Err() != nil || h.Subscribers("sess") != 1 {
		t.Errorf("fast subscriber: err %v, subscribers %d", fast.Err(), h.Subscribers("sess"))
	}
	fast.Close()
	if h.Subscribers("sess") != 0 {
		t.Errorf("subscribers left: %d", h.Subscribers("sess"))
	}
}

func TestSubscriptionEndsWithItsContextAndTheHub(t *testing.T) {
	h := newHub(0)
	ctx, cancel := context.WithCancel(t.Context())
	s := h.Subscribe(ctx, "sess")
	other := h.Subscribe(t.Context(), "sess")
	cancel()
	if _, ok := <-s.C; ok {
		t.Fatal("event after cancel")
	}
	if !errors.Is(s.Err(), context.Canceled) {
		t.Errorf("Err = %v, want context.Canceled", s.Err())
	}
	h.Close()
	if _, ok := <-other.C; ok || !errors.Is(other.Err(), events.ErrClosed) {
		t.Errorf("after Close: ok %v, err %v", ok, other.Err())
	}
	late := h.Subscribe(t.Context(), "sess")
	if _, ok := <-late.C; ok || !errors.Is(late.Err(), events.ErrClosed) {
		t.Errorf("subscribe after Close: ok %v, err %v", ok, late.Err())
	}
	h.Publish("sess", events.Event{Type: events.Result}) // no panic, nobody there
	s.Close()                                            // idempotent
	var nilHub *events.Hub
	nilHub.Publish("sess", events.Event{}) // a nil hub drops events
}

func TestFromHistory(t *testing.T) {
	at := t0.Add(time.Minute)
	cases := []struct {
		name  string
		entry hermes.HistoryEntry
		want  string // event type; "" for none
	}{
		{"instruction", hermes.HistoryEntry{Kind: hermes.KindInstruction, Direction: hermes.DirectionIn, Delivery: hermes.DeliveryQueued}, events.Queued},
		{"pending instruction", hermes.HistoryEntry{Kind: hermes.KindInstruction, Direction: hermes.DirectionIn, Delivery: hermes.DeliveryPending}, ""},
		{"ack", hermes.HistoryEntry{Kind: hermes.KindAck, Direction: hermes.DirectionOut}, ""},
		{"busy", hermes.HistoryEntry{Kind: "busy", Direction: hermes.DirectionOut}, ""},
		{"result", hermes.HistoryEntry{Kind: hermes.KindResult, Direction: hermes.DirectionOut}, events.Result},
		{"error", hermes.HistoryEntry{Kind: hermes.KindError, Direction: hermes.DirectionOut}, events.Error},
		{"plan", hermes.HistoryEntry{Kind: hermes.KindPlan, Direction: hermes.DirectionOut}, events.Plan},
		{"interrupted", hermes.HistoryEntry{Kind: hermes.KindInterrupted, Direction: hermes.DirectionOut}, events.Interrupted},
	}
	for _, c := range cases {
		h := c.entry
		h.ID, h.SessionID, h.CreatedAt, h.Text = "abcdefghijklmnopqrstuvwxyz", "sess", at, "make it blue"
		h.Meta = map[string]string{"jobId": "job1", "commit": "3f2a", "outboxId": "x"}
		e, ok := events.FromHistory(&h)
		if c.want == "" {
			if ok {
				t.Errorf("%s: got event %+v, want none", c.name, e)
			}
			continue
		}
		if !ok || e.Type != c.want || e.ID != events.IDAt(at, h.ID) || e.JobID != "job1" || e.Data["text"] != "make it blue" || e.Data["commit"] != "3f2a" || e.Data["outboxId"] != nil {
			t.Errorf("%s: %+v %v", c.name, e, ok)
		}
	}
}

func TestIDsSortLikeTheHistory(t *testing.T) {
	// History is ordered by (createdAt, id); the derived event ids must
	// sort the same way as strings, so that Last-Event-ID comparisons work.
	entries := []hermes.HistoryEntry{
		{ID: "zzzz0000000000000000000000", CreatedAt: t0},
		{ID: "aaaa0000000000000000000000", CreatedAt: t0.Add(time.Millisecond)},
		{ID: "bbbb0000000000000000000000", CreatedAt: t0.Add(time.Millisecond)},
		{ID: "aaaa0000000000000000000000", CreatedAt: t0.Add(10 * time.Second)},
		{ID: "aaaa0000000000000000000000", CreatedAt: t0.Add(1000 * time.Hour)},
	}
	var ids []string
	for _, h := range entries {
		ids = append(ids, events.IDAt(h.CreatedAt, h.ID))
	}
	if !slices.IsSorted(ids) {
		t.Errorf("ids not sorted: %v", ids)
	}
	for _, bad := range []string{"", "123-abc", "17000000000000-", "1700000000000-ABC", "1700000000000-a b", "x700000000000-abc"} {
		if events.ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
	if !events.ValidID(ids[0]) || !events.ValidID(events.NewID(t0)) {
		t.Errorf("ValidID rejects issued ids")
	}
}
