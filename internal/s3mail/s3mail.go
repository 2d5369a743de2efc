// Package s3mail fetches the raw mail that an SES receipt rule's S3 action
// stored (internal/ses reports the bucket and key; internal/emailin routes
// the message). GetObject goes through a circuit breaker (internal/awsx)
// and reads at most MaxBytes.
package s3mail

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
)

// DefaultMaxBytes is the largest message fetched, as the embedded SMTP
// server's limit (SES itself stores up to 40 MB).
const DefaultMaxBytes = 10 << 20

// API is the part of the S3 client the fetcher uses.
type API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Fetcher reads stored mail from S3.
type Fetcher struct {
	API      API
	Breaker  *awsx.Breaker // nil: no breaker
	MaxBytes int64         // default DefaultMaxBytes
}

// New returns a fetcher using cfg. Emulators need path-style addressing:
// pass func(o *s3.Options) { o.UsePathStyle = true }.
func New(cfg aws.Config, b *awsx.Breaker, optFns ...func(*s3.Options)) *Fetcher {
	return &Fetcher{API: s3.NewFromConfig(cfg, optFns...), Breaker: b}
}

// FetchRaw returns the object's bytes. Errors: NotFound when the bucket or
// object does not exist, TooLarge over MaxBytes (both permanent),
// Unavailable when S3 cannot be reached (retry later), Internal otherwise
// (access denied: the task role lacks s3:GetObject).
func (f *Fetcher) FetchRaw(ctx context.Context, bucket, key string) ([]byte, error) {
	const op = "s3mail.FetchRaw"
	limit := f.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	var raw []byte
	tooLarge := false // decided outside the breaker: S3 worked
	err := f.Breaker.Do(func() error {
		out, err := f.API.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			return err
		}
		defer out.Body.Close()
		if out.ContentLength != nil && *out.ContentLength > limit {
			tooLarge = true
			return nil
		}
		raw, err = io.ReadAll(io.LimitReader(out.Body, limit+1))
		if err != nil {
			return err // a broken download: worth a retry
		}
		tooLarge = int64(len(raw)) > limit
		return nil
	})
	var nsk *types.NoSuchKey
	var nsb *types.NoSuchBucket
	switch {
	case err == nil && !tooLarge:
		return raw, nil
	case err == nil:
		return nil, &hermes.Error{Op: op, Kind: hermes.TooLarge, Message: fmt.Sprintf("the stored message s3://%s/%s is over %d bytes", bucket, key, limit)}
	case errors.As(err, &nsk), errors.As(err, &nsb), awsx.Code(err) == "NoSuchKey", awsx.Code(err) == "NoSuchBucket", awsx.Code(err) == "NotFound":
		return nil, &hermes.Error{Op: op, Kind: hermes.NotFound, Message: fmt.Sprintf("the stored message s3://%s/%s does not exist", bucket, key), Err: err}
	}
	return nil, awsx.Wrap(op, err)
}
