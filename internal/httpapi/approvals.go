package httpapi

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/router"
)

// Approval pages (SPEC §7): GET /approvals/{token} shows a plan with
// Approve and Reject buttons; the buttons POST to the same URL. Public: the
// token (256 random bits; only its SHA-256 is stored) is the credential.
//
//   - A GET never changes anything (mail scanners prefetch links).
//   - CSRF: double submit. The GET sets a random cookie (HttpOnly,
//     SameSite=Strict, Path {base}/approvals/, Secure behind https) and
//     puts the same value in a hidden field; the POST must carry both,
//     equal (compared in constant time). A POST whose Origin is another
//     origin, or whose Sec-Fetch-Site is cross-site or same-site, is
//     refused too. (Origin "null" is accepted: with Referrer-Policy
//     no-referrer, browsers send it for the page's own form.)
//   - Forms are at most 4 KiB of application/x-www-form-urlencoded;
//     each client address gets at most 60 requests a minute.
//   - Every answer is an HTML page (never a problem document), with
//     Cache-Control: no-store, X-Frame-Options: DENY, Referrer-Policy:
//     no-referrer and a Content-Security-Policy that allows nothing but the
//     page's own style and forms to itself.
//   - Tokens never reach a log: the access log redacts the path.

const (
	approvalCSRFCookie = "hermes_approval_csrf"
	approvalCSRFField  = "csrf"
	maxApprovalForm    = 4 << 10
	approvalRate       = 60 // requests per client address and minute
)

// approvalCSS is the pages' only style; the Content-Security-Policy allows
// it by hash.
const approvalCSS = `body{margin:0;padding:24px 16px;font:16px/1.5 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;background:#f6f6f4}
main{max-width:720px;margin:0 auto;background:#fff;border:1px solid #ddd;border-radius:8px;padding:24px}
h1{font-size:22px;margin:0 0 16px}h2{font-size:16px;margin:20px 0 6px;color:#555}
.text{white-space:pre-wrap;overflow-wrap:anywhere;margin:0;padding:12px;background:#f3f3f0;border-radius:6px;font:14px/1.5 ui-monospace,Menlo,Consolas,monospace}
.buttons{display:flex;gap:12px;margin-top:24px}
button{font:inherit;padding:10px 22px;border-radius:6px;border:1px solid #999;background:#fff;cursor:pointer}
button.approve{background:#1a7f37;border-color:#1a7f37;color:#fff}
.note{color:#666;font-size:14px}`

var approvalCSP = "default-src 'none'; style-src 'sha256-" + func() string {
	sum := sha256.Sum256([]byte(approvalCSS))
	return base64.StdEncoding.EncodeToString(sum[:])
}() + "'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// approvalPage is what the page template shows.
type approvalPage struct {
	Title       string
	Message     string // the page's one-line message
	Detail      string
	Project     string
	Instruction string
	Plan        string
	Expires     string // when the link stops working (UTC)
	CSRF        string // the form's token; "" shows no form
	RetryOnly   bool   // the form offers approve only (a decision to carry out again)
}

