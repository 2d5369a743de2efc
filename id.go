package hermes

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"net/mail"
	"strings"
	"time"
)

// Identifiers are checked with these rules before they are used in queue
// names, file paths, git branches or store keys. They are hand-written
// rather than regular expressions: they run on every request, and compiling
// the expressions at start-up cost more than the rest of the package.

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool      { return isLowerAlnum(c) || c >= 'A' && c <= 'Z' }

// MaxSlugLen is the longest client, project or user id.
const MaxSlugLen = 40

// ValidSlug reports whether s is a valid client, project or user id: 1–40
// lowercase letters, digits and inner hyphens.
func ValidSlug(s string) bool {
	if len(s) == 0 || len(s) > MaxSlugLen || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLowerAlnum(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

// ValidTokenID reports whether s is a valid session or thread id: 16–64
// lowercase letters and digits.
func ValidTokenID(s string) bool {
	if len(s) < 16 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLowerAlnum(s[i]) {
			return false
		}
	}
	return true
}

// ValidE164 reports whether s is a phone number in E.164 form (+15550100002):
// a plus, then 7–15 digits, the first not 0.
func ValidE164(s string) bool {
	if len(s) < 8 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// ValidChatID reports whether s is a plausible chat user or channel id
// (Slack's U0456 or C0123, or the id of another chat front-end): a letter
// or digit, then up to 63 letters, digits and . _ : @ -.
func ValidChatID(s string) bool {
	if len(s) == 0 || len(s) > 64 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && !strings.ContainsRune("._:@-", rune(c)) {
			return false
		}
	}
	return true
}

// NormalizeEmail returns the lowercase form of a bare address
// ("scott@example.com") and whether it is valid. Display names, comments and
// groups are not accepted: an identity is an address only.
func NormalizeEmail(s string) (string, bool) {
	if s == "" || len(s) > 254 || strings.TrimSpace(s) != s {
		return "", false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "", false
	}
	local, domain, ok := strings.Cut(a.Address, "@")
	if !ok || local == "" || !strings.Contains(domain, ".") && domain != "localhost" {
		return "", false
	}
	return strings.ToLower(a.Address), true
}

// lowerBase32 is RFC 4648 base32 in lowercase without padding: the output is
// safe in URLs, file names, git branch names and queue names.
var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewToken returns 128 random bits as 26 lowercase base32 characters. It is
// used for session and thread ids, which must be unguessable.
func NewToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents it)
	return lowerBase32.EncodeToString(b[:])
}

// DeriveToken returns a 26-character id derived from the given parts by
// SHA-256 (128 bits kept), for ids that must be stable for the same input,
// such as the thread id of an email conversation.
func DeriveToken(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		_ = binary.Write(h, binary.BigEndian, uint32(len(p)))
		h.Write([]byte(p))
	}
	return lowerBase32.EncodeToString(h.Sum(nil)[:16])
}

// NewSortableID returns a 26-character lowercase id that sorts by creation
// time (48 bits of milliseconds, then 80 random bits), for records listed in
// order such as history entries.
func NewSortableID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return lowerBase32.EncodeToString(b[:])
}

// ContainerID returns the id of the edit container of one user on one
// project. Slugs never contain "_", so joining with it cannot collide
// ("a-b"+"c" differs from "a"+"b-c"). Ids longer than MaxContainerIDLen keep
// a readable prefix and end in a hash of the full triple, so they stay unique
// and fit SQS queue names (80 characters) with a prefix.
func ContainerID(clientID, projectID, userID string) string {
	id := clientID + "_" + projectID + "_" + userID
	if len(id) <= MaxContainerIDLen {
		return id
	}
	sum := DeriveToken(clientID, projectID, userID)[:12]
	return strings.TrimRight(id[:MaxContainerIDLen-13], "_-") + "_" + sum
}

// MaxContainerIDLen leaves room for the longest queue-name prefix
// ("webordinary-output-", 19 characters) within SQS's 80.
const MaxContainerIDLen = 56
