package s3site_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
	"github.com/webordinary/hermes/internal/s3site"
)

// fake is an in-memory bucket with S3's paging (at most 1000 keys a
// page) and DeleteObjects limit, recording the calls.
type fake struct {
	mu        sync.Mutex
	objects   map[string]string
	lists     int
	deletes   []int // keys per DeleteObjects
	putErr    error
	listErr   error
	deleteErr *types.Error // reported per key by DeleteObjects
}

func (f *fake) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.listErr != nil {
		return nil, f.listErr
	}
	limit := 1000
	if in.MaxKeys != nil && int(*in.MaxKeys) < limit {
		limit = int(*in.MaxKeys)
	}
	out := &s3.ListObjectsV2Output{}
	for _, k := range slices.Sorted(maps.Keys(f.objects)) {
		if !strings.HasPrefix(k, aws.ToString(in.Prefix)) || k <= aws.ToString(in.ContinuationToken) {
			continue
		}
		if len(out.Contents) == limit {
			out.IsTruncated, out.NextContinuationToken = aws.Bool(true), out.Contents[limit-1].Key
			break
		}
		sum := md5.Sum([]byte(f.objects[k]))
		out.Contents = append(out.Contents, types.Object{Key: aws.String(k), Size: aws.Int64(int64(len(f.objects[k]))),
			ETag: aws.String(`"` + hex.EncodeToString(sum[:]) + `"`)})
	}
	return out, nil
}

func (f *fake) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.putErr != nil {
		return nil, f.putErr
	}
	f.objects[aws.ToString(in.Key)] = string(b)
	return &s3.PutObjectOutput{}, nil
}

func (f *fake) DeleteObjects(_ context.Context, in *s3.DeleteObjectsInput, _ ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(in.Delete.Objects) > 1000 {
		return nil, &smithy.GenericAPIError{Code: "MalformedXML", Message: "more than 1000 keys"}
	}
	f.deletes = append(f.deletes, len(in.Delete.Objects))
	out := &s3.DeleteObjectsOutput{}
	for _, o := range in.Delete.Objects {
		if f.deleteErr != nil {
			out.Errors = append(out.Errors, types.Error{Key: o.Key, Code: f.deleteErr.Code, Message: f.deleteErr.Message})
			continue
		}
		delete(f.objects, aws.ToString(o.Key))
	}
	return out, nil
}

// TestSyncManyObjects: thousands of stale objects are listed over several
// pages and deleted in batches of at most 1000.
func TestSyncManyObjects(t *testing.T) {
	f := &fake{objects: map[string]string{"other/keep.txt": "x"}}
	const prefix = "amelia/site/thread/"
	for i := range 2500 {
		f.objects[prefix+"old/"+strconv.Itoa(i)+".txt"] = "old"
	}
	f.objects[prefix+"index.html"] = "same"
	p := &s3site.Publisher{API: f, Bucket: "b"}
	st, err := p.Sync(t.Context(), prefix, site(t, map[string]string{"index.html": "same", "new.css": "a{}"}))
	if err != nil || st != (s3site.Stats{Uploaded: 1, Unchanged: 1, Deleted: 2500}) {
		t.Fatalf("%+v, %v", st, err)
	}
	if f.lists != 3 || !slices.Equal(f.deletes, []int{1000, 1000, 500}) {
		t.Errorf("%d list pages, deletes %v", f.lists, f.deletes)
	}
	if want := map[string]string{"other/keep.txt": "x", prefix + "index.html": "same", prefix + "new.css": "a{}"}; !maps.Equal(f.objects, want) {
		t.Errorf("bucket %v", f.objects)
	}
}

func TestSyncFailures(t *testing.T) {
	const prefix = "amelia/site/thread/"
	files := site(t, map[string]string{"index.html": "new"})

	// A refused delete is reported with the action to allow.
	f := &fake{objects: map[string]string{prefix + "old.html": "old"}, deleteErr: &types.Error{Code: aws.String("AccessDenied"), Message: aws.String("Access Denied")}}
	p := &s3site.Publisher{API: f, Bucket: "b"}
	if _, err := p.Sync(t.Context(), prefix, files); err == nil || !strings.Contains(err.Error(), "s3:DeleteObject") || !strings.Contains(err.Error(), "old.html") {
		t.Errorf("refused delete: %v", err)
	}

	// A denied upload names s3:PutObject and deletes nothing.
	f = &fake{objects: map[string]string{prefix + "old.html": "old"},
		putErr: &smithy.GenericAPIError{Code: "AccessDenied", Message: "Access Denied"}}
	p = &s3site.Publisher{API: f, Bucket: "b"}
	if _, err := p.Sync(t.Context(), prefix, files); !hermes.IsKind(err, hermes.Internal) || !strings.Contains(err.Error(), "s3:PutObject") {
		t.Errorf("denied upload: %v", err)
	}
	if f.objects[prefix+"old.html"] != "old" || len(f.deletes) != 0 {
		t.Error("a failed upload went on to delete")
	}

	// S3 failing again and again opens the breaker: then calls fail fast.
	// (Every call fails: a successful listing between failed uploads would
	// reset the count, and how many of a sync's uploads start before the
	// first failure stops the rest is a race.)
	var states []string
	b := awsx.NewBreaker("s3", awsx.BreakerOptions{Failures: 2, Cooldown: time.Hour, OnState: func(_, s string) { states = append(states, s) }})
	slow := &smithy.GenericAPIError{Code: "SlowDown", Message: "slow down"}
	f = &fake{objects: map[string]string{}, putErr: slow, listErr: slow}
	p = &s3site.Publisher{API: f, Bucket: "b", Breaker: b}
	two := site(t, map[string]string{"a.css": "a", "b.css": "b"})
	for i := range 3 {
		_, err := p.Sync(t.Context(), prefix, two)
		if !hermes.IsKind(err, hermes.Unavailable) {
			t.Errorf("sync %d: %v", i, err)
		}
	}
	if b.State() != "open" || !slices.Equal(states, []string{"open"}) {
		t.Errorf("breaker %s, states %v", b.State(), states)
	}
	if f.lists != 2 {
		t.Errorf("%d listings, want 2: the breaker opened after the second failed sync", f.lists)
	}
}

// TestSyncConcurrentUploads: many files, uploaded a few at a time, all
// arrive; a failure stops the rest.
func TestSyncConcurrentUploads(t *testing.T) {
	files := map[string]string{}
	for i := range 200 {
		files[fmt.Sprintf("f/%03d.txt", i)] = strconv.Itoa(i)
	}
	f := &fake{objects: map[string]string{}}
	p := &s3site.Publisher{API: f, Bucket: "b", Concurrency: 4}
	st, err := p.Sync(t.Context(), "p/", site(t, files))
	if err != nil || st.Uploaded != 200 || len(f.objects) != 200 || f.objects["p/f/199.txt"] != "199" {
		t.Fatalf("%+v, %v, %d objects", st, err, len(f.objects))
	}
	f = &fake{objects: map[string]string{}, putErr: errors.New("connection reset")}
	p.API = f
	if _, err := p.Sync(t.Context(), "p/", site(t, files)); !hermes.IsKind(err, hermes.Unavailable) {
		t.Errorf("failing uploads: %v", err)
	}
}
