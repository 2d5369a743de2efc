package mail

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/webordinary/hermes"
)

const testThreadID = "abcdefghijklmnopqrstuvwxyz" // 26 characters, like hermes.NewToken

func TestNewMessageID(t *testing.T) {
	thread := hermes.NewToken()
	re := regexp.MustCompile(`^hermes\.` + thread + `\.[a-z2-7]{16}@([a-z0-9.-]+)$`)
	for domain, want := range map[string]string{
		"amelia.example.com":        "amelia.example.com",
		"Amelia.EXAMPLE.com":        "amelia.example.com",
		"amelia.example.com.":       "amelia.example.com",
		"edit@Amelia.Example.com":   "amelia.example.com",
		"localhost":                 "localhost",
		"":                          FallbackMessageIDDomain,
		"   ":                       FallbackMessageIDDomain,
		"bad domain":                FallbackMessageIDDomain,
		"-bad.example.com":          FallbackMessageIDDomain,
		"a..b":                      FallbackMessageIDDomain,
		"exa>mple.com":              FallbackMessageIDDomain,
		"ex\r\nBcc: x@y.com":        FallbackMessageIDDomain,
		"bücher.example":            FallbackMessageIDDomain,
		strings.Repeat("a", 64):     FallbackMessageIDDomain,
		"[127.0.0.1]":               FallbackMessageIDDomain,
		"sub_domain.example.com":    FallbackMessageIDDomain,
		"a-b.example.com":           "a-b.example.com",
		"xn--bcher-kva.example.com": "xn--bcher-kva.example.com",
	} {
		id := NewMessageID(thread, domain)
		m := re.FindStringSubmatch(id)
		if m == nil || m[1] != want {
			t.Errorf("NewMessageID(%q) = %q, want domain %q", domain, id, want)
			continue
		}
		if !ValidMessageID(id) {
			t.Errorf("NewMessageID(%q) = %q is not a valid message id", domain, id)
		}
		if got, ok := ThreadFromMessageID(id); !ok || got != thread {
			t.Errorf("ThreadFromMessageID(%q) = %q, %v", id, got, ok)
		}
	}

	seen := map[string]bool{}
	for range 1000 {
		id := NewMessageID(thread, "example.com")
		if seen[id] {
			t.Fatalf("repeated message id %q", id)
		}
		seen[id] = true
	}

	// The longest thread id still gives a valid message id.
	long := strings.Repeat("z", 64)
	if id := NewMessageID(long, strings.Repeat("a", 63)+"."+strings.Repeat("b", 63)); !ValidMessageID(id) {
		t.Errorf("long id %q is not valid", id)
	} else if got, ok := ThreadFromMessageID(id); !ok || got != long {
		t.Errorf("long id: ThreadFromMessageID = %q, %v", got, ok)
	}

	// An invalid thread id gives a unique id that carries no thread.
	for _, bad := range []string{"", "short", "UPPERCASEUPPERCASEUPPER", "has.dot.in.it.abcdefghij", "a@b", strings.Repeat("a", 65)} {
		id := NewMessageID(bad, "example.com")
		if !ValidMessageID(id) || !strings.HasPrefix(id, "hermes.") {
			t.Errorf("NewMessageID(%q) = %q", bad, id)
		}
		if got, ok := ThreadFromMessageID(id); ok {
			t.Errorf("NewMessageID(%q) = %q carries thread %q", bad, id, got)
		}
	}
}

