package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/webordinary/hermes/internal/httpapi"
)

// The OpenAPI document, loaded once; every exchange of the tests (through
// (*testAPI).do) is checked against it by checkExchange.
var (
	apiDoc    *openapi3.T
	apiRouter routers.Router
	apiDocErr error
)

func init() {
	// POST /inbound/email takes SES notifications as text/json too.
	openapi3filter.RegisterBodyDecoder("text/json", openapi3filter.JSONBodyDecoder)
	// GET /api/sessions/{sessionId}/events is a text stream.
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
	apiDoc, apiRouter, apiDocErr = loadOpenAPI()
	exchangeValidator = func(t *testing.T, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
		t.Helper()
		for _, err := range checkExchange(req, reqBody, resp, respBody) {
			t.Errorf("OpenAPI: %s %s → %d: %v", req.Method, req.URL.RequestURI(), resp.StatusCode, err)
		}
	}
}

func loadOpenAPI() (*openapi3.T, routers.Router, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(httpapi.OpenAPI())
	if err != nil {
		return nil, nil, fmt.Errorf("loading: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, nil, fmt.Errorf("validating: %w", err)
	}
	// The legacy router works with 3.1 documents and needs no gorilla/mux;
	// the document has no servers, so it routes on the bare path.
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("router: %w", err)
	}
	return doc, router, nil
}

// filterOptions: every response status must be documented; requests that
// need bearer credentials must carry some (which ones is the server's
// business); a body sent where none is documented is a mismatch.
// openapi3filter validates 3.1 documents with JSON Schema 2020-12 on its own
// (it adds openapi3.EnableJSONSchema2020 when the document is 3.1).
var filterOptions = &openapi3filter.Options{
	IncludeResponseStatus:             true,
	RejectWhenRequestBodyNotSpecified: true,
	MultiError:                        true,
	AuthenticationFunc: func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
		if in.SecurityScheme == nil || in.SecurityScheme.Type != "http" || !strings.EqualFold(in.SecurityScheme.Scheme, "bearer") {
			return in.NewError(fmt.Errorf("unexpected security scheme %q", in.SecuritySchemeName))
		}
		scheme, cred, ok := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(cred) == "" {
			return in.NewError(errors.New("no Authorization: Bearer credentials"))
		}
		return nil
	},
}

// coverage records, per test, the operations answered and their statuses.
var coverage = struct {
	sync.Mutex
	seen map[string]map[string]bool // test name → "GET /path 200"
}{seen: map[string]map[string]bool{}}

func recordCoverage(testName, method, path string, status int) {
	coverage.Lock()
	defer coverage.Unlock()
	if coverage.seen[testName] == nil {
		coverage.seen[testName] = map[string]bool{}
	}
	coverage.seen[testName][fmt.Sprintf("%s %s %d", method, path, status)] = true
}

// findRoute routes the request's path, stripping a base path: it tries the
// path, then the path without its first segment, and so on, since the
// document's paths have no prefix and the validator does not know the base
// path of the test API. It routes on the escaped path, as the server's mux
// does (an encoded slash stays inside its segment).
func findRoute(req *http.Request) (*routers.Route, map[string]string, string, error) {
	p := req.URL.EscapedPath()
	var firstErr error
	for {
		r := req.Clone(context.Background())
		r.URL.Path, r.URL.RawPath = p, ""
		route, params, err := apiRouter.FindRoute(r)
		if err == nil && slices.Contains(slices.Collect(maps.Values(params)), "") {
			// The legacy router lets a trailing {param} match nothing
			// (PUT /api/clients matches PUT /api/clients/{clientId});
			// the server's mux does not.
			err = routers.ErrPathNotFound
		}
		if err == nil {
			return route, params, p, nil
		}
		if firstErr == nil || errors.Is(err, routers.ErrMethodNotAllowed) {
			firstErr = err // "method not allowed" under a prefix is the more telling error
		}
		i := strings.IndexByte(p[1:], '/')
		if i < 0 {
			return nil, nil, "", firstErr
		}
		p = p[i+1:]
	}
}

// isHTMLPage reports an HTML page: the approval pages answer bad input
// with one, as the API does with a problem.
func isHTMLPage(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == "text/html"
}

func isProblem(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == "application/problem+json"
}

