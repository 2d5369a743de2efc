package hermes

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"
)

// ApprovalStatus is where a plan approval is (SPEC §7): pending until the
// user approves or rejects it, or until it expires. A decided approval
// never changes again.
type ApprovalStatus string

const (
	ApprovalPending  ApprovalStatus = "pending"
	ApprovalApproved ApprovalStatus = "approved" // the execute job is (being) queued
	ApprovalRejected ApprovalStatus = "rejected" // nothing changes; the user was told
	ApprovalExpired  ApprovalStatus = "expired"  // recorded as expired; can no longer be decided
)

// Valid reports whether s is one of the known statuses.
func (s ApprovalStatus) Valid() bool {
	switch s {
	case ApprovalPending, ApprovalApproved, ApprovalRejected, ApprovalExpired:
		return true
	}
	return false
}

// How an approval was decided.
const (
	ViaPage  = "page"  // the approval page's form
	ViaReply = "reply" // an "approve"/"reject" reply on the thread
)

// DefaultApprovalTTL is how long an approval link can be used
// (HERMES_APPROVAL_TTL).
const DefaultApprovalTTL = 24 * time.Hour

// Approval is a plan waiting for (or done with) the user's decision. A plan
// job's result creates it; the user decides on the approval page (the link
// carries a random token of which only the SHA-256 is stored) or by replying
// on the thread. Approving queues an execute job with the plan.
type Approval struct {
	ID        string `json:"approvalId"` // ApprovalIDFor(PlanJobID): a result delivered twice finds it
	TokenHash string `json:"-"`          // HashApprovalToken of the link's token; the token itself is never stored
	SessionID string `json:"sessionId"`  // the session the plan job ran in
	ThreadID  string `json:"threadId"`
	// ContainerID, ClientID, ProjectID and UserID say whose container
	// executes the plan.
	ContainerID string         `json:"containerId"`
	ClientID    string         `json:"clientId"`
	ProjectID   string         `json:"projectId"`
	UserID      string         `json:"userId"`
	PlanJobID   string         `json:"planJobId"`
	Instruction string         `json:"instruction"` // the user's original instruction
	Plan        string         `json:"plan"`        // what the agent proposes
	Reply       ReplyContext   `json:"reply"`       // where the plan job's answers went
	Status      ApprovalStatus `json:"status"`
	CreatedAt   time.Time      `json:"createdAt"`
	ExpiresAt   time.Time      `json:"expiresAt"`
	DecidedAt   *time.Time     `json:"decidedAt,omitempty"`
	DecidedVia  string         `json:"decidedVia,omitempty"` // ViaPage or ViaReply
	// DoneAt is when the decision was carried out (the execute job queued,
	// or the rejection told). A decided approval without it was
	// interrupted on the way, and carrying the same decision out again is
	// safe: every id involved is derived from the approval's.
	DoneAt *time.Time `json:"doneAt,omitempty"`
	// Version increases with every stored change.
	Version int64 `json:"-"`
}

// Expired reports whether the approval can no longer be decided at now:
// recorded as expired, or pending past ExpiresAt.
func (a *Approval) Expired(now time.Time) bool {
	return a.Status == ApprovalExpired || a.Status == ApprovalPending && !now.Before(a.ExpiresAt)
}

// Decided reports whether the approval was approved or rejected.
func (a *Approval) Decided() bool {
	return a.Status == ApprovalApproved || a.Status == ApprovalRejected
}

// ApprovalIDFor returns the id of the approval of a plan job: derived, so
// that a plan result delivered twice finds the approval it created.
func ApprovalIDFor(planJobID string) string { return DeriveToken("approval", planJobID) }

// ExecuteJobID returns the id of the job that executes an approved plan:
// derived from the approval, so that the page and a reply, or a retry of
// either, queue the same job (the worker skips a job id it has finished).
func ExecuteJobID(approvalID string) string { return DeriveToken("execute", approvalID) }

// ApprovalTokenLen is the length of an approval token: 256 random bits in
// unpadded base64url.
const ApprovalTokenLen = 43

// NewApprovalToken returns a fresh approval token (256 random bits,
// URL-safe) and its hash, the only form a store keeps.
func NewApprovalToken() (token, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents it)
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashApprovalToken(token)
}

// HashApprovalToken returns the stored form of an approval token: its
// SHA-256 in lowercase hex. A token has 256 random bits, so a fast hash
// suffices (nothing to brute-force), and lookups by hash need no
// constant-time comparison: the hash of a guess reveals nothing about the
// stored hashes.
func HashApprovalToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// ValidApprovalToken reports whether s has the form of an approval token:
// 43 characters of the base64url alphabet.
func ValidApprovalToken(s string) bool {
	if len(s) != ApprovalTokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	// The last character carries 2 padding bits that must be zero (so a
	// token has exactly one spelling).
	return strings.IndexByte("AEIMQUYcgkosw048", s[len(s)-1]) >= 0
}

// ApprovalPath is the path of the approval page of a token, below the
// public URL (HERMES_PUBLIC_URL, base path included).
func ApprovalPath(token string) string { return "/approvals/" + token }

// RedactApprovalTokens replaces the token of every approval link in s
// ("/approvals/{token}") with "[redacted]", for logs: tokens are secrets.
func RedactApprovalTokens(s string) string {
	const marker = "/approvals/"
	if !strings.Contains(s, marker) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, marker)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+len(marker)])
		s = s[i+len(marker):]
		n := 0
		for n < len(s) && (isAlnum(s[n]) || s[n] == '-' || s[n] == '_') {
			n++
		}
		if n > 0 {
			b.WriteString("[redacted]")
		}
		s = s[n:]
	}
}
