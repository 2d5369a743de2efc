package hermes_test

import (
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

func TestApprovalTokens(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		tok, hash := hermes.NewApprovalToken()
		if !hermes.ValidApprovalToken(tok) {
			t.Fatalf("NewApprovalToken gave %q, which ValidApprovalToken refuses", tok)
		}
		if hash != hermes.HashApprovalToken(tok) || len(hash) != 64 || strings.Contains(hash, tok) {
			t.Fatalf("hash %q of %q", hash, tok)
		}
		if seen[tok] {
			t.Fatalf("token %q twice", tok)
		}
		seen[tok] = true
	}
	tok, _ := hermes.NewApprovalToken()
	for _, bad := range []string{"", tok[:42], tok + "A", tok[:42] + "B" /* non-zero padding bits */, tok[:42] + "=", tok[:10] + "/" + tok[11:], tok[:10] + "+" + tok[11:], tok[:10] + "." + tok[11:]} {
		if hermes.ValidApprovalToken(bad) {
			t.Errorf("hermes.ValidApprovalToken(%q) = true", bad)
		}
	}
}

func TestRedactApprovalTokens(t *testing.T) {
	tok, _ := hermes.NewApprovalToken()
	for in, want := range map[string]string{
		"open https://h.example/approvals/" + tok + " now":    "open https://h.example/approvals/[redacted] now",
		"a /approvals/" + tok + "\nb /approvals/" + tok + ".": "a /approvals/[redacted]\nb /approvals/[redacted].",
		"no link here": "no link here",
		"<https://h.example/approvals/" + tok + "|Review the plan>": "<https://h.example/approvals/[redacted]|Review the plan>",
		"/approvals/": "/approvals/",
	} {
		if got := hermes.RedactApprovalTokens(in); got != want {
			t.Errorf("hermes.RedactApprovalTokens(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestApprovalExpired(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := &hermes.Approval{Status: hermes.ApprovalPending, ExpiresAt: now}
	if !a.Expired(now) || a.Expired(now.Add(-time.Millisecond)) {
		t.Errorf("pending: Expired is wrong around ExpiresAt")
	}
	a.Status = hermes.ApprovalApproved
	if a.Expired(now.Add(time.Hour)) || !a.Decided() {
		t.Errorf("a decided approval never expires")
	}
	a.Status = hermes.ApprovalExpired
	if !a.Expired(now.Add(-time.Hour)) || a.Decided() {
		t.Errorf("an expired approval is expired")
	}
	first, again := hermes.ApprovalIDFor("job1"), hermes.ApprovalIDFor("job1")
	if first != again || first == hermes.ApprovalIDFor("job2") || hermes.ExecuteJobID("a") == hermes.ApprovalIDFor("a") {
		t.Errorf("derived ids")
	}
	if !hermes.ValidTokenID(hermes.ApprovalIDFor("job1")) || !hermes.ValidTokenID(hermes.ExecuteJobID("x")) {
		t.Errorf("derived ids are not valid ids")
	}
}
