package httpapi_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// previewThread is the thread of the published previews of these tests.
const previewThread = "p7k2m4q9w3e5r6t8y2u4i6o8pa"

// publishPreview writes files (slash-separated names → contents) as the
// preview of a thread under root, as an edit container publishes it.
func publishPreview(t *testing.T, root, clientID, projectID, threadID string, files map[string]string) {
	t.Helper()
	dir := filepath.Join(root, clientID, projectID, threadID)
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// noRedirects is a client that returns redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// rawDo sends a bodiless request with the path exactly as given (dot
// segments and escapes kept) without following redirects, and checks the
// exchange against the OpenAPI document.
func (a *testAPI) rawDo(t *testing.T, method, path string, header map[string]string) *response {
	t.Helper()
	req, err := http.NewRequest(method, a.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if exchangeValidator != nil {
		exchangeValidator(t, req, nil, resp, body)
	}
	return &response{Response: resp, Body: body}
}

const sandbox = "sandbox allow-scripts allow-forms allow-popups"

// TestPreviews serves a published preview through the whole server, with
// and without a base path; every exchange is checked against the OpenAPI
// document.
func TestPreviews(t *testing.T) {
	for _, bp := range []string{"", "/hermes"} {
		t.Run("base="+bp, func(t *testing.T) {
			data := t.TempDir()
			root := filepath.Join(data, "previews")
			a := newTestAPI(t, withBasePath(bp), withPreviews(root))
			publishPreview(t, root, "amelia", "site", previewThread, map[string]string{
				"index.html":       "<h1>Home</h1>",
				"about/index.html": "<h1>About</h1>",
				"css/site.css":     "h1{color:blue}",
				"js/app.js":        "console.log(1)",
				"img/logo.svg":     "<svg xmlns='http://www.w3.org/2000/svg'/>",
				"img/logo.png":     "\x89PNG\r\n\x1a\n",
				"data/items.json":  `{"items":[]}`,
			})
			if err := os.WriteFile(filepath.Join(data, "admin-api-key"), []byte("SECRET"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("../../../../admin-api-key", filepath.Join(root, "amelia", "site", previewThread, "key")); err != nil {
				t.Fatal(err)
			}
			p := "/preview/amelia/site/" + previewThread

			files := []struct{ path, ctype, body string }{
				{p + "/", "text/html; charset=utf-8", "<h1>Home</h1>"},
				{p + "/about/", "text/html; charset=utf-8", "<h1>About</h1>"},
				{p + "/css/site.css", "text/css; charset=utf-8", "h1{color:blue}"},
				{p + "/js/app.js", "text/javascript; charset=utf-8", "console.log(1)"},
				{p + "/img/logo.svg", "image/svg+xml", "<svg xmlns='http://www.w3.org/2000/svg'/>"},
				{p + "/img/logo.png", "image/png", "\x89PNG\r\n\x1a\n"},
				{p + "/data/items.json", "application/json", `{"items":[]}`},
			}
			for _, f := range files {
				r := a.rawDo(t, "GET", f.path, nil).want(t, http.StatusOK)
				if string(r.Body) != f.body {
					t.Errorf("GET %s: body %q, want %q", f.path, r.Body, f.body)
				}
				for k, want := range map[string]string{
					"Content-Type": f.ctype, "Content-Security-Policy": sandbox, "X-Content-Type-Options": "nosniff",
					"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*", "Referrer-Policy": "no-referrer",
				} {
					if got := r.Header.Get(k); got != want {
						t.Errorf("GET %s: %s %q, want %q", f.path, k, got, want)
					}
				}
				if r.Header.Get("ETag") == "" || r.Header.Get("Last-Modified") == "" || r.Header.Get("X-Request-Id") == "" {
					t.Errorf("GET %s: headers %v", f.path, r.Header)
				}
			}

			head := a.rawDo(t, "HEAD", p+"/css/site.css", nil).want(t, http.StatusOK)
			if len(head.Body) != 0 || head.Header.Get("Content-Length") != "14" {
				t.Errorf("HEAD: body %q, Content-Length %q", head.Body, head.Header.Get("Content-Length"))
			}
			r := a.rawDo(t, "GET", p+"/css/site.css", map[string]string{"Range": "bytes=3-7"}).want(t, http.StatusPartialContent)
			if string(r.Body) != "color" {
				t.Errorf("Range: %q", r.Body)
			}
			a.rawDo(t, "GET", p+"/css/site.css", map[string]string{"Range": "bytes=99-"}).want(t, http.StatusRequestedRangeNotSatisfiable)
			a.rawDo(t, "GET", p+"/css/site.css", map[string]string{"If-None-Match": head.Header.Get("ETag")}).want(t, http.StatusNotModified)
			a.rawDo(t, "GET", p+"/css/site.css", map[string]string{"If-Match": `"other"`}).want(t, http.StatusPreconditionFailed)

			// Directories without their slash are redirected, relative to
			// the URL asked for, so the base path is kept.
			for path, want := range map[string]string{p: p + "/", p + "/about": p + "/about/", p + "?v=2": p + "/?v=2"} {
				r := a.rawDo(t, "GET", path, nil).want(t, http.StatusMovedPermanently)
				loc, err := r.Request.URL.Parse(r.Header.Get("Location"))
				if err != nil {
					t.Fatal(err)
				}
				if loc.RequestURI() != bp+want {
					t.Errorf("GET %s: Location %q resolves to %s, want %s", path, r.Header.Get("Location"), loc.RequestURI(), bp+want)
				}
			}

			// Not found: a problem, with the same message for a thread
			// without a preview and for malformed ids.
			notFound := map[string]string{
				p + "/nope.html": "no such file in this preview",
				p + "/key":       "no such file in this preview",
				p + "/about/x/y": "no such file in this preview",
				"/preview/amelia/site/" + strings.Repeat("z", 26) + "/": "no preview has been published for this thread yet",
				"/preview/amelia/site/" + strings.Repeat("z", 26):       "no preview has been published for this thread yet",
				"/preview/amelia/other/" + previewThread + "/":          "no preview has been published for this thread yet",
				"/preview/AMELIA/site/" + previewThread + "/":           "no preview has been published for this thread yet",
				"/preview/amelia/site/not-a-thread/":                    "no preview has been published for this thread yet",
			}
			for path, detail := range notFound {
				r := a.rawDo(t, "GET", path, nil).want(t, http.StatusNotFound)
				if got := r.Problem(t).Detail; got != detail {
					t.Errorf("GET %s: detail %q, want %q", path, got, detail)
				}
				if r.Header.Get("Content-Security-Policy") != sandbox {
					t.Errorf("GET %s: no sandbox on the 404", path)
				}
			}

			// Ways out of the thread's directory: never the secret, never a
			// file of the preview.
			for _, path := range []string{
				p + "/../../../../admin-api-key",
				p + "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/admin-api-key",
				p + "/..%2f..%2f..%2f..%2fadmin-api-key",
				p + "/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fadmin-api-key",
				p + "/index.html%00.png",
				p + "/%2fetc%2fpasswd",
				p + "/..%5c..%5cadmin-api-key",
				p + "/../../../etc/passwd",
			} {
				r := a.rawDo(t, "GET", path, nil)
				if strings.Contains(string(r.Body), "SECRET") || strings.Contains(string(r.Body), "root:") {
					t.Errorf("GET %s: leaked: %d %q", path, r.StatusCode, r.Body)
				}
				switch r.StatusCode {
				case http.StatusNotFound:
				case http.StatusMovedPermanently, http.StatusTemporaryRedirect:
					// The mux's redirect to the cleaned path, outside the route.
					if strings.Contains(r.Header.Get("Location"), "/preview/amelia/site/") {
						t.Errorf("GET %s: redirected into a preview: %q", path, r.Header.Get("Location"))
					}
				default:
					t.Errorf("GET %s: %d %q", path, r.StatusCode, r.Body)
				}
			}

			// Only GET and HEAD.
			r = a.rawDo(t, "POST", p+"/", nil).want(t, http.StatusMethodNotAllowed)
			if allow := r.Header.Values("Allow"); len(allow) != 1 || allow[0] != "GET" {
				t.Errorf("POST: Allow %v", allow)
			}
			a.rawDo(t, "DELETE", p+"/css/site.css", nil).want(t, http.StatusMethodNotAllowed)

			// Metrics are labelled with the route, never the file's path.
			m := a.rawDo(t, "GET", "/metrics", nil).want(t, http.StatusOK)
			if !strings.Contains(string(m.Body), `route="/preview/{clientId}/{projectId}/{threadId}/{path...}"`) ||
				strings.Contains(string(m.Body), "site.css") {
				t.Errorf("metrics: no preview route label, or a file path as a label")
			}
		})
	}
}

// TestPreviewsNotConfigured checks the route of a server without Previews:
// every preview is a 404 problem, still sandboxed.
func TestPreviewsNotConfigured(t *testing.T) {
	a := newTestAPI(t)
	for _, path := range []string{"/preview/amelia/site/" + previewThread + "/", "/preview/amelia/site/" + previewThread, "/preview/amelia/site/" + previewThread + "/a/b.css"} {
		r := a.rawDo(t, "GET", path, nil).want(t, http.StatusNotFound)
		if got := r.Problem(t).Detail; got != "no preview has been published for this thread yet" {
			t.Errorf("GET %s: detail %q", path, got)
		}
		if r.Header.Get("Content-Security-Policy") != sandbox {
			t.Errorf("GET %s: no sandbox on the 404", path)
		}
	}
}