var approvalTemplate = template.Must(template.New("approval").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{{.Title}}</title>
<style>` + approvalCSS + `</style>
</head>
<body>
<main>
<h1 id="title">{{.Title}}</h1>
<p id="message">{{.Message}}</p>
{{- with .Detail}}
<p class="note" id="detail">{{.}}</p>
{{- end}}
{{- with .Project}}
<p class="note">Website: {{.}}</p>
{{- end}}
{{- with .Instruction}}
<h2>Your request</h2>
<p class="text" id="instruction">{{.}}</p>
{{- end}}
{{- with .Plan}}
<h2>The plan</h2>
<p class="text" id="plan">{{.}}</p>
{{- end}}
{{- if .CSRF}}
<form method="post">
<input type="hidden" name="` + approvalCSRFField + `" value="{{.CSRF}}">
<div class="buttons">
<button type="submit" name="decision" value="approve" class="approve" id="approve">{{if .RetryOnly}}Try again{{else}}Approve{{end}}</button>
{{- if not .RetryOnly}}
<button type="submit" name="decision" value="reject" class="reject" id="reject">Reject</button>
{{- end}}
</div>
</form>
{{- with .Expires}}
<p class="note">Nothing changes until you approve. This link works until {{.}}. You can also reply “approve” or “reject” to the message that brought you here.</p>
{{- end}}
{{- end}}
</main>
</body>
</html>
`))

// writeApprovalPage answers with the page.
func (s *Server) writeApprovalPage(w http.ResponseWriter, r *http.Request, status int, p approvalPage) {
	var b bytes.Buffer
	if err := approvalTemplate.Execute(&b, p); err != nil {
		s.Log.ErrorContext(r.Context(), "approval page", "err", err)
		status, b = http.StatusInternalServerError, *bytes.NewBufferString("<!DOCTYPE html><title>Error</title><p>Something went wrong.</p>\n")
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", approvalCSP)
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b.Bytes())
	}
}

var (
	pageNotFound = approvalPage{Title: "Link not found",
		Message: "This approval link is not valid. Check that you opened the whole link from your message; links of older plans stop working once a newer one replaces them."}
	pageExpired = approvalPage{Title: "This plan has expired",
		Message: "The link to approve this plan has expired and nothing was changed. Send your request again to get a new plan."}
	pageForbidden = approvalPage{Title: "Please use the page's buttons",
		Message: "Your decision could not be verified (the form's security check failed, or it came from another site). Nothing was changed. Open the link from your message again and use the buttons there."}
	pageBadRequest = approvalPage{Title: "Unrecognised decision",
		Message: "The form did not say whether to approve or reject the plan. Nothing was changed. Open the link from your message again and use the buttons there."}
	pageTooLarge = approvalPage{Title: "Form too large",
		Message: "The form was larger than an approval needs. Nothing was changed."}
	pageTooMany = approvalPage{Title: "Too many requests",
		Message: "Too many requests came from your address. Wait a minute, then open the link again."}
	pageUnavailable = approvalPage{Title: "Please try again",
		Message: "Your decision could not be completed just now. Please try again in a moment."}
)

// approvalToken returns the path's token when it has the form of one.
func approvalToken(r *http.Request) (string, bool) {
	tok := r.PathValue("token")
	return tok, hermes.ValidApprovalToken(tok)
}

// lookupApproval finds the approval of the request's token, answering the
// page itself (and returning nil) when there is none or the store failed.
func (s *Server) lookupApproval(w http.ResponseWriter, r *http.Request) *hermes.Approval {
	tok, ok := approvalToken(r)
	if !ok {
		s.writeApprovalPage(w, r, http.StatusNotFound, pageNotFound)
		return nil
	}
	a, err := s.Store.ApprovalByTokenHash(r.Context(), hermes.HashApprovalToken(tok))
	switch {
	case hermes.IsKind(err, hermes.NotFound):
		s.writeApprovalPage(w, r, http.StatusNotFound, pageNotFound)
		return nil
	case err != nil:
		s.Log.ErrorContext(r.Context(), "approval lookup failed", "err", err)
		s.writeApprovalPage(w, r, http.StatusServiceUnavailable, pageUnavailable)
		return nil
	}
	return a
}

// handleApprovalPage shows the plan with its buttons. It never changes
// anything: mail scanners fetch links.
func (s *Server) handleApprovalPage(w http.ResponseWriter, r *http.Request) {
	if !s.approvalLimit.allow(clientAddr(r), s.Clock.Now()) {
		w.Header().Set("Retry-After", "60")
		s.writeApprovalPage(w, r, http.StatusTooManyRequests, pageTooMany)
		return
	}
	a := s.lookupApproval(w, r)
	if a == nil {
		return
	}
	now := s.Clock.Now()
	switch {
	case a.Expired(now):
		s.writeApprovalPage(w, r, http.StatusGone, s.withPlan(r, pageExpired, a))
		return
	case a.Decided() && a.DoneAt != nil:
		s.writeApprovalPage(w, r, http.StatusConflict, s.decidedPage(r, a))
		return
	}
	page := s.withPlan(r, approvalPage{Title: "Approve this plan?",
		Message: "Your editor proposes the plan below for your request. Nothing has been changed yet."}, a)
	page.Expires = a.ExpiresAt.UTC().Format("Monday 2 January 2006, 15:04 UTC")
	if a.Decided() { // decided, not carried out: offer to finish it
		page.Title = "Your decision is recorded"
		page.Message = "It could not be completed yet. Press the button to try again."
		page.RetryOnly, page.Expires = true, ""
		if a.Status == hermes.ApprovalRejected {
			page.Message = "You rejected this plan; nothing was changed. Press the button to finish."
		}
	}
	page.CSRF = s.csrfCookie(w, r)
	s.writeApprovalPage(w, r, http.StatusOK, page)
}

// handleApprovalDecision records the decision of the page's form.
func (s *Server) handleApprovalDecision(w http.ResponseWriter, r *http.Request) {
	if !s.approvalLimit.allow(clientAddr(r), s.Clock.Now()) {
		w.Header().Set("Retry-After", "60")
		s.writeApprovalPage(w, r, http.StatusTooManyRequests, pageTooMany)
		return
	}
	if !s.sameOrigin(r) {
		s.writeApprovalPage(w, r, http.StatusForbidden, pageForbidden)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		s.writeApprovalPage(w, r, http.StatusBadRequest, pageBadRequest)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxApprovalForm)
	if err := r.ParseForm(); err != nil {
		if _, tooLarge := err.(*http.MaxBytesError); tooLarge {
			s.writeApprovalPage(w, r, http.StatusRequestEntityTooLarge, pageTooLarge)
			return
		}
		s.writeApprovalPage(w, r, http.StatusBadRequest, pageBadRequest)
		return
	}
	if !validCSRF(r) {
		s.writeApprovalPage(w, r, http.StatusForbidden, pageForbidden)
		return
	}
	var approve bool
	switch d := r.PostForm["decision"]; {
	case len(d) == 1 && d[0] == "approve":
		approve = true
	case len(d) == 1 && d[0] == "reject":
	default:
		s.writeApprovalPage(w, r, http.StatusBadRequest, pageBadRequest)
		return
	}
	a := s.lookupApproval(w, r)
	if a == nil {
		return
	}
	d, err := s.Router.Decide(r.Context(), a, approve)
	if err != nil {
		if hermes.IsKind(err, hermes.Conflict) {
			s.writeApprovalPage(w, r, http.StatusConflict, approvalPage{Title: "This plan cannot be carried out",
				Message: hermes.ErrorMessage(err) + "."})
			return
		}
		s.Log.ErrorContext(r.Context(), "approval decision failed", "approval_id", a.ID, "err", err)
		s.writeApprovalPage(w, r, http.StatusServiceUnavailable, pageUnavailable)
		return
	}
	switch d.Outcome {
	case router.DecisionExpired:
		s.writeApprovalPage(w, r, http.StatusGone, s.withPlan(r, pageExpired, d.Approval))
	case router.DecisionAlready:
		s.writeApprovalPage(w, r, http.StatusConflict, s.decidedPage(r, d.Approval))
	default:
		page := approvalPage{Title: "Approved — it's on its way",
			Message: "Your editor is applying the plan now. You'll get the result " + channelPhrase(a.Reply.Channel) + "."}
		if !approve {
			page = approvalPage{Title: "Rejected — nothing was changed",
				Message: "The plan is rejected and nothing was changed. Send a new request whenever you like."}
			if a.Reply.Channel != hermes.ChannelAPI {
				page.Detail = "We've let you know " + channelPhrase(a.Reply.Channel) + " too."
			}
		}
		s.writeApprovalPage(w, r, http.StatusOK, s.withPlan(r, page, d.Approval))
	}
}

// withPlan adds the approval's request and plan to a page.
func (s *Server) withPlan(r *http.Request, p approvalPage, a *hermes.Approval) approvalPage {
	p.Instruction, p.Plan = a.Instruction, a.Plan
	p.Project = a.ProjectID
	if proj, err := s.Store.GetProject(r.Context(), a.ClientID, a.ProjectID); err == nil && proj.Name != "" {
		p.Project = proj.Name
	}
	return p
}

// decidedPage says what was decided, when and how.
func (s *Server) decidedPage(r *http.Request, a *hermes.Approval) approvalPage {
	verb := "approved"
	if a.Status == hermes.ApprovalRejected {
		verb = "rejected"
	}
	how := "on this page"
	if a.DecidedVia == hermes.ViaReply {
		how = "by a reply to the message"
	}
	when := ""
	if a.DecidedAt != nil {
		when = " on " + a.DecidedAt.UTC().Format("2 January 2006 at 15:04 UTC")
	}
	p := approvalPage{Title: "This plan was " + verb + " already",
		Message: "This plan was " + verb + when + ", " + how + ". The link can be used only once."}
	if verb == "approved" {
		p.Detail = "Your editor applies it (or has applied it); you'll get the result " + channelPhrase(a.Reply.Channel) + "."
	} else {
		p.Detail = "Nothing was changed. Send a new request whenever you like."
	}
	return s.withPlan(r, p, a)
}

func channelPhrase(channel string) string {
	switch channel {
	case hermes.ChannelEmail:
		return "by email"
	case hermes.ChannelSMS:
		return "by text message"
	case hermes.ChannelChat:
		return "in your chat thread"
	}
	return "in your session"
}

// csrfCookie returns the browser's CSRF value, setting a new cookie when it
// has none (a valid one is kept, so that pages open in two tabs both work).
func (s *Server) csrfCookie(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(approvalCSRFCookie); err == nil && validCSRFValue(c.Value) {
		return c.Value
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{
		Name: approvalCSRFCookie, Value: v, Path: s.BasePath + "/approvals/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secureCookies(r),
	})
	return v
}

func validCSRFValue(v string) bool {
	b, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil && len(b) == 32
}

// validCSRF reports whether the form's CSRF field equals the cookie.
func validCSRF(r *http.Request) bool {
	c, err := r.Cookie(approvalCSRFCookie)
	field := r.PostForm[approvalCSRFField]
	if err != nil || len(field) != 1 || !validCSRFValue(c.Value) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(field[0])) == 1
}

// secureCookies: behind https (the public URL, or TLS here) cookies are
// Secure.
func (s *Server) secureCookies(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(s.PublicURL, "https://")
}

// sameOrigin refuses requests that a browser marks as coming from another
// site: Sec-Fetch-Site other than same-origin or none, or an Origin that is
// neither the public URL's nor this host's. Origin "null" passes (see
// above); the CSRF token decides then.
func (s *Server) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		return true
	}
	o, err := url.Parse(origin)
	if err != nil || o.Host == "" {
		return false
	}
	if p, err := url.Parse(s.PublicURL); err == nil && s.PublicURL != "" && strings.EqualFold(o.Scheme, p.Scheme) && strings.EqualFold(o.Host, p.Host) {
		return true
	}
	return strings.EqualFold(o.Host, r.Host)
}

// clientAddr is the request's client IP address.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// rateLimiter allows each key a number of requests per minute (fixed
// windows).
type rateLimiter struct {
	mu     sync.Mutex
	window time.Time
	counts map[string]int
}

func (l *rateLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := now.Truncate(time.Minute); !w.Equal(l.window) || l.counts == nil {
		l.window, l.counts = w, map[string]int{}
	}
	l.counts[key]++
	return l.counts[key] <= approvalRate
}