func TestThreadFromMessageID(t *testing.T) {
	random := "abcdefgh234567ab"
	ok := map[string]string{
		"hermes." + testThreadID + "." + random + "@example.com":            testThreadID,
		"<hermes." + testThreadID + "." + random + "@example.com>":          testThreadID,
		"  <HERMES." + strings.ToUpper(testThreadID+"."+random) + "@X.Y>  ": testThreadID,
		"hermes.0123456789abcdef." + random + "@hermes.invalid":             "0123456789abcdef",
		"hermes." + strings.Repeat("9", 64) + "." + random + "@localhost":   strings.Repeat("9", 64),
	}
	for id, want := range ok {
		if got, found := ThreadFromMessageID(id); !found || got != want {
			t.Errorf("ThreadFromMessageID(%q) = %q, %v; want %q", id, got, found, want)
		}
	}
	for _, id := range []string{
		"",
		"<>",
		"CAF=abc123@mail.gmail.com",
		"hermes." + testThreadID + "." + random, // no domain
		"hermes." + testThreadID + "." + random + "@",                      // empty domain
		"hermes." + testThreadID + "." + random + "@a@b",                   // two @
		"hermes." + testThreadID + "@example.com",                          // no random part
		"hermes." + testThreadID + ".abc@example.com",                      // short random part
		"hermes." + testThreadID + "." + random + "x@example.com",          // long random part
		"hermes." + testThreadID + ".abcdefgh01890000@example.com",         // not base32
		"hermes.short." + random + "@example.com",                          // thread id too short
		"hermes." + strings.Repeat("a", 65) + "." + random + "@x.com",      // thread id too long
		"hermes." + testThreadID + "-x." + random + "@example.com",         // bad thread id
		"xhermes." + testThreadID + "." + random + "@example.com",          // other prefix
		"hermes." + testThreadID + "." + random + ".x@example.com",         // extra part
		"re.hermes." + testThreadID + "." + random + "@example.com",        // prefix not at start
		"<hermes." + testThreadID + "." + random + "@example.com> <x@y.z>", // two ids
	} {
		if got, found := ThreadFromMessageID(id); found {
			t.Errorf("ThreadFromMessageID(%q) = %q, want no thread", id, got)
		}
	}
}

