package httpapi_test

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/router"
)

func init() {
	// The approval pages are documented as text/html strings.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
}

const (
	xssPlan = `1. Delete src/pages/blog/ <script>alert("plan")</script>
2. Remove the "Blog" link & its <img src=x onerror=alert(1)> icon`
)

// planApproval routes a destructive instruction of scott's by email, takes
// its plan job off the queue, and stores the approval its plan result
// creates (as internal/relay does), returning it and its token.
func planApproval(t *testing.T, a *testAPI, msgID, plan string) (*hermes.Approval, string) {
	t.Helper()
	out, err := a.Router.Route(context.Background(), &hermes.Message{
		Channel: hermes.ChannelEmail, ChannelID: "email:" + msgID, From: "scott@example.com", To: "edit@amelia.example.com",
		Subject: "Blog", Text: "Delete the whole blog <b>now</b>", Thread: hermes.ThreadHints{MessageID: msgID},
	})
	if err != nil || out.Status != router.Queued {
		t.Fatalf("Route: %+v, %v", out, err)
	}
	var job hermes.Job
	for _, j := range takeApprovalJobs(t, a) { // other tests' jobs may wait there too
		if j.ID == out.JobID {
			job = j
		}
	}
	if job.Type != hermes.JobPlan {
		t.Fatalf("the instruction was queued as %q, want a plan job", job.Type)
	}
	token, hash := hermes.NewApprovalToken()
	now := a.Clock.Now()
	ap, err := a.Store.PutApproval(context.Background(), &hermes.Approval{
		ID: hermes.ApprovalIDFor(job.ID), TokenHash: hash, SessionID: job.SessionID, ThreadID: job.ThreadID,
		ContainerID: "amelia_site_scott", ClientID: "amelia", ProjectID: "site", UserID: "scott", PlanJobID: job.ID,
		Instruction: job.Instruction, Plan: plan, Reply: job.Reply, CreatedAt: now, ExpiresAt: now.Add(hermes.DefaultApprovalTTL),
	})
	if err != nil {
		t.Fatal(err)
	}
	return ap, token
}

// takeApprovalJob takes the one job on scott's input queue and checks its type.
func takeApprovalJob(t *testing.T, a *testAPI, typ string) hermes.Job {
	t.Helper()
	jobs := takeApprovalJobs(t, a)
	if len(jobs) != 1 || jobs[0].Type != typ {
		t.Fatalf("jobs on the input queue = %+v, want one %s job", jobs, typ)
	}
	return jobs[0]
}

func takeApprovalJobs(t *testing.T, a *testAPI) []hermes.Job {
	t.Helper()
	ds, err := a.Store.Receive(context.Background(), scottInput, 10, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var jobs []hermes.Job
	for _, d := range ds {
		var j hermes.Job
		if err := json.Unmarshal([]byte(d.Body), &j); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
		if err := a.Store.Delete(context.Background(), scottInput, d.Receipt); err != nil {
			t.Fatal(err)
		}
	}
	return jobs
}

// browser is a cookie-keeping client of the approval pages; every exchange
// is checked against the OpenAPI document.
type browser struct {
	a       *testAPI
	cookies map[string]string
}

func newBrowser(a *testAPI) *browser { return &browser{a: a, cookies: map[string]string{}} }

func (b *browser) do(t *testing.T, method, path string, form url.Values, header map[string]string) *response {
	t.Helper()
	h := map[string]string{}
	if len(b.cookies) > 0 {
		var cs []string
		for k, v := range b.cookies {
			cs = append(cs, k+"="+v)
		}
		h["Cookie"] = strings.Join(cs, "; ")
	}
	var body any
	if form != nil {
		body = form.Encode()
		h["Content-Type"] = "application/x-www-form-urlencoded"
	}
	for k, v := range header {
		h[k] = v
	}
	r := b.a.validatedDo(t, request{Method: method, Path: path, Body: body, Header: h})
	for _, c := range r.Cookies() {
		b.cookies[c.Name] = c.Value
	}
	if ct := r.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("%s %s: content type %q", method, path, ct)
	}
	for k, v := range map[string]string{"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s %s: %s %q, want %q", method, path, k, got, v)
		}
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'; style-src 'sha256-") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("%s %s: CSP %q", method, path, csp)
	}
	return r
}

