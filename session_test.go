package hermes_test

import (
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

func TestSessionExpire(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &hermes.Session{ID: "s", Status: hermes.SessionActive, ExpiresAt: now.Add(time.Hour)}
	if s.LeaseExpired(now) || !s.LeaseExpired(now.Add(time.Hour)) {
		t.Error("lease boundary: expired exactly at ExpiresAt")
	}
	if err := s.Expire(now, hermes.ReasonDeactivated); err != nil || s.Status != hermes.SessionExpired || !s.ExpiresAt.Equal(now) {
		t.Fatalf("expire: %v %+v", err, s)
	}
	if err := s.Expire(now, hermes.ReasonLease); !hermes.IsKind(err, hermes.Conflict) || s.Reason != hermes.ReasonDeactivated {
		t.Errorf("second expire: %v, reason %s", err, s.Reason)
	}
}

func TestPreviewURL(t *testing.T) {
	p := &hermes.Project{ClientID: "amelia", ID: "site"}
	if got := hermes.PreviewURL(p, "http://localhost:3000/hermes/", "t1", "s1", "u1"); got != "http://localhost:3000/hermes/preview/amelia/site/t1/" {
		t.Errorf("served preview: %s", got)
	}
	p.PreviewURLTemplate = "https://edit.{client}.example.com/{project}/{thread}/?s={session}&u={user}"
	if got := hermes.PreviewURL(p, "", "t1", "s1", "u1"); got != "https://edit.amelia.example.com/site/t1/?s=s1&u=u1" {
		t.Errorf("template: %s", got)
	}
}
