// Package twilio speaks the wire format of Twilio's SMS webhooks: the
// X-Twilio-Signature check (ValidSignature), the form of an inbound message
// (ParseInbound) and the TwiML reply (TwiML).
//
// The signature covers the exact URL Twilio requested (as configured in the
// Twilio console: scheme, host, optional port, path, query) followed by the
// POST body parameters. Behind a proxy or under a base path the handler must
// rebuild that public URL from configuration, not from the request's Host.
package twilio

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/webordinary/hermes"
)

// SignatureHeader is the HTTP header that carries Twilio's signature.
const SignatureHeader = "X-Twilio-Signature"

// ValidSignature reports whether signature (the X-Twilio-Signature header)
// is Twilio's signature of a request to fullURL with the POST parameters
// form, keyed by authToken: base64(HMAC-SHA1(authToken, fullURL followed by
// each parameter name, in byte order, immediately followed by its value)).
// A name given several times contributes each distinct value, in byte
// order, as Twilio's own libraries do.
//
// form must be the body parameters only (http.Request.PostForm, not Form,
// which would add the query parameters a second time). fullURL is the URL
// as Twilio requested it, query string included. As Twilio's libraries do,
// the signature is also accepted for fullURL without its port and, when it
// has none, with the scheme's default port, because Twilio is not
// consistent about signing those. Comparisons take constant time. An empty
// authToken or signature is never valid.
func ValidSignature(authToken, fullURL string, form url.Values, signature string) bool {
	if authToken == "" || signature == "" {
		return false
	}
	params := signedParams(form)
	valid := false
	for _, u := range urlVariants(fullURL) {
		mac := hmac.New(sha1.New, []byte(authToken))
		mac.Write([]byte(u))
		mac.Write(params)
		want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
		// Every variant is checked so that timing does not tell which matched.
		if hmac.Equal([]byte(want), []byte(signature)) {
			valid = true
		}
	}
	return valid
}

// signedParams is the parameter part of the signed string.
func signedParams(form url.Values) []byte {
	names := make([]string, 0, len(form))
	for name := range form {
		names = append(names, name)
	}
	slices.Sort(names)
	var b []byte
	for _, name := range names {
		values := slices.Clone(form[name])
		slices.Sort(values)
		for _, v := range slices.Compact(values) {
			b = append(b, name...)
			b = append(b, v...)
		}
	}
	return b
}

// urlVariants returns raw, then raw without its port, or raw with the
// default port of its scheme when it has none. The URL is changed by string
// surgery on the authority only, so that its path and query keep exactly
// the bytes Twilio signed.
func urlVariants(raw string) []string {
	variants := []string{raw}
	i := strings.Index(raw, "://")
	if i <= 0 {
		return variants
	}
	scheme := strings.ToLower(raw[:i])
	start := i + len("://")
	end := len(raw)
	if j := strings.IndexAny(raw[start:], "/?#"); j >= 0 {
		end = start + j
	}
	authority := raw[start:end]
	hostStart := start + strings.LastIndex(authority, "@") + 1
	hostport := raw[hostStart:end]
	if c := strings.LastIndexByte(hostport, ':'); c >= 0 && !strings.Contains(hostport[c:], "]") {
		// hostport has a port (an IPv6 literal's colons are inside brackets).
		return append(variants, raw[:hostStart+c]+raw[end:])
	}
	switch scheme {
	case "https":
		return append(variants, raw[:end]+":443"+raw[end:])
	case "http":
		return append(variants, raw[:end]+":80"+raw[end:])
	}
	return variants
}

// Inbound is one SMS (or MMS) received by a Twilio number.
type Inbound struct {
	MessageSid string // SM… or MM…, 34 characters: the dedup key
	AccountSid string // AC…, when Twilio sent it; compare with TWILIO_ACCOUNT_SID
	From       string // the sender, E.164
	To         string // the Twilio number, E.164
	Body       string // the text as sent, possibly empty when NumMedia > 0
	NumMedia   int
}