var csrfField = regexp.MustCompile(`<input type="hidden" name="csrf" value="([^"]+)">`)

// open GETs the page and returns the form's CSRF value ("" without a form).
func (b *browser) open(t *testing.T, token string, status int) (*response, string) {
	t.Helper()
	r := b.do(t, "GET", "/approvals/"+token, nil, nil).want(t, status)
	m := csrfField.FindSubmatch(r.Body)
	if m == nil {
		return r, ""
	}
	return r, string(m[1])
}

func (b *browser) post(t *testing.T, token, decision, csrf string, status int) *response {
	t.Helper()
	form := url.Values{"decision": {decision}}
	if csrf != "" {
		form.Set("csrf", csrf)
	}
	return b.do(t, "POST", "/approvals/"+token, form, nil).want(t, status)
}

type countingRunner struct {
	mu    sync.Mutex
	wakes int
}

func (c *countingRunner) Wake(context.Context, *hermes.Container) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wakes++
	return nil
}
func (c *countingRunner) Stop(context.Context, *hermes.Container) error { return nil }

func TestApprovalPageApprove(t *testing.T) {
	for _, base := range []string{"", "/hermes"} {
		t.Run("base="+base, func(t *testing.T) {
			a := newTestAPI(t, withBasePath(base))
			runner := &countingRunner{}
			a.Router.Runner = runner
			ap, token := planApproval(t, a, "blog1@example.com", xssPlan)
			b := newBrowser(a)

			// GET shows the plan and changes nothing, however often.
			var csrf string
			for range 3 {
				var page *response
				page, csrf = b.open(t, token, http.StatusOK)
				body := string(page.Body)
				if csrf == "" || !strings.Contains(body, `id="approve"`) || !strings.Contains(body, `id="reject"`) {
					t.Fatalf("no form on the page:\n%s", body)
				}
				if !strings.Contains(body, html.EscapeString(xssPlan)) || strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
					t.Fatalf("the plan is not escaped:\n%s", body)
				}
				if !strings.Contains(body, "Delete the whole blog &lt;b&gt;now&lt;/b&gt;") {
					t.Errorf("the instruction is missing or unescaped:\n%s", body)
				}
			}
			if got, _ := a.Store.GetApproval(t.Context(), ap.ID); got.Status != hermes.ApprovalPending || got.Version != ap.Version {
				t.Fatalf("GET changed the approval: %+v", got)
			}
			if jobs := takeApprovalJobs(t, a); len(jobs) != 0 {
				t.Fatalf("GET queued jobs: %+v", jobs)
			}
			cookie := b.cookies["hermes_approval_csrf"]
			if cookie != csrf {
				t.Fatalf("the form's CSRF value differs from the cookie")
			}

			page := b.post(t, token, "approve", csrf, http.StatusOK)
			if !strings.Contains(string(page.Body), "Approved — it&#39;s on its way") && !strings.Contains(string(page.Body), "Approved — it's on its way") {
				t.Errorf("approve page:\n%s", page.Body)
			}
			job := takeApprovalJob(t, a, hermes.JobExecute)
			if job.ApprovalID != ap.ID || job.Plan != xssPlan || job.Instruction != ap.Instruction || job.ID != hermes.ExecuteJobID(ap.ID) {
				t.Errorf("execute job = %+v", job)
			}
			if runner.wakes == 0 {
				t.Errorf("the container was not woken")
			}
			got, _ := a.Store.GetApproval(t.Context(), ap.ID)
			if got.Status != hermes.ApprovalApproved || got.DecidedVia != hermes.ViaPage || got.DoneAt == nil {
				t.Errorf("approval = %+v", got)
			}

			// The link works once: another POST, or a GET, says what was decided.
			page = b.post(t, token, "reject", csrf, http.StatusConflict)
			if !strings.Contains(string(page.Body), "This plan was approved already") || !strings.Contains(string(page.Body), "on this page") {
				t.Errorf("reuse page:\n%s", page.Body)
			}
			if r, csrf := b.open(t, token, http.StatusConflict); csrf != "" || !strings.Contains(string(r.Body), "approved") {
				t.Errorf("GET after the decision shows a form or no decision:\n%s", r.Body)
			}
			if jobs := takeApprovalJobs(t, a); len(jobs) != 0 {
				t.Errorf("reuse queued jobs: %+v", jobs)
			}
		})
	}
}

