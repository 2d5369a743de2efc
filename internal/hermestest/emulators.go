package hermestest

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
)

// RequireEmulators reports whether a missing test service is a failure
// (HERMES_TEST_REQUIRE_EMULATORS=1, as CI sets it) rather than a skip.
func RequireEmulators() bool { return os.Getenv("HERMES_TEST_REQUIRE_EMULATORS") == "1" }

// Missing ends a test that needs a service it does not have: a failure
// when RequireEmulators, else a loud skip. what names the service, how
// says how to get it.
func Missing(t testing.TB, what, how string) {
	t.Helper()
	if RequireEmulators() {
		t.Fatalf("%s is required (HERMES_TEST_REQUIRE_EMULATORS=1) and missing: %s", what, how)
	}
	t.Skipf("SKIPPED: no %s (%s)", what, how)
}

// Emulator returns the endpoint of a service the test environment runs,
// from the variable that .ci/services.sh exports (e.g.
// HERMES_TEST_SQS_ENDPOINT), or ends the test with Missing.
func Emulator(t testing.TB, variable, what string) string {
	t.Helper()
	e := os.Getenv(variable)
	if e == "" {
		Missing(t, what, "set "+variable+"; . .ci/services.sh starts it")
	}
	return e
}

// S3Bucket returns the configuration of the s3rver that CI starts
// (HERMES_TEST_S3_ENDPOINT, with its built-in key), a path-style client on
// it and a bucket made for the test.
func S3Bucket(t testing.TB) (cfg aws.Config, client *s3.Client, bucket string) {
	t.Helper()
	cfg = awsx.Emulator(Emulator(t, "HERMES_TEST_S3_ENDPOINT", "S3 emulator (s3rver)"))
	cfg.Credentials = credentials.NewStaticCredentialsProvider("S3RVER", "S3RVER", "")
	client = s3.NewFromConfig(cfg, PathStyle)
	bucket = "hermes-test-" + strings.ToLower(hermes.NewToken()[:12])
	if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("creating the test bucket: %v", err)
	}
	return cfg, client, bucket
}

// PathStyle is the S3 client option the emulator needs.
func PathStyle(o *s3.Options) { o.UsePathStyle = true }

// BucketObjects reads every object of bucket under prefix (all pages):
// its key after the prefix → its content.
func BucketObjects(t testing.TB, client *s3.Client, bucket, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	pages := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatalf("listing %s/%s: %v", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			obj, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatalf("reading %s: %v", aws.ToString(o.Key), err)
			}
			b, err := io.ReadAll(obj.Body)
			obj.Body.Close()
			if err != nil {
				t.Fatalf("reading %s: %v", aws.ToString(o.Key), err)
			}
			out[strings.TrimPrefix(aws.ToString(o.Key), prefix)] = string(b)
		}
	}
	return out
}