func TestValidMessageID(t *testing.T) {
	for id, want := range map[string]bool{
		"a@b": true, "CAF=x+y/z_1.2@mail.gmail.com": true, "1234.5678@[127.0.0.1]": true,
		"": false, "a": false, "@b": false, "a@": false, "a b@c": false, "a@b\r\nBcc: x": false,
		"<a@b>": false, "a>@b": false, "é@b": false, "a@b\x00": false, "a\t@b": false,
		strings.Repeat("a", 890) + "@example.com": false, strings.Repeat("a", 880) + "@example.com": true,
	} {
		if got := ValidMessageID(id); got != want {
			t.Errorf("ValidMessageID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestConversationToken(t *testing.T) {
	re := regexp.MustCompile(`^[a-z2-7]{8}$`)
	seen := map[string]bool{}
	for range 1000 {
		tok := NewToken()
		if !re.MatchString(tok) || !ValidToken(tok) {
			t.Fatalf("bad token %q", tok)
		}
		if seen[tok] {
			t.Fatalf("repeated token %q", tok) // 1000 draws of 40 bits: p ≈ 5e-7
		}
		seen[tok] = true
		if got := FormatToken(tok); got != "[ref:"+tok+"]" {
			t.Fatalf("FormatToken(%q) = %q", tok, got)
		}
		if got, ok := FindToken(FormatToken(tok)); !ok || got != tok {
			t.Fatalf("FindToken(FormatToken(%q)) = %q, %v", tok, got, ok)
		}
	}
	if got := FormatToken("ABCD2345"); got != "[ref:abcd2345]" {
		t.Errorf("FormatToken lowercases: %q", got)
	}
	for tok, want := range map[string]bool{"abcd2345": true, "ABCD2345": false, "abcd234": false, "abcd23456": false, "abcd2381": false, "": false} {
		if ValidToken(tok) != want {
			t.Errorf("ValidToken(%q) != %v", tok, want)
		}
	}
}

func TestFindToken(t *testing.T) {
	const tok = "abcd2345"
	found := []string{
		"[ref:abcd2345]",
		"ref:abcd2345",
		"REF:ABCD2345",
		"[Ref:AbCd2345]",
		"Re: Make the header blue [ref:abcd2345]",
		"RE: AW: Fwd: SV: Make the header blue [ref:abcd2345]",
		"Re[2]: Make the header blue [REF:ABCD2345]",
		"Make the header blue [ref:abcd2345] - follow up",
		"Re: Make the header blue\r\n [ref:abcd2345]", // a folded subject, not unfolded
		"Re: Make the header blue\n\t[ref:abcd2345]",
		"Re: Make the header blue [ref:\r\n abcd2345]", // wrapped inside the brackets
		"Re: Make the header blue [ ref: abcd2345 ]",
		"Re: blue (ref:abcd2345)",
		"Re: blue ref:abcd2345.",
		"Re: blue, ref:abcd2345, thanks",
		"Thanks!\n\n> Reply to this email to continue the conversation. Reference: [ref:abcd2345]\n",
		"Thanks!\n> > Reference: [ref:abcd2345]",
		"ref:abcd2345 and later [ref:zzzz7777]", // the first wins
		"ref:abcd234 ref:abcd2345",              // a short one is skipped
		"xref:zzzz7777 ref:abcd2345",            // a glued one is skipped
		"ref:zzzz77770 ref:abcd2345",            // a long one is skipped
		"Réf: ref:abcd2345",                     // non-ASCII around it
		"日本語 ref:abcd2345 日本語",
		"日本語：ref:abcd2345。",
		"—ref:abcd2345—",
		"_ref:abcd2345_",
		"<ref:abcd2345>",
		"\"ref:abcd2345\"",
	}
	for _, s := range found {
		if got, ok := FindToken(s); !ok || got != tok {
			t.Errorf("FindToken(%q) = %q, %v; want %q", s, got, ok, tok)
		}
	}
	for _, s := range []string{
		"",
		"ref:",
		"[ref:]",
		"ref:abcd234",
		"ref:abcd23456",
		"ref:abcd2345x",
		"ref:abcd2345é",
		"ref:abcd2381",    // 8 and 1 are not base32
		"ref:abcd-2345",   // not contiguous
		"ref: abcd2345",   // white space only inside brackets
		"xref:abcd2345",   // glued to a word
		"2ref:abcd2345",   // glued to a digit
		"éref:abcd2345",   // glued to a non-ASCII letter
		"日本語ref:abcd2345", // glued to CJK letters
		"reference: abcd2345",
		"re f:abcd2345",
		"ref;abcd2345",
		strings.Repeat("ref:", 1000),
	} {
		if got, ok := FindToken(s); ok {
			t.Errorf("FindToken(%q) = %q, want none", s, got)
		}
	}

	if got := FindTokens("ref:abcd2345 [ref:zzzz7777] REF:ABCD2345 xref:aaaa2222 ref:bbbb3333"); strings.Join(got, ",") != "abcd2345,zzzz7777,bbbb3333" {
		t.Errorf("FindTokens = %v", got)
	}
	if got := FindTokens("nothing here"); len(got) != 0 {
		t.Errorf("FindTokens = %v", got)
	}
}

func TestReplySubject(t *testing.T) {
	const tok = "abcd2345"
	for _, c := range []struct{ orig, token, want string }{
		{"Make the header blue", tok, "Re: Make the header blue [ref:abcd2345]"},
		{"Re: Make the header blue", tok, "Re: Make the header blue [ref:abcd2345]"},
		{"RE: Re: re: Make the header blue", tok, "Re: Make the header blue [ref:abcd2345]"},
		{"Re[2]: Re(3): RE^4: Make the header blue", tok, "Re: Make the header blue [ref:abcd2345]"},
		{"AW: Aw: WG: Fwd: FW: Sv: SV: VS: Antw: TR: RIF: Odp: YNT: RV: Res: Enc: blue", tok, "Re: blue [ref:abcd2345]"},
		{"Re : Fwd : blue", tok, "Re: blue [ref:abcd2345]"},
		{"Re：blue", tok, "Re: blue [ref:abcd2345]"},
		{"Re: Make the header blue [ref:abcd2345]", tok, "Re: Make the header blue [ref:abcd2345]"},
		{"Re: Make the header blue [REF:ABCD2345]", tok, "Re: Make the header blue [ref:abcd2345]"},
		{"Re: [ref:abcd2345] Make the header blue", tok, "Re: Make the header blue [ref:abcd2345]"},
		{"Re: Make the header blue ref:abcd2345", tok, "Re: Make the header blue [ref:abcd2345]"},
		{"Re: Make the header blue [ref:zzzz7777]", tok, "Re: Make the header blue [ref:abcd2345]"}, // another thread's token is replaced
		{"Re: [ref:abcd2345] Re: Make the header blue [ref:abcd2345]", tok, "Re: Make the header blue [ref:abcd2345]"},
		{"Re: Make the header\r\n blue", tok, "Re: Make the header blue [ref:abcd2345]"},
		{"  Make   the\theader  blue  ", tok, "Re: Make the header blue [ref:abcd2345]"},
		{"", tok, "Re: your edit request [ref:abcd2345]"},
		{"   ", tok, "Re: your edit request [ref:abcd2345]"},
		{"Re:", tok, "Re: your edit request [ref:abcd2345]"},
		{"Re: [ref:abcd2345]", tok, "Re: your edit request [ref:abcd2345]"},
		{"Fwd: RE:", "", "Re: your edit request"},
		{"Make the header blue", "", "Re: Make the header blue"},
		{"Make the header blue", "ABCD2345", "Re: Make the header blue [ref:abcd2345]"},
		{"Make the header blue", "not-a-token", "Re: Make the header blue"},
		{"Café Müller: neue Öffnungszeiten 🎉", tok, "Re: Café Müller: neue Öffnungszeiten 🎉 [ref:abcd2345]"},
		{"AW: Café Müller", tok, "Re: Café Müller [ref:abcd2345]"},
		{"Ready: the new page", tok, "Re: Ready: the new page [ref:abcd2345]"}, // not a prefix
		{"Re-design the page", tok, "Re: Re-design the page [ref:abcd2345]"},   // not a prefix
		{"Research: new menu", tok, "Re: Research: new menu [ref:abcd2345]"},   // not a prefix
		{"Re[x]: blue", tok, "Re: Re[x]: blue [ref:abcd2345]"},                 // not a counter
		{"Subject with\x00control\x7f chars", tok, "Re: Subject withcontrol chars [ref:abcd2345]"},
		{"bad \xff utf-8", tok, "Re: bad utf-8 [ref:abcd2345]"},
	} {
		if got := ReplySubject(c.orig, c.token); got != c.want {
			t.Errorf("ReplySubject(%q, %q) = %q, want %q", c.orig, c.token, got, c.want)
		}
	}

	// Idempotent over a whole conversation, and always valid for Compose.
	s := "Make the header blue"
	for range 10 {
		s = ReplySubject("Re: "+s, tok)
		if s != "Re: Make the header blue [ref:abcd2345]" {
			t.Fatalf("subject drifted: %q", s)
		}
	}

	long := strings.Repeat("é", 500)
	got := ReplySubject(long, tok)
	if n := len([]rune(got)); n > len("Re: ")+200+len(" [ref:abcd2345]") || !strings.HasSuffix(got, "… [ref:abcd2345]") {
		t.Errorf("long subject not shortened: %d runes %q", n, got)
	}
	if err := checkHeaderText("Subject", got); err != nil {
		t.Error(err)
	}
	if found, ok := FindToken(got); !ok || found != tok {
		t.Errorf("FindToken(ReplySubject) = %q, %v", found, ok)
	}
}

func TestThreadFromHeaders(t *testing.T) {
	hid := func(thread string) string { return NewMessageID(thread, "example.com") }
	a, b, c := "aaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbb", "cccccccccccccccccccccccccc"
	for _, tc := range []struct {
		name            string
		inReplyTo, refs []string
		want            string
		wantOK          bool
	}{
		{"nothing", nil, nil, "", false},
		{"foreign only", []string{"<x@gmail.com>"}, []string{"<y@gmail.com>", "<x@gmail.com>"}, "", false},
		{"in-reply-to", []string{"<" + hid(a) + ">"}, nil, a, true},
		{"in-reply-to bare", []string{hid(a)}, nil, a, true},
		{"in-reply-to first", []string{"<" + hid(a) + ">"}, []string{"<" + hid(b) + ">"}, a, true},
		{"references newest first", []string{"<x@gmail.com>"}, []string{"<" + hid(b) + ">", "<y@x>", "<" + hid(c) + ">", "<z@x>"}, c, true},
		{"references as one header", nil, []string{"<" + hid(b) + "> <y@x>\r\n <" + hid(c) + ">  <z@x>"}, c, true},
		{"references with comments", nil, []string{"(root) <" + hid(b) + "> (next) <x@y>"}, b, true},
		{"bare references separated by spaces", nil, []string{hid(b) + " " + hid(c)}, c, true},
		{"bare references separated by commas", nil, []string{hid(b) + ", x@y"}, b, true},
		{"in-reply-to with several ids", []string{"<x@y> <" + hid(a) + ">"}, nil, a, true},
		{"invalid hermes-like ids skipped", []string{"<hermes.short.abcdefgh234567ab@x>"}, []string{"<" + hid(b) + ">"}, b, true},
		{"unclosed bracket", []string{"<" + hid(a)}, nil, "", false},
	} {
		got, ok := ThreadFromHeaders(tc.inReplyTo, tc.refs)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("%s: ThreadFromHeaders = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestReferencesFor(t *testing.T) {
	eq := func(a, b []string) bool { return strings.Join(a, " ") == strings.Join(b, " ") }
	for _, tc := range []struct {
		name   string
		parent string
		refs   []string
		want   []string
	}{
		{"first reply", "<root@x>", nil, []string{"root@x"}},
		{"no parent", "", []string{"<a@x>"}, []string{"a@x"}},
		{"nothing", "", nil, nil},
		{"chain", "c@x", []string{"<a@x>", "<b@x>"}, []string{"a@x", "b@x", "c@x"}},
		{"one header", "<c@x>", []string{"<a@x> <b@x>\r\n\t<a@x>"}, []string{"a@x", "b@x", "c@x"}},
		{"dedupe keeps first", "d@x", []string{"a@x", "b@x", "a@x", "c@x", "b@x"}, []string{"a@x", "b@x", "c@x", "d@x"}},
		{"parent moved last", "a@x", []string{"a@x", "b@x"}, []string{"b@x", "a@x"}},
		{"invalid dropped", "c@x", []string{"<a@x>", "<no-at>", "<é@x>", "<b@x>"}, []string{"a@x", "b@x", "c@x"}},
		{"invalid parent", "not an id", []string{"a@x"}, []string{"a@x"}},
	} {
		if got := ReferencesFor(tc.parent, tc.refs); !eq(got, tc.want) {
			t.Errorf("%s: ReferencesFor = %q, want %q", tc.name, got, tc.want)
		}
	}

	var long []string
	for i := range 40 {
		long = append(long, fmt.Sprintf("m%02d@x", i))
	}
	got := ReferencesFor("parent@x", long)
	want := append([]string{"m00@x"}, append(long[40-(MaxReferences-2):], "parent@x")...)
	if len(got) != MaxReferences || !eq(got, want) {
		t.Errorf("capped = %q\nwant %q", got, want)
	}

	// A long conversation: the user's client and Hermes alternate, each
	// reply built from its parent. The root stays, the parent is always
	// last, the chain stays capped, and the thread is always found.
	thread := hermes.NewToken()
	root := "CAF=root@mail.gmail.com"
	parentID, parentRefs := root, []string(nil)
	for i := range 200 {
		var id string
		if i%2 == 0 {
			id = NewMessageID(thread, "amelia.example.com") // Hermes
		} else {
			id = fmt.Sprintf("CAF=%d@mail.gmail.com", i) // the user
		}
		refs := ReferencesFor(parentID, parentRefs)
		if len(refs) == 0 || len(refs) > MaxReferences || refs[0] != root || refs[len(refs)-1] != parentID {
			t.Fatalf("message %d: refs %q", i, refs)
		}
		if i > 0 {
			if got, ok := ThreadFromHeaders([]string{parentID}, refs); !ok || got != thread {
				t.Fatalf("message %d: thread not found: %q %v", i, got, ok)
			}
			// A client that drops In-Reply-To still threads by References.
			if got, ok := ThreadFromHeaders(nil, refs); !ok || got != thread {
				t.Fatalf("message %d: thread not found in References: %q %v", i, got, ok)
			}
		}
		parentID, parentRefs = id, refs
	}
}
