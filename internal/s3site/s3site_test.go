package s3site_test

import (
	"bytes"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
	"github.com/webordinary/hermes/internal/hermestest"
	"github.com/webordinary/hermes/internal/s3site"
)

// counter is a proxy in front of s3rver that counts the requests by
// method and key, so that a test sees what was uploaded and deleted.
type counter struct {
	mu      sync.Mutex
	puts    map[string]int // key (after the bucket) → PUTs
	deletes int            // DeleteObjects calls
}

func (c *counter) reset() (map[string]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	puts, deletes := c.puts, c.deletes
	c.puts, c.deletes = map[string]int{}, 0
	return puts, deletes
}

// emulator returns an S3 client on the s3rver that CI starts
// (HERMES_TEST_S3_ENDPOINT) with a new bucket, and a publisher to that
// bucket through a counting proxy, skipping loudly when there is no
// emulator unless HERMES_TEST_REQUIRE_EMULATORS=1 makes that a failure.
func emulator(t *testing.T) (*s3.Client, *s3site.Publisher, *counter, string) {
	t.Helper()
	cfg, client, bucket := hermestest.S3Bucket(t)
	pathStyle := hermestest.PathStyle
	target, err := url.Parse(aws.ToString(cfg.BaseEndpoint))
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{puts: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		switch {
		case r.Method == http.MethodPut:
			c.puts[strings.TrimPrefix(r.URL.Path, "/"+bucket+"/")]++
		case r.Method == http.MethodPost && r.URL.Query().Has("delete"):
			c.deletes++
		}
		c.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	pcfg := awsx.Emulator(srv.URL)
	pcfg.Credentials = cfg.Credentials
	p := s3site.New(pcfg, awsx.NewBreaker("s3", awsx.BreakerOptions{}), bucket, "", pathStyle)
	return client, p, c, bucket
}

// site writes files (path → content) under a new directory and returns
// the set Publish takes.
func site(t *testing.T, files map[string]string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	set := map[string]string{}
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		set[rel] = p
	}
	return set
}

func put(t *testing.T, client *s3.Client, bucket, key, content string) {
	t.Helper()
	if _, err := client.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: bytes.NewReader([]byte(content))}); err != nil {
		t.Fatal(err)
	}
}

func TestPublishSyncs(t *testing.T) {
	client, p, count, bucket := emulator(t)
	p.PageSize = 2 // several pages of a few objects
	ctx := t.Context()
	thread := hermes.NewToken()
	prefix := "amelia/site/" + thread + "/"
	// Not ours: another bucket prefix, another thread, a key that starts
	// like the thread's prefix without its slash.
	others := map[string]string{
		"other/thing.txt": "keep me",
		"amelia/site/" + hermes.NewToken() + "/a.html": "another thread",
		"amelia/site/" + thread + "x/index.html":       "a longer thread id",
		"amelia/site/" + thread:                        "no slash",
	}
	for k, v := range others {
		put(t, client, bucket, k, v)
	}
	count.reset()

	v1 := map[string]string{
		"index.html": "<title>Stamps</title>\n", "css/site.css": "body{}\n", "js/app.js": "console.log(1)\n",
		"img/logo.svg": "<svg/>", "data.bin": "\x00\x01\xff", "LICENSE": "MIT\n", "fonts/a.woff2": "wOF2",
		"about/index.html": "<p>about</p>\n", "empty.txt": "",
	}
	url, err := p.Publish(ctx, "amelia", "site", thread, site(t, v1))
	if err != nil || url != "" {
		t.Fatalf("publish: %q, %v", url, err)
	}
	want := maps.Clone(others)
	for k, v := range v1 {
		want[prefix+k] = v
	}
	if got := hermestest.BucketObjects(t, client, bucket, ""); !maps.Equal(got, want) {
		t.Fatalf("bucket after the first publish:\n%v\nwant\n%v", got, want)
	}
	if puts, _ := count.reset(); len(puts) != len(v1) {
		t.Errorf("first publish uploaded %v", puts)
	}
	for key, ct := range map[string]string{
		"index.html": "text/html; charset=utf-8", "about/index.html": "text/html; charset=utf-8",
		"css/site.css": "text/css; charset=utf-8", "js/app.js": "text/javascript; charset=utf-8",
		"img/logo.svg": "image/svg+xml", "data.bin": "application/octet-stream", "LICENSE": "application/octet-stream",
		"fonts/a.woff2": "font/woff2", "empty.txt": "text/plain; charset=utf-8",
	} {
		h, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(prefix + key)})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(h.ContentType) != ct || aws.ToString(h.CacheControl) != "no-cache" {
			t.Errorf("%s: Content-Type %q, Cache-Control %q; want %q, no-cache", key, aws.ToString(h.ContentType), aws.ToString(h.CacheControl), ct)
		}
	}

	// One file changed, one added, one removed: only two uploads, one
	// delete, and nothing outside the prefix touched.
	v2 := maps.Clone(v1)
	v2["css/site.css"] = "body{color:blue}\n"
	v2["new.html"] = "<p>new</p>\n"
	delete(v2, "js/app.js")
	if _, err := p.Publish(ctx, "amelia", "site", thread, site(t, v2)); err != nil {
		t.Fatal(err)
	}
	puts, deletes := count.reset()
	if !maps.Equal(puts, map[string]int{prefix + "css/site.css": 1, prefix + "new.html": 1}) || deletes != 1 {
		t.Errorf("second publish: uploads %v, %d DeleteObjects; want the changed and the new file, one delete", puts, deletes)
	}
	want = maps.Clone(others)
	for k, v := range v2 {
		want[prefix+k] = v
	}
	if got := hermestest.BucketObjects(t, client, bucket, ""); !maps.Equal(got, want) {
		t.Fatalf("bucket after the second publish:\n%v\nwant\n%v", got, want)
	}

	// The same files again: nothing to do.
	st, err := p.Sync(ctx, prefix, site(t, v2))
	if err != nil || st != (s3site.Stats{Unchanged: len(v2)}) {
		t.Errorf("unchanged sync: %+v, %v", st, err)
	}
	if puts, deletes := count.reset(); len(puts) != 0 || deletes != 0 {
		t.Errorf("unchanged sync uploaded %v, deleted %d times", puts, deletes)
	}

	// A custom prefix template; an empty set empties the thread's prefix.
	p.Prefix = "previews/{client}-{project}/{thread}/"
	if _, err := p.Publish(ctx, "amelia", "site", thread, site(t, map[string]string{"index.html": "x"})); err != nil {
		t.Fatal(err)
	}
	if got := hermestest.BucketObjects(t, client, bucket, "")["previews/amelia-site/"+thread+"/index.html"]; got != "x" {
		t.Errorf("custom prefix: %q", got)
	}
	p.Prefix = ""
	st, err = p.Sync(ctx, prefix, map[string]string{})
	if err != nil || st.Deleted != len(v2) {
		t.Errorf("empty sync: %+v, %v", st, err)
	}
	got := hermestest.BucketObjects(t, client, bucket, "")
	for k := range got {
		if strings.HasPrefix(k, prefix) {
			t.Errorf("%s left after an empty sync", k)
		}
	}
	for k, v := range others {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (outside the prefix)", k, got[k], v)
		}
	}
}

