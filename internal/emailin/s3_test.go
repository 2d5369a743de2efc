package emailin_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/hermestest"
	"github.com/webordinary/hermes/internal/router"
	"github.com/webordinary/hermes/internal/s3mail"
)

// TestSESStoredInS3: a notification of an SES S3 action is routed with the
// mail fetched from S3 (s3rver at HERMES_TEST_S3_ENDPOINT); a missing
// object is refused, not retried.
func TestSESStoredInS3(t *testing.T) {
	ctx := context.Background()
	cfg, client, bucket := hermestest.S3Bucket(t)
	pathStyle := hermestest.PathStyle
	const key = "inbound/o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g1"
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: bytes.NewReader(fixture(t, "message.eml"))}); err != nil {
		t.Fatal(err)
	}
	notification := bytes.ReplaceAll(fixture(t, "sns_s3.json"), []byte("amelia-inbound-mail"), []byte(bucket))

	db, in := setup(t)
	// Without a fetcher: refused.
	if _, err := in.HandleSES(ctx, notification); !hermes.IsKind(err, hermes.Unprocessable) {
		t.Fatalf("no fetcher: %v", err)
	}
	in.S3 = s3mail.New(cfg, nil, pathStyle)
	outs, err := in.HandleSES(ctx, notification)
	if err != nil || len(outs) != 1 || outs[0].Status == router.Dropped {
		t.Fatalf("outcomes %+v, err %v", outs, err)
	}
	msgs, err := db.Receive(ctx, "webordinary-input-amelia_site_scott", 10, 0, 0)
	if err != nil || len(msgs) != 1 || !strings.Contains(msgs[0].Body, "Please make the header blue.") {
		t.Fatalf("jobs %+v, %v", msgs, err)
	}

	// The object is gone: refused for good (NotFound), so the queue consumer deletes it.
	if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	gone := bytes.ReplaceAll(notification, []byte("o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g1"), []byte("o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g2"))
	if _, err := in.HandleSES(ctx, gone); !hermes.IsKind(err, hermes.NotFound) {
		t.Fatalf("a missing object: %v", err)
	}
}
