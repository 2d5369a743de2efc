package smtpout_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/mail"
	"github.com/webordinary/hermes/internal/smtpd"
	"github.com/webordinary/hermes/internal/smtpout"
)

// mailpit returns the SMTP and API addresses of the mailpit that CI starts
// (HERMES_TEST_MAILPIT_SMTP, HERMES_TEST_MAILPIT_API), skipping loudly when
// there is none unless HERMES_TEST_REQUIRE_EMULATORS=1 makes that a failure.
func mailpit(t *testing.T) (smtpAddr, api string) {
	t.Helper()
	smtpAddr, api = os.Getenv("HERMES_TEST_MAILPIT_SMTP"), os.Getenv("HERMES_TEST_MAILPIT_API")
	if smtpAddr == "" || api == "" {
		if os.Getenv("HERMES_TEST_REQUIRE_EMULATORS") == "1" {
			t.Fatal("HERMES_TEST_MAILPIT_SMTP/HERMES_TEST_MAILPIT_API are not set, and HERMES_TEST_REQUIRE_EMULATORS=1: start mailpit (see .ci/run)")
		}
		t.Skip("SKIPPING: no mailpit (set HERMES_TEST_MAILPIT_SMTP and HERMES_TEST_MAILPIT_API; .ci/run starts one)")
	}
	return smtpAddr, api
}

func compose(t *testing.T, thread, subject string) *hermes.OutboxItem {
	t.Helper()
	id := mail.NewMessageID(thread, "amelia.example.com")
	raw, err := mail.Compose(mail.Reply{
		From: "edit@amelia.example.com", FromName: "Amelia Stamps", To: []string{"scott@example.com"},
		Subject: subject, MessageID: id, InReplyTo: "original@mail.example.com",
		References: []string{"root@mail.example.com", "original@mail.example.com"}, ThreadID: thread,
		Text: "Got it — your editor is waking up.", HTML: "<p>Got it — your editor is waking up.</p>",
		Date: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), Kind: "ack",
	})
	if err != nil {
		t.Fatal(err)
	}
	return &hermes.OutboxItem{ID: hermes.NewToken(), Channel: hermes.ChannelEmail, From: "edit@amelia.example.com",
		To: "scott@example.com", Subject: subject, Raw: raw, Headers: map[string]string{"Message-ID": "<" + id + ">"}}
}

// TestSendToMailpit sends a composed reply through a real SMTP server and
// reads it back from mailpit's API: threading headers and bytes intact.
func TestSendToMailpit(t *testing.T) {
	smtpAddr, api := mailpit(t)
	s, err := smtpout.New(&url.URL{Scheme: "smtp", Host: smtpAddr})
	if err != nil {
		t.Fatal(err)
	}
	thread := hermes.NewToken()
	subject := "Re: Make the header blue [ref:" + thread[:8] + "] " + thread
	it := compose(t, thread, subject)
	if err := s.Send(context.Background(), it); err != nil {
		t.Fatal(err)
	}
	msg := findMailpit(t, api, thread)
	for name, want := range map[string]string{
		"Message-Id":      it.Headers["Message-ID"],
		"In-Reply-To":     "<original@mail.example.com>",
		"References":      "<root@mail.example.com> <original@mail.example.com>",
		"X-Hermes-Thread": thread,
		"Auto-Submitted":  "auto-replied",
	} {
		if got := strings.Join(msg[name], " "); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
}

// findMailpit finds the message whose subject contains marker and returns
// its headers.
func findMailpit(t *testing.T, api, marker string) map[string][]string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var list struct {
			Messages []struct{ ID, Subject string }
		}
		getJSON(t, api+"/api/v1/search?query="+url.QueryEscape(marker), &list)
		for _, m := range list.Messages {
			if strings.Contains(m.Subject, marker) {
				var h map[string][]string
				getJSON(t, api+"/api/v1/message/"+m.ID+"/headers", &h)
				return h
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no message with %q in mailpit", marker)
	return nil
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", u, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// refusing is an SMTP peer that answers recipients and data as told.
type refusing struct {
	accept bool
	err    error
}

func (r refusing) AcceptRecipient(context.Context, string) (bool, error) { return r.accept, nil }
func (r refusing) Deliver(context.Context, smtpd.Envelope, []byte) error { return r.err }

// Permanent refusals fail the item at once (Invalid); temporary ones are
// retried (Unavailable); an unreachable server is retried too.
func TestSendErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		name string
		peer refusing
		want hermes.Kind
	}{
		{"recipient refused (550)", refusing{accept: false}, hermes.Invalid},
		{"temporary failure (451)", refusing{accept: true, err: hermes.Errorf(hermes.Unavailable, "busy")}, hermes.Unavailable},
		{"message refused (554)", refusing{accept: true, err: errors.New("no")}, hermes.Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := smtpd.New(smtpd.Config{Addr: "127.0.0.1:0"}, tc.peer)
			addr, err := srv.Listen()
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve()
			t.Cleanup(func() { srv.Shutdown(context.Background()) })
			s, err := smtpout.New(&url.URL{Scheme: "smtp", Host: addr.String()})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), compose(t, hermes.NewToken(), "Re: x"))
			if !hermes.IsKind(err, tc.want) {
				t.Fatalf("err = %v (kind %v), want %v", err, hermes.ErrorKind(err), tc.want)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		s, _ := smtpout.New(&url.URL{Scheme: "smtp", Host: "127.0.0.1:1"})
		err := s.Send(context.Background(), compose(t, hermes.NewToken(), "Re: x"))
		if !hermes.IsKind(err, hermes.Unavailable) {
			t.Fatalf("err = %v, want Unavailable", err)
		}
	})
	t.Run("nothing composed", func(t *testing.T) {
		s, _ := smtpout.New(&url.URL{Scheme: "smtp", Host: "127.0.0.1:1"})
		if err := s.Send(context.Background(), &hermes.OutboxItem{ID: "x"}); !hermes.IsKind(err, hermes.Invalid) {
			t.Fatalf("err = %v, want Invalid", err)
		}
	})
}