func TestPublishErrors(t *testing.T) {
	client, p, _, bucket := emulator(t)
	ctx := t.Context()
	files := site(t, map[string]string{"index.html": "x"})
	for _, tc := range []struct{ client, project, thread string }{
		{"Amelia", "site", hermes.NewToken()}, {"amelia", "../site", hermes.NewToken()}, {"amelia", "site", "short"},
	} {
		if _, err := p.Publish(ctx, tc.client, tc.project, tc.thread, files); !hermes.IsKind(err, hermes.Invalid) {
			t.Errorf("ids %v: %v", tc, err)
		}
	}
	for _, rel := range []string{"/abs", "a//b", "../up", "a/./b", ""} {
		if _, err := p.Sync(ctx, "x/", map[string]string{rel: files["index.html"]}); !hermes.IsKind(err, hermes.Invalid) {
			t.Errorf("path %q: %v", rel, err)
		}
	}
	if _, err := p.Sync(ctx, "x", files); !hermes.IsKind(err, hermes.Invalid) {
		t.Errorf("a prefix without its slash: %v", err)
	}
	p.Bucket = bucket + "-none"
	if _, err := p.Publish(ctx, "amelia", "site", hermes.NewToken(), files); !hermes.IsKind(err, hermes.NotFound) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("a missing bucket: %v", err)
	}
	if p.Breaker.State() != "closed" {
		t.Error("a missing bucket opened the breaker")
	}
	// A file that vanished before the upload: the sync fails, nothing is
	// deleted.
	p.Bucket = bucket
	thread := hermes.NewToken()
	put(t, client, bucket, "amelia/site/"+thread+"/old.html", "old")
	missing := map[string]string{"index.html": filepath.Join(t.TempDir(), "gone.html")}
	if _, err := p.Publish(ctx, "amelia", "site", thread, missing); err == nil {
		t.Error("a missing file was published")
	}
	if got := hermestest.BucketObjects(t, client, bucket, ""); got["amelia/site/"+thread+"/old.html"] != "old" {
		t.Errorf("a failed sync deleted: %v", got)
	}
}

func TestPublishUnavailable(t *testing.T) {
	p := s3site.New(awsx.Emulator("http://127.0.0.1:1"), nil, "bucket", "", func(o *s3.Options) { o.UsePathStyle = true })
	files := site(t, map[string]string{"index.html": "x"})
	if _, err := p.Publish(t.Context(), "amelia", "site", hermes.NewToken(), files); !hermes.IsKind(err, hermes.Unavailable) {
		t.Fatal(err)
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, ok := range []string{s3site.DefaultPrefix, "{thread}/", "previews/{client}-{project}/{thread}/", "p.v_1/{thread}/{client}/"} {
		if err := s3site.CheckPrefix(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for bad, why := range map[string]string{
		"{client}/{project}/{thread}": "end with /",
		"/{thread}/":                  "start with /",
		"{client}/{project}/":         "contain {thread}",
		"{thread}/{session}/":         "placeholder",
		"{thread}/{client/":           "placeholder",
		"{thread}}/":                  "only letters",
		"a b/{thread}/":               "only letters",
		"{thread}//":                  "segment",
		"../{thread}/":                "segment",
		"./{thread}/":                 "segment",
	} {
		if err := s3site.CheckPrefix(bad); !hermes.IsKind(err, hermes.Invalid) || !strings.Contains(err.Error(), why) {
			t.Errorf("%q: %v, want one saying %q", bad, err, why)
		}
	}
}

func TestContentType(t *testing.T) {
	for key, want := range map[string]string{
		"a/index.html": "text/html; charset=utf-8", "A.HTM": "text/html; charset=utf-8", "s.css": "text/css; charset=utf-8",
		"m.mjs": "text/javascript; charset=utf-8", "x.json": "application/json", "i.png": "image/png", "p.jpeg": "image/jpeg",
		"noext": "application/octet-stream", "doc.pdf": "application/pdf", "dir.d/noext": "application/octet-stream", "x.unknown-ext": "application/octet-stream",
	} {
		if got := s3site.ContentType(key); got != want {
			t.Errorf("%s: %q, want %q", key, got, want)
		}
	}
}
