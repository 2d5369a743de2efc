package worker_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
	"github.com/webordinary/hermes/internal/hermestest"
	"github.com/webordinary/hermes/internal/s3site"
)

// s3Emulator returns an S3 client on the s3rver that CI starts
// (HERMES_TEST_S3_ENDPOINT), a publisher and a new bucket, skipping loudly
// when there is none unless HERMES_TEST_REQUIRE_EMULATORS=1 makes that a
// failure.
func s3Emulator(t *testing.T) (*s3.Client, *s3site.Publisher, string) {
	t.Helper()
	cfg, client, bucket := hermestest.S3Bucket(t)
	return client, s3site.New(cfg, awsx.NewBreaker("s3", awsx.BreakerOptions{}), bucket, "", hermestest.PathStyle), bucket
}

// TestPreviewOnS3: with an S3 publisher the build's output is synced to
// the bucket under the thread's prefix, and the result links to the
// project's preview template.
func TestPreviewOnS3(t *testing.T) {
	client, pub, bucket := s3Emulator(t)
	w := setup(t, "title")
	w.Publisher = pub
	w.PublicURL = "http://hermes.test" // not the link: Hermes does not serve S3 previews
	w.Project.PreviewURLTemplate = "https://edit.{client}.example.com/{thread}/"
	w.Project.Build = &hermes.Build{Command: []string{agentBin, "build"}, OutputDir: "dist"}
	thread := hermes.NewToken()
	prefix := "amelia/site/" + thread + "/"
	res := apply(t, w, newJob(thread, "Change the title to Stamps"))
	if !res.Success || res.Error != "" || res.PreviewURL != "https://edit.amelia.example.com/"+thread+"/" {
		t.Fatalf("result %+v", res)
	}
	got := hermestest.BucketObjects(t, client, bucket, prefix)
	if len(got) != 3 || !strings.Contains(got["index.html"], "<title>Stamps</title>") || got["css/site.css"] != "body{}\n" || got["built-Stamps.txt"] != "built\n" {
		t.Fatalf("the bucket has %v", got)
	}
	h, err := client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(prefix + "index.html")})
	if err != nil || aws.ToString(h.ContentType) != "text/html; charset=utf-8" || aws.ToString(h.CacheControl) != "no-cache" {
		t.Errorf("index.html: %v, %v", h, err)
	}

	// The next job replaces the preview: what the build no longer makes is gone.
	res = apply(t, w, newJob(thread, "Now the title to Letters"))
	if !res.Success || res.PreviewURL != "https://edit.amelia.example.com/"+thread+"/" {
		t.Fatalf("result %+v", res)
	}
	got = hermestest.BucketObjects(t, client, bucket, prefix)
	if _, old := got["built-Stamps.txt"]; old || got["built-Letters.txt"] != "built\n" || len(got) != 3 {
		t.Errorf("the bucket has %v", got)
	}
}

// TestPreviewOnS3WithoutTemplate: without a preview template an S3
// preview has no link; the worker says so once.
func TestPreviewOnS3WithoutTemplate(t *testing.T) {
	client, pub, bucket := s3Emulator(t)
	w := setup(t, "title")
	var logs bytes.Buffer
	w.Log = slog.New(slog.NewJSONHandler(&logs, nil))
	w.Publisher = pub
	w.PublicURL = "http://hermes.test"
	for _, title := range []string{"Stamps", "Letters"} {
		thread := hermes.NewToken()
		res := apply(t, w, newJob(thread, "Change the title to "+title))
		if !res.Success || res.Error != "" || res.PreviewURL != "" {
			t.Fatalf("result %+v", res)
		}
		// No build: the committed files are the site.
		got := hermestest.BucketObjects(t, client, bucket, "amelia/site/"+thread+"/")
		if len(got) != 1 || !strings.Contains(got["index.html"], "<title>"+title+"</title>") {
			t.Errorf("the bucket has %v", got)
		}
	}
	if n := strings.Count(logs.String(), "previews are published without a link"); n != 1 {
		t.Errorf("%d warnings about the missing link, want 1:\n%s", n, logs.String())
	}
}

// TestPreviewOnS3Unavailable: when S3 cannot be reached the job's change
// stays committed and the result says that publishing failed.
func TestPreviewOnS3Unavailable(t *testing.T) {
	w := setup(t, "title")
	w.Publisher = s3site.New(awsx.Emulator("http://127.0.0.1:1"), nil, "bucket", "", func(o *s3.Options) { o.UsePathStyle = true })
	w.Project.PreviewURLTemplate = "https://edit.{client}.example.com/{thread}/"
	res := apply(t, w, newJob(hermes.NewToken(), "Change the title to Stamps"))
	if res.Success || res.Commit == "" || res.PreviewURL != "" || !strings.Contains(res.Error, "publishing the preview failed") {
		t.Errorf("result %+v", res)
	}
}