// checkExchange checks one exchange against the document:
//
//   - the route must be documented, unless the server answered the mux's own
//     404/405 problem (a test probing a path or method that has no route);
//   - the response must match: status documented, content type, headers and
//     body schema;
//   - the request must match too, unless it was answered 4xx with a problem:
//     tests send deliberately bad input (malformed ids, bodies, missing
//     credentials), and the server's answer to those is what the document
//     describes. A request answered 2xx must be a valid one.
func checkExchange(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) []error {
	if apiDocErr != nil {
		return []error{fmt.Errorf("the document is unusable: %w", apiDocErr)}
	}
	if noRoute(resp, respBody) {
		// The mux's answer for a path or method without a route (also outside
		// the base path), which the document describes in general terms only.
		// TestOpenAPIDocument checks that documented routes never get it.
		if err := checkProblemBody(respBody); err != nil {
			return []error{fmt.Errorf("no-route problem: %w", err)}
		}
		if resp.StatusCode == http.StatusMethodNotAllowed && len(resp.Header.Values("Allow")) == 0 {
			return []error{errors.New("405 without an Allow header")}
		}
		return nil
	}
	route, params, path, err := findRoute(req)
	if err != nil {
		return []error{fmt.Errorf("the route is not documented (%v)", err)}
	}

	r := req.Clone(context.Background())
	r.URL.Path, r.URL.RawPath = path, ""
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(reqBody)), int64(len(reqBody))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(reqBody)), nil }
	if len(reqBody) == 0 {
		r.Body = http.NoBody
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: filterOptions}

	var errs []error
	badInput := resp.StatusCode >= 400 && resp.StatusCode < 500 && (isProblem(resp.Header) || isHTMLPage(resp.Header))
	if !badInput {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			errs = append(errs, fmt.Errorf("request: %w", err))
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(respBody)),
		Options:                filterOptions,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		errs = append(errs, fmt.Errorf("response: %w", err))
	}
	if isProblem(resp.Header) {
		var p httpapi.Problem
		if err := json.Unmarshal(respBody, &p); err == nil && p.Status != resp.StatusCode {
			errs = append(errs, fmt.Errorf("problem status %d differs from the HTTP status", p.Status))
		}
	}
	return errs
}

// noRoute reports whether the response is the mux's problem for a path
// that has no route (404) or a method the path does not have (405).
func noRoute(resp *http.Response, body []byte) bool {
	if !isProblem(resp.Header) {
		return false
	}
	var p httpapi.Problem
	if json.Unmarshal(body, &p) != nil {
		return false
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return strings.HasPrefix(p.Detail, "no route for ")
	case http.StatusMethodNotAllowed:
		return strings.HasPrefix(p.Detail, "method ") && strings.HasSuffix(p.Detail, " is not allowed here")
	}
	return false
}

func checkProblemBody(body []byte) error {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	return apiDoc.Components.Schemas["Problem"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020())
}

// validatedDo sends req like a.do and records the documented operation it
// reached for the coverage checks.
func (a *testAPI) validatedDo(t *testing.T, req request) *response {
	t.Helper()
	resp := a.do(t, req)
	if route, _, _, err := findRoute(resp.Request); err == nil {
		recordCoverage(t.Name(), route.Method, route.Path, resp.StatusCode)
	}
	return resp
}

// operation is one operation of the document.
type operation struct{ Method, Path string }

func (o operation) String() string { return o.Method + " " + o.Path }

func docOperations(t *testing.T) []operation {
	t.Helper()
	if apiDocErr != nil {
		t.Fatalf("OpenAPI document: %v", apiDocErr)
	}
	var ops []operation
	for _, path := range apiDoc.Paths.InMatchingOrder() {
		for method := range apiDoc.Paths.Value(path).Operations() {
			ops = append(ops, operation{method, path})
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].String() < ops[j].String() })
	return ops
}

// probePath fills a documented path's parameters with well-formed ids of
// things that do not exist.
func probePath(path string) string {
	return strings.NewReplacer(
		"{clientId}", "nosuch", "{projectId}", "nosuch", "{userId}", "nosuch",
		"{sessionId}", strings.Repeat("a", 26), "{containerId}", "nosuch_nosuch_nosuch",
	).Replace(path)
}

// unmatched reports whether the response is the mux's answer for a path or
// method that has no route.
func unmatched(t *testing.T, r *response) bool {
	t.Helper()
	return noRoute(r.Response, r.Body)
}

var probeMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch}