var (
	messageSidPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(SM|MM)[0-9a-fA-F]{32}$`) })
	accountSidPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`) })
)

// ParseInbound reads the form of an inbound-message webhook. It requires a
// MessageSid (SM… or MM…), From and To in E.164 form, and a Body unless
// NumMedia is positive (a picture without text is returned; the caller
// decides). AccountSid, when present, must be well-formed. Every field read
// may appear only once. Errors are Invalid.
func ParseInbound(form url.Values) (*Inbound, error) {
	get := func(name string) (string, error) {
		switch vs := form[name]; len(vs) {
		case 0:
			return "", nil
		case 1:
			if !utf8.ValidString(vs[0]) {
				return "", hermes.Errorf(hermes.Invalid, "%s is not valid UTF-8", name)
			}
			return vs[0], nil
		}
		return "", hermes.Errorf(hermes.Invalid, "%s is given more than once", name)
	}
	var in Inbound
	var numMedia string
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"MessageSid", &in.MessageSid}, {"AccountSid", &in.AccountSid},
		{"From", &in.From}, {"To", &in.To}, {"Body", &in.Body}, {"NumMedia", &numMedia},
	} {
		v, err := get(f.name)
		if err != nil {
			return nil, err
		}
		*f.dst = v
	}
	switch {
	case in.MessageSid == "":
		return nil, hermes.Errorf(hermes.Invalid, "MessageSid is missing")
	case !messageSidPattern().MatchString(in.MessageSid):
		return nil, hermes.Errorf(hermes.Invalid, "MessageSid is not a Twilio message SID (SM or MM and 32 hex digits)")
	case in.AccountSid != "" && !accountSidPattern().MatchString(in.AccountSid):
		return nil, hermes.Errorf(hermes.Invalid, "AccountSid is not a Twilio account SID (AC and 32 hex digits)")
	case in.From == "":
		return nil, hermes.Errorf(hermes.Invalid, "From is missing")
	case !hermes.ValidE164(in.From):
		return nil, hermes.Errorf(hermes.Invalid, "From is not a phone number in E.164 form")
	case in.To == "":
		return nil, hermes.Errorf(hermes.Invalid, "To is missing")
	case !hermes.ValidE164(in.To):
		return nil, hermes.Errorf(hermes.Invalid, "To is not a phone number in E.164 form")
	}
	if numMedia != "" {
		n, err := strconv.Atoi(numMedia)
		// Twilio attaches at most 10 items; the bound only keeps the
		// number sane.
		if err != nil || n > 999 || strings.TrimLeft(numMedia, "0123456789") != "" {
			return nil, hermes.Errorf(hermes.Invalid, "NumMedia is not a small non-negative number")
		}
		in.NumMedia = n
	}
	if strings.TrimSpace(in.Body) == "" && in.NumMedia == 0 {
		return nil, hermes.Errorf(hermes.Invalid, "the message has no text and no media")
	}
	return &in, nil
}

const xmlHeader = `<?xml version="1.0" encoding="UTF-8"?>`

// TwiML returns the TwiML reply that sends message back to the sender:
// <Response><Message>message</Message></Response>, XML-escaped (characters
// XML cannot carry become U+FFFD). An empty or blank message gives an empty
// <Response/>, which sends nothing. Serve it as text/xml (or
// application/xml).
func TwiML(message string) []byte {
	if strings.TrimSpace(message) == "" {
		return []byte(xmlHeader + "<Response/>")
	}
	var b strings.Builder
	b.Grow(len(xmlHeader) + len(message) + 48)
	b.WriteString(xmlHeader + "<Response><Message>")
	_ = xml.EscapeText(&b, []byte(message)) // a strings.Builder never fails
	b.WriteString("</Message></Response>")
	return []byte(b.String())
}