func TestApprovalPageReject(t *testing.T) {
	a := newTestAPI(t)
	ap, token := planApproval(t, a, "blog2@example.com", "1. rm -r blog")
	b := newBrowser(a)
	_, csrf := b.open(t, token, http.StatusOK)
	before, _, _ := a.Store.ListOutbox(t.Context(), "", 1000, "")
	page := b.post(t, token, "reject", csrf, http.StatusOK)
	if !strings.Contains(string(page.Body), "Rejected — nothing was changed") || !strings.Contains(string(page.Body), "by email") {
		t.Errorf("reject page:\n%s", page.Body)
	}
	if jobs := takeApprovalJobs(t, a); len(jobs) != 0 {
		t.Errorf("a rejection queued jobs: %+v", jobs)
	}
	after, _, _ := a.Store.ListOutbox(t.Context(), "", 1000, "")
	var told *hermes.OutboxItem
	for _, it := range after {
		if it.Kind == "rejected" {
			told = it
		}
	}
	if len(after) != len(before)+1 || told == nil || told.To != "scott@example.com" || told.Headers["In-Reply-To"] != "<blog2@example.com>" || !strings.Contains(told.Text, "nothing was changed") {
		t.Errorf("the user was not told by email: %d items (were %d), %+v", len(after), len(before), told)
	}
	if got, _ := a.Store.GetApproval(t.Context(), ap.ID); got.Status != hermes.ApprovalRejected || got.DoneAt == nil {
		t.Errorf("approval = %+v", got)
	}
	page = b.post(t, token, "approve", csrf, http.StatusConflict)
	if !strings.Contains(string(page.Body), "This plan was rejected already") {
		t.Errorf("reuse page:\n%s", page.Body)
	}
	if jobs := takeApprovalJobs(t, a); len(jobs) != 0 {
		t.Errorf("approving a rejected plan queued jobs: %+v", jobs)
	}
}

