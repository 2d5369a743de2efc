package hermes_test

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
)

func TestValidSlug(t *testing.T) {
	for s, want := range map[string]bool{
		"amelia": true, "a": true, "site-2": true, "a1-b2-c3": true, strings.Repeat("a", 40): true,
		"": false, "-a": false, "a-": false, "A": false, "a_b": false, "a.b": false, "a b": false,
		strings.Repeat("a", 41): false, "../x": false, "é": false,
	} {
		if got := hermes.ValidSlug(s); got != want {
			t.Errorf("ValidSlug(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	for in, want := range map[string]string{
		"Scott@Example.com": "scott@example.com", "a@localhost": "a@localhost",
		"Scott <s@x.com>": "", "s@x": "", "": "", " s@x.com": "", "s@@x.com": "", "s@x.com, t@x.com": "",
	} {
		got, ok := hermes.NormalizeEmail(in)
		if got != want || ok != (want != "") {
			t.Errorf("NormalizeEmail(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
}

func TestValidE164(t *testing.T) {
	for s, want := range map[string]bool{"+15550100002": true, "+442071838750": true, "15550100002": false, "+0123456789": false, "+1": false, "+1555010000212345": false} {
		if hermes.ValidE164(s) != want {
			t.Errorf("ValidE164(%q) != %v", s, want)
		}
	}
}

func TestTokens(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok := hermes.NewToken()
		if !hermes.ValidTokenID(tok) || len(tok) != 26 || seen[tok] {
			t.Fatalf("bad or repeated token %q", tok)
		}
		seen[tok] = true
	}
	if hermes.DeriveToken("a", "bc") == hermes.DeriveToken("ab", "c") {
		t.Error("DeriveToken is ambiguous over part boundaries")
	}
	if x := hermes.DeriveToken("x"); x != "45bkxr6imuoufw45mvzmxikldq" || !hermes.ValidTokenID(x) {
		t.Error("DeriveToken is not stable or not a valid id")
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := hermes.NewSortableID(t0), hermes.NewSortableID(t0.Add(time.Millisecond))
	if !(a < b) || len(a) != 26 {
		t.Errorf("sortable ids out of order: %s %s", a, b)
	}
}

func TestContainerID(t *testing.T) {
	if got := hermes.ContainerID("amelia", "site", "scott"); got != "amelia_site_scott" {
		t.Errorf("got %q", got)
	}
	if hermes.ContainerID("a-b", "c", "d") == hermes.ContainerID("a", "b-c", "d") {
		t.Error("container ids collide across slug boundaries")
	}
	long := strings.Repeat("x", 40)
	a := hermes.ContainerID(long, long, long+"")
	b := hermes.ContainerID(long, long, strings.Repeat("x", 39)+"y")
	if len(a) > hermes.MaxContainerIDLen || a == b {
		t.Errorf("long ids: %q (%d) %q", a, len(a), b)
	}
	for _, id := range []string{a, b, hermes.ContainerID("amelia", "site", "scott")} {
		for _, r := range id {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				t.Errorf("container id %q has %q", id, r)
			}
		}
	}
}

func TestErrors(t *testing.T) {
	err := hermes.E("op", hermes.Internal, hermes.Errorf(hermes.NotFound, "secret detail"))
	if hermes.ErrorKind(err) != hermes.Internal || hermes.ErrorMessage(err) != "an internal error occurred" {
		t.Errorf("internal errors must not show their cause: %v %q", hermes.ErrorKind(err), hermes.ErrorMessage(err))
	}
	err = hermes.E("sqlite.Get", hermes.NotFound, hermes.Errorf(hermes.NotFound, "session x not found"))
	if hermes.ErrorMessage(err) != "session x not found" || !strings.Contains(err.Error(), "sqlite.Get") {
		t.Errorf("got %q / %q", hermes.ErrorMessage(err), err)
	}
	var v hermes.ValidationError
	if v.Err() != nil {
		t.Error("empty validation is an error")
	}
	v.Add("a", "bad %d", 1)
	v.Add("b", "worse")
	if hermes.ErrorKind(v.Err()) != hermes.Invalid || hermes.ErrorMessage(v.Err()) != "a: bad 1 (and 1 more)" {
		t.Errorf("validation: %v", v.Err())
	}
}

// The hand-written validators accept exactly what these patterns accept.
func TestValidatorsMatchPatterns(t *testing.T) {
	cases := []struct {
		name  string
		re    *regexp.Regexp
		valid func(string) bool
	}{
		{"slug", regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$`), hermes.ValidSlug},
		{"token", regexp.MustCompile(`^[a-z0-9]{16,64}$`), hermes.ValidTokenID},
		{"e164", regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`), hermes.ValidE164},
		{"chat", regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$`), hermes.ValidChatID},
		{"queue", regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`), hermes.ValidQueueName},
	}
	alphabet := []byte("az09AZ-_.:@+ é/\x00")
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range cases {
		for range 20000 {
			b := make([]byte, rng.IntN(90))
			for i := range b {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
			if rng.IntN(2) == 0 && len(b) > 0 { // bias towards valid-looking input
				for i := range b {
					b[i] = "abc123"[rng.IntN(6)]
				}
				if tc.name == "e164" {
					b[0] = '+'
				}
			}
			s := string(b)
			if got, want := tc.valid(s), tc.re.MatchString(s); got != want {
				t.Fatalf("%s(%q) = %v, the pattern says %v", tc.name, s, got, want)
			}
		}
	}
}
