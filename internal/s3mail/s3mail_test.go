package s3mail_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
	"github.com/webordinary/hermes/internal/hermestest"
	"github.com/webordinary/hermes/internal/s3mail"
)

// emulator returns an S3 client and a fetcher on the s3rver that CI starts
// (HERMES_TEST_S3_ENDPOINT), with a new bucket, skipping loudly when there
// is none unless HERMES_TEST_REQUIRE_EMULATORS=1 makes that a failure.
func emulator(t *testing.T) (*s3.Client, *s3mail.Fetcher, string) {
	t.Helper()
	cfg, client, bucket := hermestest.S3Bucket(t)
	return client, s3mail.New(cfg, awsx.NewBreaker("s3", awsx.BreakerOptions{}), hermestest.PathStyle), bucket
}

func TestFetchRaw(t *testing.T) {
	client, f, bucket := emulator(t)
	ctx := context.Background()
	raw := []byte("From: scott@example.com\r\nTo: edit@amelia.example.com\r\nSubject: hi\r\n\r\nCaf\xc3\xa9 \x00\xff\r\n")
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("inbound/msg1"), Body: bytes.NewReader(raw)}); err != nil {
		t.Fatal(err)
	}
	got, err := f.FetchRaw(ctx, bucket, "inbound/msg1")
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("%q, %v", got, err)
	}
	if _, err := f.FetchRaw(ctx, bucket, "inbound/none"); !hermes.IsKind(err, hermes.NotFound) {
		t.Errorf("a missing key: %v", err)
	}
	if _, err := f.FetchRaw(ctx, bucket+"-none", "inbound/msg1"); !hermes.IsKind(err, hermes.NotFound) {
		t.Errorf("a missing bucket: %v", err)
	}
	f.MaxBytes = int64(len(raw) - 1)
	if _, err := f.FetchRaw(ctx, bucket, "inbound/msg1"); !hermes.IsKind(err, hermes.TooLarge) {
		t.Errorf("over the limit: %v", err)
	}
	if f.Breaker.State() != "closed" {
		t.Errorf("refusals opened the breaker")
	}
	f.MaxBytes = int64(len(raw))
	if _, err := f.FetchRaw(ctx, bucket, "inbound/msg1"); err != nil {
		t.Errorf("at the limit: %v", err)
	}
}

func TestFetchUnavailable(t *testing.T) {
	f := s3mail.New(awsx.Emulator("http://127.0.0.1:1"), nil, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := f.FetchRaw(context.Background(), "bucket", "key"); !hermes.IsKind(err, hermes.Unavailable) {
		t.Fatal(err)
	}
}