func TestApprovalPageCSRF(t *testing.T) {
	a := newTestAPI(t)
	ap, token := planApproval(t, a, "blog3@example.com", "1. rm -r blog")
	b := newBrowser(a)
	_, csrf := b.open(t, token, http.StatusOK)
	other, _ := hermes.NewApprovalToken() // well-formed (43 base64url characters), not the cookie's value

	cases := []struct {
		name   string
		b      *browser
		form   url.Values
		header map[string]string
	}{
		{"no csrf field", b, url.Values{"decision": {"approve"}}, nil},
		{"wrong csrf field", b, url.Values{"decision": {"approve"}, "csrf": {other}}, nil},
		{"two csrf fields", b, url.Values{"decision": {"approve"}, "csrf": {csrf, other}}, nil},
		{"no cookie", newBrowser(a), url.Values{"decision": {"approve"}, "csrf": {csrf}}, nil},
		{"cross-origin", b, url.Values{"decision": {"approve"}, "csrf": {csrf}}, map[string]string{"Origin": "https://evil.example"}},
		{"cross-site fetch", b, url.Values{"decision": {"approve"}, "csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"same-site fetch", b, url.Values{"decision": {"approve"}, "csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "same-site"}},
	}
	for _, tc := range cases {
		r := tc.b.do(t, "POST", "/approvals/"+token, tc.form, tc.header)
		if r.StatusCode != http.StatusForbidden || !strings.Contains(string(r.Body), "could not be verified") {
			t.Errorf("%s: %d\n%s", tc.name, r.StatusCode, r.Body)
		}
	}
	if got, _ := a.Store.GetApproval(t.Context(), ap.ID); got.Status != hermes.ApprovalPending {
		t.Fatalf("a refused POST changed the approval: %s", got.Status)
	}
	if jobs := takeApprovalJobs(t, a); len(jobs) != 0 {
		t.Fatalf("a refused POST queued jobs: %+v", jobs)
	}
	// Origin null (Referrer-Policy no-referrer) and this host's own origin pass.
	r := b.do(t, "POST", "/approvals/"+token, url.Values{"decision": {"approve"}, "csrf": {csrf}}, map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"})
	if r.StatusCode != http.StatusOK {
		t.Errorf("same-origin POST: %d\n%s", r.StatusCode, r.Body)
	}
}

func TestApprovalPageBadInput(t *testing.T) {
	a := newTestAPI(t)
	ap, token := planApproval(t, a, "blog4@example.com", "1. rm -r blog")
	b := newBrowser(a)
	_, csrf := b.open(t, token, http.StatusOK)

	for _, d := range [][]string{{"yes"}, {""}, {"approve", "reject"}, nil, {"APPROVE"}} {
		form := url.Values{"csrf": {csrf}}
		if d != nil {
			form["decision"] = d
		}
		if r := b.do(t, "POST", "/approvals/"+token, form, nil); r.StatusCode != http.StatusBadRequest {
			t.Errorf("decision %q: %d", d, r.StatusCode)
		}
	}
	// Not a form; a form over the limit.
	if r := b.do(t, "POST", "/approvals/"+token, nil, map[string]string{"Content-Type": "application/json"}); r.StatusCode != http.StatusBadRequest {
		t.Errorf("JSON body: %d", r.StatusCode)
	}
	big := url.Values{"decision": {"approve"}, "csrf": {csrf}, "pad": {strings.Repeat("x", 5000)}}
	if r := b.do(t, "POST", "/approvals/"+token, big, nil); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("5 KB form: %d", r.StatusCode)
	}
	// Unknown and malformed tokens.
	unknown, _ := hermes.NewApprovalToken()
	for _, tok := range []string{unknown, "short", strings.Repeat("A", 43) + "x", "%2e%2e", token[:42] + "B"} {
		r := b.do(t, "GET", "/approvals/"+tok, nil, nil)
		if r.StatusCode != http.StatusNotFound || !strings.Contains(string(r.Body), "This approval link is not valid") {
			t.Errorf("GET %q: %d", tok, r.StatusCode)
		}
	}
	if r := b.post(t, unknown, "approve", csrf, http.StatusNotFound); !strings.Contains(string(r.Body), "not valid") {
		t.Errorf("POST to an unknown token:\n%s", r.Body)
	}
	if got, _ := a.Store.GetApproval(t.Context(), ap.ID); got.Status != hermes.ApprovalPending {
		t.Errorf("bad input changed the approval: %s", got.Status)
	}
}

func TestApprovalPageExpired(t *testing.T) {
	a := newTestAPI(t)
	ap, token := planApproval(t, a, "blog5@example.com", "1. rm -r blog")
	b := newBrowser(a)
	_, csrf := b.open(t, token, http.StatusOK)
	a.Clock.Advance(hermes.DefaultApprovalTTL)
	if r, form := b.open(t, token, http.StatusGone); form != "" || !strings.Contains(string(r.Body), "This plan has expired") {
		t.Errorf("expired GET:\n%s", r.Body)
	}
	if r := b.post(t, token, "approve", csrf, http.StatusGone); !strings.Contains(string(r.Body), "expired") {
		t.Errorf("expired POST:\n%s", r.Body)
	}
	if jobs := takeApprovalJobs(t, a); len(jobs) != 0 {
		t.Errorf("an expired plan queued jobs: %+v", jobs)
	}
	if got, _ := a.Store.GetApproval(t.Context(), ap.ID); got.Status != hermes.ApprovalPending || got.DecidedAt != nil {
		t.Errorf("expired approval changed: %+v", got)
	}
}

