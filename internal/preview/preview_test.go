package preview_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes/internal/preview"
)

const (
	client  = "amelia"
	project = "site"
	thread  = "x7k2m4q9w3e5r6t8y2u4i6o8pa"
	base    = "/preview/" + client + "/" + project + "/" + thread
	secret  = "TOP-SECRET-OUTSIDE-THE-PREVIEW"
)

// pngBytes is the start of a PNG file.
var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

// site writes a published preview under a temp data dir and returns the
// previews root. Next to the thread's directory: a secret file outside the
// previews root, another thread's preview, and symbolic links from inside
// the preview to both.
func site(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	root := filepath.Join(data, "previews")
	dir := filepath.Join(root, client, project, thread)
	files := map[string]string{
		"index.html":              "<h1>Home</h1>",
		"about/index.html":        "<h1>About</h1>",
		"blog/2026/post.html":     "<h1>Post</h1>",
		"css/site.css":            "body{color:blue}",
		"js/app.js":               "console.log(1)",
		"js/mod.MJS":              "export {}",
		"img/logo.svg":            "<svg xmlns='http://www.w3.org/2000/svg'/>",
		"img/logo.png":            string(pngBytes),
		"data/items.json":         `{"items":[]}`,
		"files/blob.unknownext":   "???",
		"files/noext":             "plain",
		"empty/.keep":             "",
		"range.txt":               "0123456789abcdefghij",
		"weird name/index.html":   "<p>spaces</p>",
		"javascript:x/index.html": "<p>colon</p>",
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A secret outside the previews root, in the data dir (where the
	// database and the admin key live).
	if err := os.WriteFile(filepath.Join(data, "admin-api-key"), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	// Another thread's preview, inside the previews root.
	other := filepath.Join(root, client, project, "otherthread0000000000000000")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "index.html"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"out-abs":    filepath.Join(data, "admin-api-key"),
		"out-rel":    "../../../../admin-api-key",
		"out-dir":    "../../..",
		"sibling":    "../otherthread0000000000000000/index.html",
		"in-link":    "css/site.css",
		"etc-passwd": "/etc/passwd",
		"loop":       "loop",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, client, "secret.txt"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// handler serves d on the routes of httpapi.Server.routes, under a base
// path as Hermes may be.
func handler(d http.Handler, basePath string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /preview/{clientId}/{projectId}/{threadId}", d)
	mux.Handle("GET /preview/{clientId}/{projectId}/{threadId}/{path...}", d)
	if basePath == "" {
		return mux
	}
	return http.StripPrefix(basePath, mux)
}

type result struct {
	status int
	header http.Header
	body   string
}

func serve(t *testing.T, h http.Handler, method, target string, header map[string]string) result {
	t.Helper()
	req := httptest.NewRequest(method, "http://hermes.test"+target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return result{rec.Code, rec.Header(), rec.Body.String()}
}

func TestServe(t *testing.T) {
	h := handler(preview.New(site(t), nil), "")
	cases := []struct {
		name, path string
		status     int
		ctype      string
		body       string // exact, when not ""
	}{
		{"index", base + "/", 200, "text/html; charset=utf-8", "<h1>Home</h1>"},
		{"index by name", base + "/index.html", 200, "text/html; charset=utf-8", "<h1>Home</h1>"},
		{"index with query", base + "/?v=2", 200, "text/html; charset=utf-8", "<h1>Home</h1>"},
		{"nested directory", base + "/about/", 200, "text/html; charset=utf-8", "<h1>About</h1>"},
		{"nested file", base + "/blog/2026/post.html", 200, "text/html; charset=utf-8", "<h1>Post</h1>"},
		{"escaped name", base + "/weird%20name/", 200, "text/html; charset=utf-8", "<p>spaces</p>"},
		{"css", base + "/css/site.css", 200, "text/css; charset=utf-8", "body{color:blue}"},
		{"js", base + "/js/app.js", 200, "text/javascript; charset=utf-8", "console.log(1)"},
		{"module, upper-case extension", base + "/js/mod.MJS", 200, "text/javascript; charset=utf-8", "export {}"},
		{"svg", base + "/img/logo.svg", 200, "image/svg+xml", ""},
		{"png", base + "/img/logo.png", 200, "image/png", string(pngBytes)},
		{"json", base + "/data/items.json", 200, "application/json", `{"items":[]}`},
		{"unknown extension", base + "/files/blob.unknownext", 200, "application/octet-stream", "???"},
		{"no extension: never sniffed", base + "/files/noext", 200, "application/octet-stream", "plain"},
		{"symlink inside the preview", base + "/in-link", 200, "application/octet-stream", "body{color:blue}"},

		{"missing file", base + "/nope.html", 404, "application/problem+json", ""},
		{"missing nested file", base + "/about/nope/deeper.css", 404, "application/problem+json", ""},
		{"directory without index.html: no listing", base + "/empty/", 404, "application/problem+json", ""},
		{"directory without index.html, no slash", base + "/css", 301, "", ""},
		{"file with a trailing slash", base + "/css/site.css/", 404, "application/problem+json", ""},
		{"below a file", base + "/css/site.css/x", 404, "application/problem+json", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := serve(t, h, "GET", c.path, nil)
			if r.status != c.status {
				t.Fatalf("status %d, want %d; body %q", r.status, c.status, r.body)
			}
			if c.ctype != "" && r.header.Get("Content-Type") != c.ctype {
				t.Errorf("Content-Type %q, want %q", r.header.Get("Content-Type"), c.ctype)
			}
			if c.body != "" && r.body != c.body {
				t.Errorf("body %q, want %q", r.body, c.body)
			}
			if got := r.header.Get("Content-Security-Policy"); got != "sandbox allow-scripts allow-forms allow-popups" {
				t.Errorf("Content-Security-Policy %q", got)
			}
			switch r.status {
			case 200:
				for k, want := range map[string]string{"Cache-Control": "no-cache", "Accept-Ranges": "bytes", "Access-Control-Allow-Origin": "*"} {
					if got := r.header.Get(k); got != want {
						t.Errorf("%s %q, want %q", k, got, want)
					}
				}
				if r.header.Get("ETag") == "" || r.header.Get("Last-Modified") == "" {
					t.Errorf("no ETag or Last-Modified: %v", r.header)
				}
			case 404:
				p := problemOf(t, r)
				if p.Detail != "no such file in this preview" {
					t.Errorf("detail %q", p.Detail)
				}
			}
		})
	}
}

type problemDoc struct {
	Type, Title, Detail, Instance string
	Status                        int
}

func problemOf(t *testing.T, r result) problemDoc {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var p problemDoc
	if err := json.Unmarshal([]byte(r.body), &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != "about:blank" || p.Status != r.status || p.Title != http.StatusText(r.status) {
		t.Errorf("problem %+v for status %d", p, r.status)
	}
	return p
}

// TestTraversal sends every way out of the thread's directory: through the
// mux (which cleans literal dot segments, with a redirect), and straight to
// the handler with the path value set (no cleaning at all).
func TestTraversal(t *testing.T) {
	d := preview.New(site(t), nil)
	h := handler(d, "")
	paths := []string{
		base + "/../../../etc/passwd",
		base + "/../../secret.txt",
		base + "/%2e%2e/%2e%2e/%2e%2e/admin-api-key",
		base + "/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fadmin-api-key",
		base + "/..%2f..%2f..%2f..%2fadmin-api-key",
		base + "/..%2F..%2Fsecret.txt",
		base + "/css/..%2f..%2f..%2f..%2f..%2fadmin-api-key",
		base + "/%2e%2e",
		base + "/%2e/index.html",
		base + "/%2fetc%2fpasswd",
		base + "/index.html%00.png",
		base + "/%00",
		base + "/..%5c..%5c..%5c..%5cadmin-api-key",
		base + "/css%5csite.css",
		base + "/out-abs",
		base + "/out-rel",
		base + "/out-dir/admin-api-key",
		base + "/out-dir/",
		base + "/sibling",
		base + "/etc-passwd",
		base + "/loop",
	}
	for _, p := range paths {
		for _, method := range []string{"GET", "HEAD"} {
			r := serve(t, h, method, p, nil)
			if strings.Contains(r.body, secret) || strings.Contains(r.body, "root:") {
				t.Errorf("%s %s: leaked: %d %q", method, p, r.status, r.body)
			}
			switch r.status {
			case http.StatusNotFound:
			case http.StatusMovedPermanently, http.StatusTemporaryRedirect:
				// The mux's own answer to a literal dot segment: a redirect
				// to the cleaned path, which is outside this route.
				if loc := r.header.Get("Location"); strings.HasPrefix(loc, base) {
					t.Errorf("%s %s: redirected into the preview: %q", method, p, loc)
				}
			default:
				t.Errorf("%s %s: status %d, want 404; body %q", method, p, r.status, r.body)
			}
		}
	}

	// The handler itself, given raw path values a mux would never pass.
	raw := []string{
		"../../../../admin-api-key", "../secret.txt", "..", ".", "./index.html", "css/../../x",
		"/etc/passwd", "//etc/passwd", "css//site.css", "a\x00b", `..\..\admin-api-key`, "css\\site.css",
	}
	for _, p := range raw {
		req := httptest.NewRequest("GET", "http://hermes.test"+base+"/x", nil)
		req.SetPathValue("clientId", client)
		req.SetPathValue("projectId", project)
		req.SetPathValue("threadId", thread)
		req.SetPathValue("path", p)
		rec := httptest.NewRecorder()
		d.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotFound || strings.Contains(rec.Body.String(), secret) {
			t.Errorf("path value %q: %d %q, want 404", p, rec.Code, rec.Body.String())
		}
	}
}

// TestNoPreview checks that invalid ids, unknown threads and a missing
// previews root get the same 404, which does not say which part is wrong.
func TestNoPreview(t *testing.T) {
	root := site(t)
	h := handler(preview.New(root, nil), "")
	if err := os.MkdirAll(filepath.Join(root, client, project, "emptythreaddir000000000"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, client, project, "plainfile000000000000000"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	paths := []string{
		"/preview/amelia/site/" + strings.Repeat("z", 26) + "/",             // well-formed, unpublished
		"/preview/amelia/site/" + strings.Repeat("z", 26) + "/index.html",   // ditto, a file
		"/preview/amelia/site/" + strings.Repeat("z", 26),                   // ditto, no slash: no redirect either
		"/preview/amelia/site/plainfile000000000000000/",                    // a file, not a directory
		"/preview/amelia/site/emptythreaddir000000000/",                     // an empty directory: no index.html
		"/preview/amelia/nosuch/" + thread + "/",                            // another project
		"/preview/nosuch/site/" + thread + "/",                              // another client
		"/preview/Amelia/site/" + thread + "/",                              // invalid client id
		"/preview/amelia/-site/" + thread + "/",                             // invalid project id
		"/preview/amelia/site/" + strings.ToUpper(thread) + "/",             // invalid thread id
		"/preview/amelia/site/short/",                                       // invalid thread id
		"/preview/amelia/site/" + thread[:20] + "-" + thread[21:] + "/",     // invalid thread id
		"/preview/amelia/site/" + strings.Repeat("a", 65) + "/",             // too long
		"/preview/amelia/site/%2e%2e/",                                      // encoded dots as the id
		"/preview/amelia/%2e%2e/" + thread + "/",                            // ditto
		"/preview/%2e%2e/%2e%2e/" + thread + "/",                            // ditto
		"/preview/amelia/site/otherthread0000000000000000%2f..%2f" + thread, // slashes in the id
	}
	for _, p := range paths {
		r := serve(t, h, "GET", p, nil)
		if r.status != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404; body %q", p, r.status, r.body)
			continue
		}
		want := "no preview has been published for this thread yet"
		if strings.Contains(p, "emptythreaddir") {
			want = "no such file in this preview"
		}
		if pr := problemOf(t, r); pr.Detail != want {
			t.Errorf("%s: detail %q, want %q", p, pr.Detail, want)
		}
	}

	// No previews root at all (nothing published since Hermes started).
	h = handler(preview.New(filepath.Join(t.TempDir(), "previews"), nil), "")
	r := serve(t, h, "GET", base+"/", nil)
	if r.status != http.StatusNotFound || problemOf(t, r).Detail != "no preview has been published for this thread yet" {
		t.Errorf("no previews root: %d %q", r.status, r.body)
	}
}

func TestRedirects(t *testing.T) {
	root := site(t)
	for _, bp := range []string{"", "/hermes"} {
		h := handler(preview.New(root, nil), bp)
		cases := []struct{ path, location, resolved string }{
			{base, "./" + thread + "/", base + "/"},
			{base + "?v=1&x=y", "./" + thread + "/?v=1&x=y", base + "/?v=1&x=y"},
			{base + "/about", "./about/", base + "/about/"},
			{base + "/weird%20name", "./weird%20name/", base + "/weird%20name/"},
			{base + "/javascript:x", "./javascript:x/", base + "/javascript:x/"},
		}
		for _, c := range cases {
			r := serve(t, h, "GET", bp+c.path, nil)
			if r.status != http.StatusMovedPermanently {
				t.Errorf("%s%s: status %d, want 301; body %q", bp, c.path, r.status, r.body)
				continue
			}
			loc := r.header.Get("Location")
			if loc != c.location {
				t.Errorf("%s%s: Location %q, want %q", bp, c.path, loc, c.location)
			}
			// The browser resolves it against the URL it asked for, base path
			// included.
			reqURL := httptest.NewRequest("GET", "http://hermes.test"+bp+c.path, nil).URL
			got, err := reqURL.Parse(loc)
			if err != nil {
				t.Fatal(err)
			}
			if got.Scheme != "http" || got.RequestURI() != bp+c.resolved {
				t.Errorf("%s%s: Location resolves to %s, want %s", bp, c.path, got, bp+c.resolved)
			}
		}
	}
}

func TestHeadRangeAndConditional(t *testing.T) {
	h := handler(preview.New(site(t), nil), "")
	const file = base + "/range.txt"

	head := serve(t, h, "HEAD", file, nil)
	if head.status != 200 || head.body != "" || head.header.Get("Content-Length") != "20" ||
		head.header.Get("Content-Type") != "text/plain; charset=utf-8" || head.header.Get("ETag") == "" {
		t.Errorf("HEAD: %d %v %q", head.status, head.header, head.body)
	}
	if r := serve(t, h, "HEAD", base+"/", nil); r.status != 200 || r.body != "" || r.header.Get("Content-Length") != "13" {
		t.Errorf("HEAD of the index: %d %v", r.status, r.header)
	}
	if r := serve(t, h, "HEAD", base+"/nope", nil); r.status != 404 {
		t.Errorf("HEAD of a missing file: %d", r.status)
	}

	r := serve(t, h, "GET", file, map[string]string{"Range": "bytes=2-5"})
	if r.status != http.StatusPartialContent || r.body != "2345" || r.header.Get("Content-Range") != "bytes 2-5/20" {
		t.Errorf("Range: %d %v %q", r.status, r.header, r.body)
	}
	r = serve(t, h, "GET", file, map[string]string{"Range": "bytes=-3"})
	if r.status != http.StatusPartialContent || r.body != "hij" {
		t.Errorf("suffix Range: %d %q", r.status, r.body)
	}
	r = serve(t, h, "GET", file, map[string]string{"Range": "bytes=0-1,4-5"})
	if r.status != http.StatusPartialContent || !strings.HasPrefix(r.header.Get("Content-Type"), "multipart/byteranges") {
		t.Errorf("two ranges: %d %v", r.status, r.header)
	}
	if r = serve(t, h, "GET", file, map[string]string{"Range": "bytes=50-60"}); r.status != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("unsatisfiable Range: %d", r.status)
	}

	etag, modified := head.header.Get("ETag"), head.header.Get("Last-Modified")
	if r = serve(t, h, "GET", file, map[string]string{"If-None-Match": etag}); r.status != http.StatusNotModified || r.body != "" {
		t.Errorf("If-None-Match: %d %q", r.status, r.body)
	}
	if r = serve(t, h, "GET", file, map[string]string{"If-Modified-Since": modified}); r.status != http.StatusNotModified {
		t.Errorf("If-Modified-Since: %d", r.status)
	}
	if r = serve(t, h, "GET", file, map[string]string{"Range": "bytes=0-1", "If-Range": etag}); r.status != http.StatusPartialContent {
		t.Errorf("If-Range with the current ETag: %d", r.status)
	}
	if r = serve(t, h, "GET", file, map[string]string{"Range": "bytes=0-1", "If-Range": `"stale"`}); r.status != http.StatusOK || len(r.body) != 20 {
		t.Errorf("If-Range with a stale ETag: %d %q", r.status, r.body)
	}
}

// TestRepublish checks that a new publish is seen at once: the validators
// change, and a thread directory swapped for a relative symbolic link
// inside the previews root (an atomic publish) is followed.
func TestRepublish(t *testing.T) {
	root := site(t)
	h := handler(preview.New(root, nil), "")
	dir := filepath.Join(root, client, project, thread)
	before := serve(t, h, "GET", base+"/css/site.css", nil)

	later := time.Now().Add(time.Minute)
	if err := os.WriteFile(filepath.Join(dir, "css", "site.css"), []byte("body{color:green}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, "css", "site.css"), later, later); err != nil {
		t.Fatal(err)
	}
	after := serve(t, h, "GET", base+"/css/site.css", map[string]string{"If-None-Match": before.header.Get("ETag")})
	if after.status != 200 || after.body != "body{color:green}" || after.header.Get("ETag") == before.header.Get("ETag") {
		t.Errorf("after a new publish: %d %q ETag %q (was %q)", after.status, after.body, after.header.Get("ETag"), before.header.Get("ETag"))
	}

	// build-2 sits next to the thread's directory; the thread's name
	// becomes a relative link to it.
	build := filepath.Join(root, client, project, ".build-2")
	if err := os.MkdirAll(build, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(build, "index.html"), []byte("<h1>Build 2</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(".build-2", dir); err != nil {
		t.Fatal(err)
	}
	if r := serve(t, h, "GET", base+"/", nil); r.status != 200 || r.body != "<h1>Build 2</h1>" {
		t.Errorf("thread directory as a link: %d %q", r.status, r.body)
	}

	// A link from the thread's name to outside the previews root is not.
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "index.html"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(filepath.Dir(dir), outside)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rel, dir); err != nil {
		t.Fatal(err)
	}
	if r := serve(t, h, "GET", base+"/", nil); r.status != 404 || strings.Contains(r.body, secret) {
		t.Errorf("thread directory linked outside the previews root: %d %q", r.status, r.body)
	}
}

func TestNotRegular(t *testing.T) {
	root := site(t)
	h := handler(preview.New(root, nil), "")
	fifo := filepath.Join(root, client, project, thread, "pipe")
	if out, err := exec.Command("mkfifo", fifo).CombinedOutput(); err != nil {
		t.Skipf("no FIFOs here: %v %s", err, out)
	}
	done := make(chan result, 1)
	go func() { done <- serve(t, h, "GET", base+"/pipe", nil) }()
	select {
	case r := <-done:
		if r.status != http.StatusNotFound {
			t.Errorf("a FIFO: %d %q", r.status, r.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serving a FIFO blocked")
	}
}

func TestUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every file")
	}
	root := site(t)
	h := handler(preview.New(root, nil), "")
	p := filepath.Join(root, client, project, thread, "css", "site.css")
	if err := os.Chmod(p, 0); err != nil {
		t.Fatal(err)
	}
	r := serve(t, h, "GET", base+"/css/site.css", nil)
	if r.status != http.StatusInternalServerError || strings.Contains(r.body, "permission") {
		t.Errorf("an unreadable file: %d %q", r.status, r.body)
	}
	problemOf(t, r)
}

func TestContentType(t *testing.T) {
	cases := map[string]string{
		"index.html": "text/html; charset=utf-8", "a/B.HTM": "text/html; charset=utf-8",
		"s.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
		"logo.svg": "image/svg+xml", "logo.png": "image/png", "d.json": "application/json",
		"f.woff2": "font/woff2", "x.wasm": "application/wasm", "noext": "application/octet-stream",
		"x.unknownext": "application/octet-stream",
	}
	for name, want := range cases {
		if got := preview.ContentType(name); got != want {
			t.Errorf("ContentType(%q) = %q, want %q", name, got, want)
		}
	}
}