// TestOpenAPIDocument checks that the document is valid and that its
// operations are exactly the routes the server serves, by probing the real
// handler (the route list itself is not repeated here): every documented
// operation reaches a handler rather than the mux's no-route problem; no
// other method on a documented path is served (a 405's Allow lists exactly
// the documented methods); and neither the neighbours of documented paths
// nor the routes SPEC.md names that the document leaves out are served.
func TestOpenAPIDocument(t *testing.T) {
	ops := docOperations(t)
	if apiDoc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", apiDoc.OpenAPI)
	}
	a := newTestAPI(t)

	documented := map[string][]string{} // path → methods
	for _, op := range ops {
		documented[op.Path] = append(documented[op.Path], op.Method)
		r := a.do(t, request{Method: op.Method, Path: probePath(op.Path), Key: adminKey})
		if unmatched(t, r) {
			t.Errorf("%s is documented but not served: %d %s", op, r.StatusCode, r.Body)
		}
	}

	// Conversely, no other method on a documented path is served, nor any
	// method on the paths next to the documented ones (each parent, and a
	// child of each) or on the routes SPEC.md names that the document does
	// not describe. The mux answers those 404 or 405; a 405's Allow lists
	// the documented methods.
	candidates := map[string]bool{
		"/": true, "/api/messages": true, "/api/outbox": true, "/api/containers": true,
		"/api/dead-jobs": true, "/api/jobs/dead": true, "/api/sessions/{sessionId}/events": true,
		"/inbound/email": true, "/inbound/sms/twilio": true, "/inbound/chat/slack": true,
		"/preview": true, "/approve": true,
	}
	for path := range documented {
		candidates[path] = true
		candidates[path+"/extra"] = true
		for p := path; strings.Count(p, "/") > 1; {
			p = p[:strings.LastIndexByte(p, '/')]
			candidates[p] = true
		}
	}
	for path := range candidates {
		concrete := probePath(path)
		for _, m := range probeMethods {
			probe, _ := http.NewRequest(m, "http://hermes.test"+concrete, nil)
			if _, _, _, err := findRoute(probe); err == nil {
				continue // a documented operation (such as /api/clients/extra): probed above
			}
			r := a.do(t, request{Method: m, Path: concrete, Key: adminKey})
			if !unmatched(t, r) {
				t.Errorf("%s %s is served but not documented: %d %s", m, concrete, r.StatusCode, r.Body)
				continue
			}
			if r.StatusCode == http.StatusMethodNotAllowed {
				allow := r.Header.Values("Allow")
				slices.Sort(allow)
				var want []string // the documented methods of the path
				for _, pm := range probeMethods {
					p2, _ := http.NewRequest(pm, "http://hermes.test"+concrete, nil)
					if _, _, _, err := findRoute(p2); err == nil {
						want = append(want, pm)
					}
				}
				slices.Sort(want)
				if !slices.Equal(allow, want) {
					t.Errorf("%s %s: Allow %v, but the document has %v", m, concrete, allow, want)
				}
			}
		}
	}
}

// TestOpenAPIDocumentServed checks GET /openapi.json: the embedded document, as
// application/json, under the base path too.
func TestOpenAPIDocumentServed(t *testing.T) {
	for _, base := range []string{"", "/hermes"} {
		a := newTestAPI(t, withBasePath(base))
		r := a.do(t, request{Method: "GET", Path: "/openapi.json"}).want(t, http.StatusOK)
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("base %q: content type %q, want application/json", base, ct)
		}
		if !bytes.Equal(r.Body, httpapi.OpenAPI()) {
			t.Errorf("base %q: GET /openapi.json differs from the embedded document", base)
		}
		if !json.Valid(r.Body) {
			t.Errorf("base %q: the document is not valid JSON", base)
		}
	}
}