func TestApprovalPageRateLimit(t *testing.T) {
	a := newTestAPI(t)
	_, token := planApproval(t, a, "blog6@example.com", "1. rm -r blog")
	b := newBrowser(a)
	var last *response
	for range 61 {
		last = b.do(t, "GET", "/approvals/"+token, nil, nil)
	}
	if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
		t.Errorf("61st request in a minute: %d", last.StatusCode)
	}
	a.Clock.Advance(time.Minute)
	b.open(t, token, http.StatusOK)
}

// The access log never shows a token.
func TestApprovalTokenNotLogged(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	a := newTestAPI(t, withLogTo(func(p []byte) { mu.Lock(); logs.Write(p); mu.Unlock() }))
	_, token := planApproval(t, a, "blog7@example.com", "1. rm -r blog")
	b := newBrowser(a)
	_, csrf := b.open(t, token, http.StatusOK)
	b.post(t, token, "approve", csrf, http.StatusOK)
	b.post(t, token, "approve", csrf, http.StatusConflict)
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(logs.String(), token) || strings.Contains(logs.String(), csrf) {
		t.Errorf("a token or CSRF value is in the logs:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "/approvals/[redacted]") {
		t.Errorf("no redacted access log line:\n%s", logs.String())
	}
}

// exerciseApprovalPages sends one successful GET and POST of the approval
// page (for TestOpenAPIEveryOperation's coverage).
func exerciseApprovalPages(t *testing.T, a *testAPI) {
	t.Helper()
	_, token := planApproval(t, a, "every-op-plan@example.com", "1. rm -r blog")
	b := newBrowser(a)
	_, csrf := b.open(t, token, http.StatusOK)
	b.post(t, token, "approve", csrf, http.StatusOK)
	takeApprovalJobs(t, a)
}

// The API channel: a destructive message is queued as a plan; "reject" on
// its thread answers it (202 answered), "approve" after that is answered
// too, and "approve" on a thread without a plan is an instruction.
func TestApprovalRepliesOverTheAPI(t *testing.T) {
	a := newTestAPI(t)
	send := func(text, threadID, msgID string) (out struct {
		ThreadID, SessionID, JobID, Status, Reason string
	}) {
		t.Helper()
		body := map[string]any{"clientId": "amelia", "projectId": "site", "userId": "scott", "text": text, "messageId": msgID}
		if threadID != "" {
			body["threadId"] = threadID
		}
		a.do(t, request{Method: "POST", Path: "/api/messages", Key: ameliaKey, Body: body}).want(t, http.StatusAccepted).JSON(t, &out)
		return out
	}
	planned := send("Delete the whole blog", "", "api-1")
	job := takeApprovalJob(t, a, hermes.JobPlan)
	if planned.Status != "queued" || job.ID != planned.JobID {
		t.Fatalf("plan message: %+v", planned)
	}
	_, hash := hermes.NewApprovalToken()
	now := a.Clock.Now()
	if _, err := a.Store.PutApproval(t.Context(), &hermes.Approval{ID: hermes.ApprovalIDFor(job.ID), TokenHash: hash,
		SessionID: job.SessionID, ThreadID: job.ThreadID, ContainerID: "amelia_site_scott", ClientID: "amelia", ProjectID: "site",
		UserID: "scott", PlanJobID: job.ID, Instruction: job.Instruction, Plan: "rm -r blog", Reply: job.Reply,
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if out := send("reject", planned.ThreadID, "api-2"); out.Status != "answered" || out.Reason != "rejected" || out.JobID != "" {
		t.Errorf("reject: %+v", out)
	}
	if out := send("approve", planned.ThreadID, "api-3"); out.Status != "answered" || out.Reason != "already-decided" {
		t.Errorf("approve after reject: %+v", out)
	}
	if jobs := takeApprovalJobs(t, a); len(jobs) != 0 {
		t.Errorf("answers queued jobs: %+v", jobs)
	}
	other := send("Make the header blue", "", "api-4")
	takeApprovalJobs(t, a)
	if out := send("approve", other.ThreadID, "api-5"); out.Status != "queued" {
		t.Errorf("approve without a plan: %+v", out)
	} else if j := takeApprovalJob(t, a, hermes.JobInstruction); j.Instruction != "approve" {
		t.Errorf("job %+v", j)
	}
}
