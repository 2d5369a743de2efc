package twilio

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/webordinary/hermes"
)

// sign computes a signature the long way, independently of the package:
// the caller spells out the exact string Twilio signs.
func sign(token, data string) string {
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(data))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Twilio's documented example (https://www.twilio.com/docs/usage/security).
const (
	docToken = "12345"
	docURL   = "https://mycompany.com/myapp.php?foo=1&bar=2"
	docSig   = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
)

func docForm() url.Values {
	return url.Values{
		"CallSid": {"CA1234567890ABCDE"},
		"Caller":  {"+12349013030"},
		"Digits":  {"1234"},
		"From":    {"+12349013030"},
		"To":      {"+18005551212"},
	}
}

func TestDocumentedExample(t *testing.T) {
	data := docURL + "CallSidCA1234567890ABCDE" + "Caller+12349013030" + "Digits1234" + "From+12349013030" + "To+18005551212"
	if got := sign(docToken, data); got != docSig {
		t.Fatalf("independent computation = %q, want Twilio's %q", got, docSig)
	}
	if !ValidSignature(docToken, docURL, docForm(), docSig) {
		t.Fatal("Twilio's documented signature is not accepted")
	}
}

func TestSignatureRejections(t *testing.T) {
	tampered := docForm()
	tampered.Set("Digits", "1235")
	added := docForm()
	added.Set("Body", "extra")
	removed := docForm()
	removed.Del("Caller")
	renamed := docForm()
	renamed["caller"] = renamed["Caller"]
	renamed.Del("Caller")
	// Moving a character between a name and its value: the scheme has no
	// separators, so this is the one change it cannot see. Listed to pin the
	// behaviour rather than hide it.
	shifted := docForm()
	shifted.Del("Digits")
	shifted.Set("Digits1", "234")

	for _, tc := range []struct {
		name            string
		token, url, sig string
		form            url.Values
		want            bool
	}{
		{"tampered value", docToken, docURL, docSig, tampered, false},
		{"added param", docToken, docURL, docSig, added, false},
		{"removed param", docToken, docURL, docSig, removed, false},
		{"renamed param (case)", docToken, docURL, docSig, renamed, false},
		{"name/value boundary", docToken, docURL, docSig, shifted, true},
		{"wrong token", "54321", docURL, docSig, docForm(), false},
		{"empty token", "", docURL, sign("", docURL+"CallSidCA1234567890ABCDECaller+12349013030Digits1234From+12349013030To+18005551212"), docForm(), false},
		{"missing header", docToken, docURL, "", docForm(), false},
		{"garbage header", docToken, docURL, "not a signature", docForm(), false},
		{"signature of another URL", docToken, "https://mycompany.com/myapp.php?foo=1&bar=3", docSig, docForm(), false},
		{"http instead of https", docToken, "http://mycompany.com/myapp.php?foo=1&bar=2", docSig, docForm(), false},
		{"query dropped", docToken, "https://mycompany.com/myapp.php", docSig, docForm(), false},
		{"query reordered", docToken, "https://mycompany.com/myapp.php?bar=2&foo=1", docSig, docForm(), false},
		{"trailing slash", docToken, "https://mycompany.com/myapp.php/?foo=1&bar=2", docSig, docForm(), false},
		{"signature with whitespace", docToken, docURL, " " + docSig, docForm(), false},
		{"signature lowercase", docToken, docURL, strings.ToLower(docSig), docForm(), false},
		{"no params", docToken, docURL, docSig, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidSignature(tc.token, tc.url, tc.form, tc.sig); got != tc.want {
				t.Fatalf("ValidSignature = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSignaturePorts(t *testing.T) {
	const token = "f4e1bb1c1e0a4a8cbd0c7ef0f0d2a9b1"
	form := url.Values{"Body": {"hi"}, "From": {"+15550100002"}}
	params := "Bodyhi" + "From+15550100002"
	for _, tc := range []struct {
		name      string
		signedURL string // what Twilio signed
		ourURL    string // what the handler passes
		want      bool
	}{
		{"same", "https://hermes.example.com/inbound/sms/twilio", "https://hermes.example.com/inbound/sms/twilio", true},
		{"Twilio signed :443, we have none", "https://hermes.example.com:443/inbound/sms/twilio", "https://hermes.example.com/inbound/sms/twilio", true},
		{"Twilio signed none, we have :443", "https://hermes.example.com/inbound/sms/twilio", "https://hermes.example.com:443/inbound/sms/twilio", true},
		{"http default port", "http://hermes.example.com:80/sms?x=1", "http://hermes.example.com/sms?x=1", true},
		{"custom port both", "https://hermes.example.com:8443/sms", "https://hermes.example.com:8443/sms", true},
		{"custom port dropped by Twilio", "https://hermes.example.com/sms", "https://hermes.example.com:8443/sms", true},
		{"custom port we lack", "https://hermes.example.com:8443/sms", "https://hermes.example.com/sms", false},
		{"wrong default port for scheme", "https://hermes.example.com:80/sms", "https://hermes.example.com/sms", false},
		{"userinfo kept", "https://user:pw@hermes.example.com:443/sms", "https://user:pw@hermes.example.com/sms", true},
		{"IPv6 literal", "https://[2001:db8::1]:443/sms", "https://[2001:db8::1]/sms", true},
		{"IPv6 literal with port", "https://[2001:db8::1]/sms", "https://[2001:db8::1]:443/sms", true},
		{"no path", "https://hermes.example.com:443", "https://hermes.example.com", true},
		{"query only", "https://hermes.example.com:443?a=b", "https://hermes.example.com?a=b", true},
		{"query with colon is not a port", "https://hermes.example.com/sms?t=10:30", "https://hermes.example.com/sms?t=10:30", true},
		{"path encoding is kept", "https://hermes.example.com/base%20path/sms", "https://hermes.example.com/base path/sms", false},
		{"base path required", "https://hermes.example.com/hermes/inbound/sms/twilio", "https://hermes.example.com/inbound/sms/twilio", false},
		{"not a URL", "hermes", "hermes", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig := sign(token, tc.signedURL+params)
			if got := ValidSignature(token, tc.ourURL, form, sig); got != tc.want {
				t.Fatalf("ValidSignature = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSignatureRepeatedParams(t *testing.T) {
	const token = "secret"
	const u = "https://hermes.example.com/inbound/sms/twilio"
	// Each distinct value, sorted, each preceded by the name; names sorted
	// in byte order (upper case before lower case).
	form := url.Values{"b": {"2"}, "MediaUrl": {"z", "a", "z"}, "A": {""}}
	want := sign(token, u+"A"+"MediaUrla"+"MediaUrlz"+"b2")
	if !ValidSignature(token, u, form, want) {
		t.Fatal("repeated parameters not signed as Twilio's libraries do")
	}
	if ValidSignature(token, u, url.Values{"b": {"2"}, "MediaUrl": {"z", "a"}}, want) {
		t.Fatal("dropping a parameter with an empty value went unnoticed")
	}
	if ValidSignature(token, u, url.Values{"b": {"2"}, "MediaUrl": {"z", "a", "y"}, "A": {""}}, want) {
		t.Fatal("an added repeated value went unnoticed")
	}
	if ValidSignature(token, u, form, sign(token, u+"A"+"MediaUrlz"+"MediaUrla"+"MediaUrlz"+"b2")) {
		t.Fatal("values in arrival order accepted")
	}
	// The caller's form is not reordered.
	if got := form["MediaUrl"]; strings.Join(got, ",") != "z,a,z" {
		t.Fatalf("form changed: %v", got)
	}
}

// TestSignatureFromRequest shows the handler's view: the body parameters
// only (PostForm), the public URL with its query.
func TestSignatureFromRequest(t *testing.T) {
	const token = "tok"
	const public = "https://hermes.example.com/base/inbound/sms/twilio?project=site"
	body := "To=%2B15550100001&From=%2B15550100002&Body=Make+the+header+blue&MessageSid=SM0123456789abcdef0123456789abcdef"
	r := httptest.NewRequest(http.MethodPost, "/inbound/sms/twilio?project=site", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set(SignatureHeader, sign(token, public+"BodyMake the header blue"+"From+15550100002"+"MessageSidSM0123456789abcdef0123456789abcdef"+"To+15550100001"))
	if err := r.ParseForm(); err != nil {
		t.Fatal(err)
	}
	if !ValidSignature(token, public, r.PostForm, r.Header.Get(SignatureHeader)) {
		t.Fatal("PostForm and the public URL must validate")
	}
	if ValidSignature(token, public, r.Form, r.Header.Get(SignatureHeader)) {
		t.Fatal("Form (query parameters merged in) must not validate")
	}
}

const (
	sid     = "SM1f0e2a9b3c4d5e6f708192a3b4c5d6e7"
	account = "AC0123456789abcdef0123456789abcdef"
)

func inboundForm() url.Values {
	return url.Values{
		"ToCountry": {"US"}, "ToState": {"CA"}, "SmsMessageSid": {sid}, "NumMedia": {"0"},
		"ToCity": {""}, "FromZip": {"94103"}, "SmsSid": {sid}, "FromState": {"CA"},
		"SmsStatus": {"received"}, "FromCity": {"SAN FRANCISCO"}, "Body": {"Add the March show to the calendar"},
		"FromCountry": {"US"}, "To": {"+15550100001"}, "ToZip": {""}, "NumSegments": {"1"},
		"MessageSid": {sid}, "AccountSid": {account}, "From": {"+15550100002"}, "ApiVersion": {"2010-04-01"},
	}
}

func TestParseInbound(t *testing.T) {
	in, err := ParseInbound(inboundForm())
	if err != nil {
		t.Fatal(err)
	}
	want := Inbound{MessageSid: sid, AccountSid: account, From: "+15550100002", To: "+15550100001", Body: "Add the March show to the calendar"}
	if *in != want {
		t.Fatalf("got %+v", *in)
	}

	mms := inboundForm()
	mms.Set("MessageSid", "MM"+sid[2:])
	mms.Set("Body", "")
	mms.Set("NumMedia", "2")
	mms.Set("MediaUrl0", "https://api.twilio.com/2010-04-01/Accounts/"+account+"/Messages/x/Media/y")
	in, err = ParseInbound(mms)
	if err != nil {
		t.Fatal(err)
	}
	if in.Body != "" || in.NumMedia != 2 || in.MessageSid[:2] != "MM" {
		t.Fatalf("got %+v", in)
	}

	minimal := url.Values{"MessageSid": {sid}, "From": {"+447700900123"}, "To": {"+15550100001"}, "Body": {"  new  "}}
	in, err = ParseInbound(minimal)
	if err != nil {
		t.Fatal(err)
	}
	if in.Body != "  new  " || in.AccountSid != "" || in.NumMedia != 0 {
		t.Fatalf("got %+v", in)
	}
}

func TestParseInboundInvalid(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(f url.Values)
		message string
	}{
		{"no MessageSid", func(f url.Values) { f.Del("MessageSid") }, "MessageSid is missing"},
		{"call SID", func(f url.Values) { f.Set("MessageSid", "CA"+sid[2:]) }, "not a Twilio message SID"},
		{"short SID", func(f url.Values) { f.Set("MessageSid", sid[:33]) }, "not a Twilio message SID"},
		{"SID not hex", func(f url.Values) { f.Set("MessageSid", "SM"+strings.Repeat("z", 32)) }, "not a Twilio message SID"},
		{"SID injection", func(f url.Values) { f.Set("MessageSid", sid+"\n") }, "not a Twilio message SID"},
		{"bad AccountSid", func(f url.Values) { f.Set("AccountSid", "AC123") }, "AccountSid"},
		{"no From", func(f url.Values) { f.Del("From") }, "From is missing"},
		{"From not E.164", func(f url.Values) { f.Set("From", "5550100002") }, "From is not a phone number"},
		{"From WhatsApp", func(f url.Values) { f.Set("From", "whatsapp:+15550100002") }, "From is not a phone number"},
		{"From short code", func(f url.Values) { f.Set("From", "12345") }, "From is not a phone number"},
		{"no To", func(f url.Values) { f.Del("To") }, "To is missing"},
		{"To not E.164", func(f url.Values) { f.Set("To", "+1 555 010 0001") }, "To is not a phone number"},
		{"no Body", func(f url.Values) { f.Del("Body") }, "no text and no media"},
		{"empty Body", func(f url.Values) { f.Set("Body", "") }, "no text and no media"},
		{"blank Body", func(f url.Values) { f.Set("Body", " \n\t") }, "no text and no media"},
		{"NumMedia word", func(f url.Values) { f.Set("NumMedia", "two") }, "NumMedia"},
		{"NumMedia negative", func(f url.Values) { f.Set("NumMedia", "-1") }, "NumMedia"},
		{"NumMedia plus", func(f url.Values) { f.Set("NumMedia", "+1") }, "NumMedia"},
		{"NumMedia huge", func(f url.Values) { f.Set("NumMedia", "99999999999999999999") }, "NumMedia"},
		{"repeated From", func(f url.Values) { f.Add("From", "+15550100003") }, "From is given more than once"},
		{"repeated Body", func(f url.Values) { f.Add("Body", "rm -rf") }, "Body is given more than once"},
		{"invalid UTF-8 Body", func(f url.Values) { f.Set("Body", "caf\xe9") }, "Body is not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := inboundForm()
			tc.change(f)
			in, err := ParseInbound(f)
			if in != nil || err == nil {
				t.Fatalf("got %+v, %v", in, err)
			}
			if hermes.ErrorKind(err) != hermes.Invalid || !strings.Contains(hermes.ErrorMessage(err), tc.message) {
				t.Fatalf("error %v (kind %v), want Invalid with %q", err, hermes.ErrorKind(err), tc.message)
			}
		})
	}
	if _, err := ParseInbound(nil); hermes.ErrorKind(err) != hermes.Invalid {
		t.Fatalf("nil form: %v", err)
	}
}

func TestTwiML(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `<?xml version="1.0" encoding="UTF-8"?><Response/>`},
		{" \n ", `<?xml version="1.0" encoding="UTF-8"?><Response/>`},
		{"Got it — your editor is waking up.", `<?xml version="1.0" encoding="UTF-8"?><Response><Message>Got it — your editor is waking up.</Message></Response>`},
		{`Use <b> & "quotes" 'too'`, `<?xml version="1.0" encoding="UTF-8"?><Response><Message>Use &lt;b&gt; &amp; &#34;quotes&#34; &#39;too&#39;</Message></Response>`},
		{"</Message><Redirect>https://evil.example</Redirect>", `<?xml version="1.0" encoding="UTF-8"?><Response><Message>&lt;/Message&gt;&lt;Redirect&gt;https://evil.example&lt;/Redirect&gt;</Message></Response>`},
		{"a\x00b\x1bc", "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>a\uFFFDb\uFFFDc</Message></Response>"},
	} {
		if got := string(TwiML(tc.in)); got != tc.want {
			t.Errorf("TwiML(%q)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

// TestTwiMLRoundTrip decodes the reply with an XML parser: whatever the
// text, the document is well-formed and carries it unchanged.
func TestTwiMLRoundTrip(t *testing.T) {
	for _, msg := range []string{
		"Done. Preview: https://edit.amelia.example.com/abc/?a=1&b=2",
		"line one\nline two\r\n\ttabbed",
		"]]> <![CDATA[ x ]]>",
		"emoji 🎉 and ünïcödé",
	} {
		var doc struct {
			XMLName xml.Name `xml:"Response"`
			Message []string `xml:"Message"`
		}
		if err := xml.Unmarshal(TwiML(msg), &doc); err != nil {
			t.Fatalf("TwiML(%q) is not well-formed: %v", msg, err)
		}
		if len(doc.Message) != 1 || doc.Message[0] != msg {
			t.Fatalf("TwiML(%q) carried %q", msg, doc.Message)
		}
	}
}

func FuzzTwilio(f *testing.F) {
	f.Add("https://mycompany.com:443/myapp.php?foo=1", "Body", "hi there", "")
	f.Add("http://[::1]:8080/x", "From", "+15550100002", "abc=")
	f.Fuzz(func(t *testing.T, u, name, value, sig string) {
		form := url.Values{name: {value, value + "x"}}
		_ = ValidSignature("token", u, form, sig)
		if vs := urlVariants(u); len(vs) == 0 || vs[0] != u || len(vs) > 2 {
			t.Fatalf("urlVariants(%q) = %q", u, vs)
		}
		_, _ = ParseInbound(url.Values{"MessageSid": {sid}, "From": {"+15550100002"}, "To": {"+15550100001"}, name: {value}})
		var doc struct {
			Message string `xml:"Message"`
		}
		if err := xml.Unmarshal(TwiML(value), &doc); err != nil {
			t.Fatalf("TwiML(%q) not well-formed: %v", value, err)
		}
	})
}
