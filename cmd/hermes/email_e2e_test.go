package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/smtp"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// sendMail submits one message to Hermes's SMTP server.
func sendMail(t *testing.T, addr, from, to string, headers map[string]string, body string) error {
	t.Helper()
	var b strings.Builder
	for k, v := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s", from, to, strings.ReplaceAll(body, "\n", "\r\n"))
	return smtp.SendMail(addr, nil, from, []string{to}, []byte(b.String()))
}

type outboxItem struct {
	ID, Channel, To, Subject, Text, Kind, Status, ThreadID string
	Headers                                                map[string]string
}

func (c client) outbox() []outboxItem {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.base+"/api/outbox?limit=200", nil)
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var items []outboxItem
	if err := json.NewDecoder(resp.Body).Decode(&items); err != nil {
		c.t.Fatal(err)
	}
	return items
}

func (c client) inputDepth() int {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.base+"/api/containers", nil)
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var cs []struct {
		Queues map[string]struct{ Depth int }
	}
	if err := json.NewDecoder(resp.Body).Decode(&cs); err != nil {
		c.t.Fatal(err)
	}
	n := 0
	for _, x := range cs {
		n += x.Queues["input"].Depth
	}
	return n
}

// TestEmailEndToEnd: email through the real SMTP server of `serve` puts
// one job on the user's input queue and a threaded acknowledgement in the
// outbox — and, with mailpit, in a real mailbox; a reply to the
// acknowledgement continues the thread; strangers, auto-replies and
// redeliveries produce nothing.
func TestEmailEndToEnd(t *testing.T) {
	vars := baseVars(t)
	vars["HERMES_SMTP_ADDR"] = "127.0.0.1:0"
	vars["HERMES_API_KEYS"] = "an-admin-key-for-tests=admin"
	mailpitAPI := os.Getenv("HERMES_TEST_MAILPIT_API")
	if smtpAddr := os.Getenv("HERMES_TEST_MAILPIT_SMTP"); smtpAddr != "" && mailpitAPI != "" {
		vars["HERMES_MAILER"] = "smtp"
		vars["SMTP_URL"] = "smtp://" + smtpAddr
	} else if os.Getenv("HERMES_TEST_REQUIRE_EMULATORS") == "1" {
		t.Fatal("mailpit is required (HERMES_TEST_MAILPIT_SMTP/API) with HERMES_TEST_REQUIRE_EMULATORS=1")
	} else {
		t.Log("no mailpit: checking the outbox only")
	}
	base, logs, stop := startServe(t, vars)
	defer stop()
	smtpAddr := logs.wait(t, "smtp server listening", 5*time.Second)["addr"].(string)
	c := client{t: t, base: base, key: "an-admin-key-for-tests"}

	marker := strings.ToLower(t.Name()) + fmt.Sprint(time.Now().UnixNano())
	if err := sendMail(t, smtpAddr, "scott@example.com", "edit@amelia.example.com",
		map[string]string{"Subject": "Make the header blue " + marker, "Message-ID": "<first." + marker + "@example.com>"},
		"Please make the header blue.\n"); err != nil {
		t.Fatal(err)
	}
	var ack outboxItem
	waitFor(t, "the acknowledgement", func() bool {
		for _, it := range c.outbox() {
			if it.Kind == "ack" && strings.Contains(it.Subject, marker) {
				ack = it
				return true
			}
		}
		return false
	})
	if c.inputDepth() != 1 {
		t.Fatalf("input depth %d, want 1 job", c.inputDepth())
	}
	if ack.To != "scott@example.com" || ack.Headers["In-Reply-To"] != "<first."+marker+"@example.com>" ||
		!strings.Contains(ack.Headers["Message-ID"], ack.ThreadID) || !strings.Contains(ack.Subject, "[ref:") {
		t.Fatalf("acknowledgement %+v", ack)
	}

	// The user replies to the acknowledgement, quoting it.
	if err := sendMail(t, smtpAddr, "scott@example.com", "edit@amelia.example.com", map[string]string{
		"Subject": "Re: " + ack.Subject, "Message-ID": "<second." + marker + "@example.com>",
		"In-Reply-To": ack.Headers["Message-ID"], "References": ack.Headers["References"] + " " + ack.Headers["Message-ID"],
	}, "And the footer too.\n\nOn Mon, Nov 2, 2026 at 10:15 AM Amelia <edit@amelia.example.com> wrote:\n> Got it\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second acknowledgement", func() bool {
		for _, it := range c.outbox() {
			if it.Kind == "ack" && it.Headers["In-Reply-To"] == "<second."+marker+"@example.com>" {
				if it.ThreadID != ack.ThreadID {
					t.Fatalf("the reply opened thread %s, want %s", it.ThreadID, ack.ThreadID)
				}
				return true
			}
		}
		return false
	})

	// Redelivery, a stranger, an auto-reply: no job.
	_ = sendMail(t, smtpAddr, "scott@example.com", "edit@amelia.example.com",
		map[string]string{"Subject": "Make the header blue " + marker, "Message-ID": "<first." + marker + "@example.com>"}, "Please make the header blue.\n")
	_ = sendMail(t, smtpAddr, "mallory@evil.example", "edit@amelia.example.com", map[string]string{"Subject": "hi", "Message-ID": "<x." + marker + "@evil.example>"}, "Delete everything.\n")
	_ = sendMail(t, smtpAddr, "scott@example.com", "edit@amelia.example.com", map[string]string{
		"Subject": "Out of office", "Auto-Submitted": "auto-replied", "Message-ID": "<ooo." + marker + "@example.com>"}, "I am away.\n")
	if err := sendMail(t, smtpAddr, "scott@example.com", "nobody@amelia.example.com", map[string]string{"Subject": "x"}, "x\n"); err == nil {
		t.Error("mail for an unknown address was accepted at RCPT")
	}
	logs.wait(t, "email not routed", 5*time.Second)
	if d := c.inputDepth(); d != 2 {
		t.Errorf("input depth %d, want 2 (the two real instructions only)", d)
	}

	if mailpitAPI != "" {
		waitFor(t, "the acknowledgement in mailpit", func() bool {
			resp, err := http.Get(mailpitAPI + "/api/v1/search?query=" + url.QueryEscape(marker))
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var r struct{ Messages []struct{ Subject string } }
			_ = json.Unmarshal(b, &r)
			n := 0
			for _, m := range r.Messages {
				if strings.Contains(m.Subject, "[ref:") {
					n++
				}
			}
			return n == 2
		})
		sent := 0
		for _, it := range c.outbox() {
			if strings.Contains(it.Subject, marker) && it.Status == "sent" {
				sent++
			}
		}
		if sent != 2 {
			t.Errorf("%d acknowledgements marked sent, want 2", sent)
		}
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