// TestOpenAPIEveryOperation sends a valid request to every documented
// operation (under a base path), so that each documented success response
// is checked against what the server sends.
func TestOpenAPIEveryOperation(t *testing.T) {
	ops := docOperations(t)
	const public = "https://hermes.example.com/hermes"
	previews := t.TempDir()
	a := newTestAPI(t, withBasePath("/hermes"), withPreviews(previews), withInbound(func(in *httpapi.Inbound) {
		allChannels(in)
		in.PublicURL = public
	}))
	do := func(method, path, key string, body any, status int) *response {
		t.Helper()
		return a.validatedDo(t, request{Method: method, Path: path, Key: key, Body: body}).want(t, status)
	}

	// Public routes.
	do("GET", "/health", "", nil, http.StatusOK)
	do("GET", "/health/live", "", nil, http.StatusOK)
	do("GET", "/health/ready", "", nil, http.StatusOK)
	a.Server.SetReady(false)
	do("GET", "/health/ready", "", nil, http.StatusServiceUnavailable)
	a.Server.SetReady(true)
	if r := do("GET", "/metrics", "", nil, http.StatusOK); !strings.Contains(string(r.Body), "# TYPE") {
		t.Errorf("GET /metrics: no Prometheus text: %.200s", r.Body)
	}
	do("GET", "/openapi.json", "", nil, http.StatusOK)
	publishPreview(t, previews, "amelia", "site", previewThread, map[string]string{"index.html": "<h1>Hi</h1>", "css/site.css": "h1{}"})
	for _, m := range []string{"GET", "HEAD"} {
		do(m, "/preview/amelia/site/"+previewThread+"/", "", nil, http.StatusOK)
		do(m, "/preview/amelia/site/"+previewThread+"/css/site.css", "", nil, http.StatusOK)
	}

	// Sessions.
	id := a.activate(t, ameliaKey)
	var waited struct{ SessionID string }
	do("POST", "/api/sessions/activate?wait=ready&timeout=1s", ameliaKey,
		map[string]string{"clientId": "amelia", "projectId": "site", "userId": "jo", "instruction": "fix the footer"},
		http.StatusCreated).JSON(t, &waited)
	do("GET", "/api/sessions/"+id+"/status", ameliaKey, nil, http.StatusOK)
	do("POST", "/api/sessions/"+id+"/keepalive", ameliaKey, nil, http.StatusOK)
	do("GET", "/api/sessions/"+id+"/messages", ameliaKey, nil, http.StatusOK)
	do("POST", "/api/sessions/"+id+"/messages", ameliaKey, map[string]any{"instruction": "and the footer green", "messageId": "m-1"}, http.StatusAccepted)
	page := do("GET", "/api/sessions/client/amelia?status=all&limit=1", ameliaKey, nil, http.StatusOK)
	cursor := page.Header.Get("X-Next-Cursor")
	if cursor == "" || !strings.Contains(page.Header.Get("Link"), `rel="next"`) {
		t.Fatalf("first page of two: no X-Next-Cursor/Link: %v", page.Header)
	}
	do("GET", "/api/sessions/client/amelia?status=all&limit=1&cursor="+cursor, ameliaKey, nil, http.StatusOK)
	do("GET", "/api/sessions/client/amelia?status=initializing,active", adminKey, nil, http.StatusOK)
	do("POST", "/api/sessions/"+id+"/deactivate", ameliaKey, nil, http.StatusAccepted)
	do("POST", "/api/sessions/"+id+"/deactivate", ameliaKey, nil, http.StatusAccepted) // idempotent
	do("POST", "/api/sessions/"+waited.SessionID+"/deactivate", adminKey, nil, http.StatusAccepted)

	// Messages, introspection and the inbound channels.
	do("POST", "/api/messages", ameliaKey, map[string]any{"clientId": "amelia", "projectId": "site", "userId": "scott",
		"text": "new events page", "messageId": "m-2"}, http.StatusAccepted)
	do("POST", "/api/messages", ameliaKey, map[string]any{"clientId": "amelia", "projectId": "site", "userId": "scott",
		"text": "new events page", "messageId": "m-2"}, http.StatusAccepted) // duplicate
	mail := email{From: "Scott <scott@example.com>", To: "edit@amelia.example.com", Subject: "Logo",
		MessageID: "<every-op@mail.example.com>", Body: "Please use the new logo."}.raw()
	a.validatedDo(t, request{Method: "POST", Path: "/inbound/email", Key: adminKey, Body: mail,
		Header: map[string]string{"Content-Type": "message/rfc822"}}).want(t, http.StatusAccepted)
	a.validatedDo(t, request{Method: "POST", Path: "/inbound/email", Key: adminKey, Body: mail,
		Header: map[string]string{"Content-Type": "message/rfc822"}}).want(t, http.StatusAccepted) // duplicate
	a.validatedDo(t, request{Method: "POST", Path: "/inbound/email", Key: adminKey,
		Body: snsWrap(sesNotification("everyop0001", mail, "BASE64", map[string]string{"spf": "FAIL"}))}).want(t, http.StatusAccepted) // dropped
	a.validatedDo(t, request{Method: "POST", Path: "/inbound/email", Key: adminKey, Body: sesNotification("everyop0002", mail, "UTF8", nil),
		Header: map[string]string{"Content-Type": "text/json"}}).want(t, http.StatusAccepted)
	a.validatedDo(t, smsRequest(public, smsForm(1, scottPhone, "+15550100001", "Make the header blue"), nil)).want(t, http.StatusOK) // no such number: dropped
	a.validatedDo(t, slackRequest(`{"token":"x","challenge":"c-123","type":"url_verification"}`, a.Clock.Now(), slackSecret, nil)).want(t, http.StatusOK)
	a.validatedDo(t, slackRequest(slackEvent("Ev1", slackMessage("1793534400.000100", "", "hello")), a.Clock.Now(), slackSecret, nil)).want(t, http.StatusOK)
	do("GET", "/api/outbox?status=pending&limit=10", adminKey, nil, http.StatusOK)
	do("GET", "/api/outbox", ameliaKey, nil, http.StatusOK)
	do("GET", "/api/containers", ameliaKey, nil, http.StatusOK)
	do("GET", "/api/sessions/"+id+"/events?follow=false", ameliaKey, nil, http.StatusOK)
	killJob(t, a, "amelia_site_scott")
	do("GET", "/api/dead-jobs", adminKey, nil, http.StatusOK)
	do("GET", "/api/dead-jobs?containerId=amelia_site_scott&limit=10", adminKey, nil, http.StatusOK)
	do("POST", "/api/containers/amelia_site_scott/dead-jobs/redrive", adminKey, nil, http.StatusOK)
	do("DELETE", "/api/containers/amelia_site_scott/dead-jobs", adminKey, nil, http.StatusOK)
	exerciseContainerRoutes(t) // containers_test.go: on an API with a fake runner

	// Directory.
	tree := map[string]any{
		"id": "acme", "name": "Acme",
		"projects": []any{map[string]any{
			"id": "shop", "name": "Shop", "repoUrl": "https://git.example.com/acme/shop.git", "defaultBranch": "trunk",
			"emailAddresses": []string{"Edit@Acme.example.com"}, "smsNumbers": []string{"+15550100009"},
			"slackChannels": []string{"C0999"}, "previewUrlTemplate": "https://preview.acme.example.com/{thread}/",
			"build": map[string]any{"command": []string{"npm", "run", "build"}, "outputDir": "dist"},
			"agent": map[string]any{"kind": "command", "command": []string{"./edit.sh"}}, "busyPolicy": "queue", "acknowledge": false,
		}},
		"users": []any{map[string]any{"id": "pat", "name": "Pat", "emails": []string{"pat@acme.example.com"},
			"phones": []string{"+15550100010"}, "chatIds": []string{"U0999"}}},
	}
	do("POST", "/api/clients", adminKey, tree, http.StatusCreated)
	do("GET", "/api/clients", adminKey, nil, http.StatusOK)
	do("GET", "/api/clients/acme", adminKey, nil, http.StatusOK)
	do("PUT", "/api/clients/acme", adminKey, map[string]any{"name": "Acme Ltd"}, http.StatusOK)

	do("POST", "/api/clients/acme/projects", adminKey, map[string]any{"id": "blog", "repoUrl": "/srv/blog.git"}, http.StatusCreated)
	do("GET", "/api/clients/acme/projects", adminKey, nil, http.StatusOK)
	var project map[string]any
	do("GET", "/api/clients/acme/projects/blog", adminKey, nil, http.StatusOK).JSON(t, &project)
	project["name"] = "Blog" // a fetched project can be sent back as is
	do("PUT", "/api/clients/acme/projects/blog", adminKey, project, http.StatusOK)

	do("POST", "/api/clients/acme/users", adminKey, map[string]any{"id": "sam", "emails": []string{"sam@acme.example.com"}}, http.StatusCreated)
	do("GET", "/api/clients/acme/users", adminKey, nil, http.StatusOK)
	var user map[string]any
	do("GET", "/api/clients/acme/users/sam", adminKey, nil, http.StatusOK).JSON(t, &user)
	user["name"] = "Sam"
	do("PUT", "/api/clients/acme/users/sam", adminKey, user, http.StatusOK)

	do("DELETE", "/api/clients/acme/users/sam", adminKey, nil, http.StatusNoContent)
	do("DELETE", "/api/clients/acme/projects/blog", adminKey, nil, http.StatusNoContent)
	do("DELETE", "/api/clients/acme", adminKey, nil, http.StatusNoContent)

	// Approval pages (approvals_test.go).
	exerciseApprovalPages(t, a)

	coverage.Lock()
	seen := coverage.seen[t.Name()]
	coverage.Unlock()
	for _, op := range ops {
		ok := false
		for code := range apiDoc.Paths.Value(op.Path).GetOperation(op.Method).Responses.Map() {
			if strings.HasPrefix(code, "2") && seen[fmt.Sprintf("%s %s %s", op.Method, op.Path, code)] {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s: no documented 2xx response was exercised", op)
		}
	}
}

// TestOpenAPIErrorShapes sends deliberately bad requests: their problems
// must be documented for the operation (the requests themselves are not
// checked, being answered 4xx).
func TestOpenAPIErrorShapes(t *testing.T) {
	a := newTestAPI(t)
	id := a.activate(t, adminKey)
	cases := []struct {
		req    request
		status int
	}{
		{request{Method: "POST", Path: "/api/sessions/activate", Key: adminKey, Body: "{"}, http.StatusBadRequest},
		{request{Method: "POST", Path: "/api/sessions/activate", Key: adminKey, Body: map[string]any{"clientId": "amelia", "userId": "scott", "instruction": "x", "extra": 1}}, http.StatusBadRequest},
		{request{Method: "POST", Path: "/api/sessions/activate", Key: adminKey, Body: map[string]any{"clientId": "Bad!", "instruction": " "}}, http.StatusBadRequest},
		{request{Method: "POST", Path: "/api/sessions/activate?wait=soon", Key: adminKey, Body: map[string]any{}}, http.StatusBadRequest},
		{request{Method: "POST", Path: "/api/sessions/activate", Key: adminKey, Body: "x=1", Header: map[string]string{"Content-Type": "text/plain"}}, http.StatusUnsupportedMediaType},
		{request{Method: "POST", Path: "/api/sessions/activate", Key: adminKey, Body: `{"instruction":"` + strings.Repeat("x", 70<<10) + `"}`}, http.StatusRequestEntityTooLarge},
		{request{Method: "POST", Path: "/api/sessions/activate", Key: adminKey, Body: map[string]any{"clientId": "amelia", "userId": "nobody", "instruction": "x"}}, http.StatusUnprocessableEntity},
		{request{Method: "POST", Path: "/api/sessions/activate", Key: otherKey, Body: map[string]any{"clientId": "amelia", "userId": "scott", "instruction": "x"}}, http.StatusNotFound},
		{request{Method: "GET", Path: "/api/sessions/" + id + "/status"}, http.StatusUnauthorized},
		{request{Method: "GET", Path: "/api/sessions/" + id + "/status", Key: "wrong"}, http.StatusUnauthorized},
		{request{Method: "GET", Path: "/api/sessions/NOT-AN-ID/status", Key: adminKey}, http.StatusBadRequest},
		{request{Method: "GET", Path: "/api/sessions/" + strings.Repeat("z", 26) + "/messages", Key: adminKey}, http.StatusNotFound},
		{request{Method: "GET", Path: "/api/sessions/client/amelia?limit=0", Key: adminKey}, http.StatusBadRequest},
		{request{Method: "GET", Path: "/api/sessions/client/amelia?status=gone", Key: adminKey}, http.StatusBadRequest},
		{request{Method: "GET", Path: "/api/sessions/client/amelia?cursor=nonsense", Key: adminKey}, http.StatusBadRequest},
		{request{Method: "GET", Path: "/api/sessions/client/nosuch", Key: adminKey}, http.StatusNotFound},
		{request{Method: "DELETE", Path: "/api/clients/amelia", Key: adminKey}, http.StatusConflict},
		{request{Method: "GET", Path: "/api/clients", Key: ameliaKey}, http.StatusForbidden},
		{request{Method: "POST", Path: "/api/clients", Key: adminKey, Body: map[string]any{"id": "amelia", "name": "Again"}}, http.StatusConflict},
		{request{Method: "PUT", Path: "/api/clients/amelia", Key: adminKey, Body: map[string]any{"id": "other", "name": "X"}}, http.StatusBadRequest},
		{request{Method: "PUT", Path: "/api/clients/amelia/users/scott", Key: adminKey, Body: map[string]any{"phones": []string{"555"}}}, http.StatusBadRequest},
		{request{Method: "GET", Path: "/api/clients/amelia/projects/nope", Key: adminKey}, http.StatusNotFound},
		{request{Method: "POST", Path: "/api/sessions/" + id + "/status", Key: adminKey}, http.StatusMethodNotAllowed},
		{request{Method: "GET", Path: "/api/nothing", Key: adminKey}, http.StatusNotFound},
	}
	for _, c := range cases {
		a.do(t, c.req).want(t, c.status).Problem(t)
	}
	a.do(t, request{Method: "POST", Path: "/api/sessions/" + id + "/deactivate", Key: adminKey}).want(t, http.StatusAccepted)
	a.do(t, request{Method: "POST", Path: "/api/sessions/" + id + "/keepalive", Key: adminKey}).want(t, http.StatusConflict).Problem(t)
}

// TestOpenAPIValidatorCatchesMismatches makes sure the validator is not a
// no-op: forged exchanges that break the document are reported.
func TestOpenAPIValidatorCatchesMismatches(t *testing.T) {
	if apiDocErr != nil {
		t.Fatal(apiDocErr)
	}
	newReq := func(method, url, body string, auth bool) *http.Request {
		r, err := http.NewRequest(method, "http://hermes.test"+url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		if auth {
			r.Header.Set("Authorization", "Bearer k")
		}
		return r
	}
	newResp := func(status int, ctype, body string) *http.Response {
		h := http.Header{}
		h.Set("Content-Type", ctype)
		h.Set("X-Request-Id", "req-1")
		return &http.Response{StatusCode: status, Header: h, Body: http.NoBody}
	}
	created := `{"sessionId":"aaaaaaaaaaaaaaaaaaaaaaaaaa","threadId":"bbbbbbbbbbbbbbbbbbbbbbbbbb","status":"initializing",` +
		`"previewUrl":"http://h.test/p/","containerId":"amelia_site_scott","expiresAt":"2026-11-01T12:30:00Z"}`
	good := `{"clientId":"amelia","userId":"scott","instruction":"x"}`
	cases := []struct {
		name           string
		req            *http.Request
		reqBody        string
		resp           *http.Response
		respBody       string
		wantMismatches bool
	}{
		{"valid exchange", newReq("POST", "/hermes/api/sessions/activate", good, true), good,
			withHeader(newResp(201, "application/json", created), "Location", "/hermes/api/sessions/aaaaaaaaaaaaaaaaaaaaaaaaaa/status"), created, false},
		{"missing Location", newReq("POST", "/api/sessions/activate", good, true), good,
			newResp(201, "application/json", created), created, true},
		{"bad request answered 201", newReq("POST", "/api/sessions/activate", `{"clientId":"amelia"}`, true), `{"clientId":"amelia"}`,
			withHeader(newResp(201, "application/json", created), "Location", "/x"), created, true},
		{"no credentials answered 200", newReq("GET", "/api/clients", "", false), "",
			newResp(200, "application/json", "[]"), "[]", true},
		{"undocumented field", newReq("GET", "/health/live", "", false), "",
			newResp(200, "application/json", `{"status":"ok","extra":1}`), `{"status":"ok","extra":1}`, true},
		{"undocumented status", newReq("GET", "/health/live", "", false), "",
			newResp(418, "application/problem+json", `{"type":"about:blank","title":"x","status":418}`), `{"type":"about:blank","title":"x","status":418}`, true},
		{"wrong content type", newReq("GET", "/api/clients", "", true), "",
			newResp(200, "text/html", "[]"), "[]", true},
		{"undocumented route answered 200", newReq("GET", "/api/jobs/dead", "", true), "",
			newResp(200, "application/json", "[]"), "[]", true},
		{"problem with another status", newReq("GET", "/api/clients", "", true), "",
			newResp(403, "application/problem+json", `{"type":"about:blank","title":"x","status":404}`), `{"type":"about:blank","title":"x","status":404}`, true},
	}
	for _, c := range cases {
		errs := checkExchange(c.req, []byte(c.reqBody), c.resp, []byte(c.respBody))
		if got := len(errs) > 0; got != c.wantMismatches {
			t.Errorf("%s: mismatches %v, want mismatches: %v", c.name, errs, c.wantMismatches)
		}
	}
}

func withHeader(r *http.Response, k, v string) *http.Response {
	r.Header.Set(k, v)
	return r
}
