// Package s3site publishes a thread's preview to an S3 bucket, the way
// `aws s3 sync --delete` would: the objects under the thread's key prefix
// are listed, the files that are new or changed are uploaded (with their
// Content-Type and Cache-Control: no-cache), and the objects that are no
// longer in the set are deleted. Nothing outside the prefix is read or
// written. Every S3 call goes through a circuit breaker (internal/awsx).
//
// The bucket is served by whatever the deployment puts in front of it
// (CloudFront, an S3 website endpoint); the link to a preview is the
// project's previewUrlTemplate, which this package does not know.
package s3site

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
)

// DefaultPrefix is the key prefix template of a thread's preview
// (HERMES_PREVIEW_PREFIX).
const DefaultPrefix = "{client}/{project}/{thread}/"

// CacheControl is sent with every object: a preview changes with every
// job, so browsers and CDNs revalidate (ETag) before reusing a copy.
const CacheControl = "no-cache"

// Limits of S3's API.
const (
	maxDeleteBatch = 1000    // keys per DeleteObjects
	maxPutSize     = 5 << 30 // bytes of a single PutObject
)

// DefaultConcurrency is how many uploads run at once.
const DefaultConcurrency = 8

// API is the part of the S3 client the publisher uses.
type API interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
}

// Publisher syncs previews to a bucket. It is the worker's Publisher on
// AWS (internal/worker).
type Publisher struct {
	API     API
	Breaker *awsx.Breaker // nil: no breaker
	Bucket  string
	// Prefix is the key prefix template: {client}, {project} and {thread}
	// are replaced by the thread's ids (CheckPrefix); DefaultPrefix when
	// empty.
	Prefix      string
	Concurrency int          // uploads at once; DefaultConcurrency when zero
	PageSize    int32        // keys per ListObjectsV2 page; S3's 1000 when zero
	Log         *slog.Logger // nil: no log lines
}

// New returns a publisher to bucket using cfg. Emulators need path-style
// addressing: pass func(o *s3.Options) { o.UsePathStyle = true }.
func New(cfg aws.Config, b *awsx.Breaker, bucket, prefix string, optFns ...func(*s3.Options)) *Publisher {
	return &Publisher{API: s3.NewFromConfig(cfg, optFns...), Breaker: b, Bucket: bucket, Prefix: prefix}
}

// Stats is what a sync did.
type Stats struct {
	Uploaded, Unchanged, Deleted int
}

// Publish makes the objects under the thread's key prefix exactly files
// (see Sync). It returns "" for the URL: where the bucket is served is
// the project's previewUrlTemplate. Errors as Sync's, and Invalid for ids
// that are not ids.
func (p *Publisher) Publish(ctx context.Context, clientID, projectID, threadID string, files map[string]string) (string, error) {
	if !hermes.ValidSlug(clientID) || !hermes.ValidSlug(projectID) || !hermes.ValidTokenID(threadID) {
		return "", hermes.Errorf(hermes.Invalid, "the preview has no valid client, project and thread ids")
	}
	tmpl := p.Prefix
	if tmpl == "" {
		tmpl = DefaultPrefix
	}
	if err := CheckPrefix(tmpl); err != nil {
		return "", err
	}
	prefix := ExpandPrefix(tmpl, clientID, projectID, threadID)
	st, err := p.Sync(ctx, prefix, files)
	if err != nil {
		return "", err
	}
	if p.Log != nil {
		p.Log.InfoContext(ctx, "synced the preview to S3", "bucket", p.Bucket, "prefix", prefix,
			"uploaded", st.Uploaded, "unchanged", st.Unchanged, "deleted", st.Deleted)
	}
	return "", nil
}

// CheckPrefix validates a key prefix template: letters, digits, '-', '_',
// '.' and '/' besides the placeholders {client}, {project} and {thread};
// {thread} present (each thread has a prefix of its own); no leading '/',
// no empty, "." or ".." segment; a trailing '/' (so that no thread's
// prefix is the beginning of another key). The error is Invalid.
func CheckPrefix(tmpl string) error {
	bad := func(why string) error {
		return hermes.Errorf(hermes.Invalid, "the key prefix template %q %s", tmpl, why)
	}
	if !strings.HasSuffix(tmpl, "/") {
		return bad("must end with /")
	}
	if strings.HasPrefix(tmpl, "/") {
		return bad("must not start with /")
	}
	if !strings.Contains(tmpl, "{thread}") {
		return bad("must contain {thread}")
	}
	rest := tmpl
	for rest != "" {
		if ph, ok := strings.CutPrefix(rest, "{"); ok {
			name, after, ok := strings.Cut(ph, "}")
			if !ok || name != "client" && name != "project" && name != "thread" {
				return bad("has a placeholder other than {client}, {project} and {thread}")
			}
			rest = after
			continue
		}
		c := rest[0]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '/') {
			return bad("may hold only letters, digits, -, _, . and / besides the placeholders")
		}
		rest = rest[1:]
	}
	for _, seg := range strings.Split(strings.TrimSuffix(tmpl, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return bad(`must not have an empty, "." or ".." segment`)
		}
	}
	return nil
}

// ExpandPrefix fills in a key prefix template.
func ExpandPrefix(tmpl, clientID, projectID, threadID string) string {
	return strings.NewReplacer("{client}", clientID, "{project}", projectID, "{thread}", threadID).Replace(tmpl)
}

// object is what the bucket has of one key.
type object struct {
	size int64
	etag string // without quotes
}

// upload is one file to put.
type upload struct {
	key, file, md5hex string
	size              int64
}

// Sync makes the objects under prefix exactly files: each key of files is
// a path under the prefix (slash-separated and relative: no leading '/',
// no empty, "." or ".." element), its value the local regular file with
// the content. A file whose object has the same size and the MD5 ETag of a
// single-part upload is left alone; the others are uploaded, pages (.html)
// last so that a new page never refers to an asset not there yet; then
// the objects under prefix that files lacks are deleted. When an upload
// fails nothing is deleted: the previous preview stays, partly updated,
// until the next sync.
//
// Errors: Invalid for a bad path, NotFound when the bucket does not exist,
// Unavailable when S3 cannot be reached or throttles (the breaker may be
// open), Internal otherwise (access denied: the role lacks s3:ListBucket,
// s3:PutObject or s3:DeleteObject).
func (p *Publisher) Sync(ctx context.Context, prefix string, files map[string]string) (Stats, error) {
	var st Stats
	if prefix == "" || !strings.HasSuffix(prefix, "/") {
		return st, hermes.Errorf(hermes.Invalid, "the key prefix %q does not end with /", prefix)
	}
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		if !validPath(rel) {
			return st, hermes.Errorf(hermes.Invalid, "%q is not a relative path of the preview", rel)
		}
	}
	have, err := p.list(ctx, prefix)
	if err != nil {
		return st, err
	}
	var pages, assets []upload
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		u := upload{key: prefix + rel, file: files[rel]}
		if u.size, u.md5hex, err = digest(u.file); err != nil {
			return st, hermes.E("s3site.Sync", hermes.Internal, fmt.Errorf("reading %s: %w", rel, err))
		}
		if u.size > maxPutSize {
			return st, hermes.Errorf(hermes.TooLarge, "%s is over S3's %d bytes for a single upload", rel, int64(maxPutSize))
		}
		if o, ok := have[u.key]; ok && o.size == u.size && strings.EqualFold(o.etag, u.md5hex) {
			st.Unchanged++
			continue
		}
		if strings.HasSuffix(strings.ToLower(rel), ".html") || strings.HasSuffix(strings.ToLower(rel), ".htm") {
			pages = append(pages, u)
		} else {
			assets = append(assets, u)
		}
	}
	for _, batch := range [][]upload{assets, pages} {
		if err := p.putAll(ctx, batch); err != nil {
			return st, err
		}
		st.Uploaded += len(batch)
	}
	var gone []string
	for _, key := range slices.Sorted(maps.Keys(have)) {
		if _, ok := files[key[len(prefix):]]; !ok {
			gone = append(gone, key)
		}
	}
	for batch := range slices.Chunk(gone, maxDeleteBatch) {
		if err := p.deleteAll(ctx, batch); err != nil {
			return st, err
		}
		st.Deleted += len(batch)
	}
	return st, nil
}

// validPath reports whether rel is a path under a prefix: relative,
// slash-separated, without empty, "." or ".." elements.
func validPath(rel string) bool {
	if rel == "" || strings.HasPrefix(rel, "/") || strings.ContainsRune(rel, '\\') {
		return false
	}
	for _, e := range strings.Split(rel, "/") {
		if e == "" || e == "." || e == ".." {
			return false
		}
	}
	return true
}

// digest returns a file's size and MD5 (hex), what S3 reports as a
// single-part upload's ETag.
func digest(file string) (int64, string, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := md5.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// list returns the objects under prefix, every page of them.
func (p *Publisher) list(ctx context.Context, prefix string) (map[string]object, error) {
	have := map[string]object{}
	in := &s3.ListObjectsV2Input{Bucket: aws.String(p.Bucket), Prefix: aws.String(prefix)}
	if p.PageSize > 0 {
		in.MaxKeys = aws.Int32(p.PageSize)
	}
	pages := s3.NewListObjectsV2Paginator(p.API, in)
	for pages.HasMorePages() {
		var out *s3.ListObjectsV2Output
		err := p.Breaker.Do(func() error {
			var err error
			out, err = pages.NextPage(ctx)
			return err
		})
		if err != nil {
			return nil, p.wrap("s3site.List", "listing s3://"+p.Bucket+"/"+prefix, "s3:ListBucket", err)
		}
		for _, o := range out.Contents {
			key := aws.ToString(o.Key)
			if !strings.HasPrefix(key, prefix) {
				continue // never touch what is outside the prefix
			}
			have[key] = object{size: aws.ToInt64(o.Size), etag: strings.Trim(aws.ToString(o.ETag), `"`)}
		}
	}
	return have, nil
}

// putAll uploads the files, Concurrency at a time; the first failure stops
// the uploads not started yet and is returned.
func (p *Publisher) putAll(ctx context.Context, uploads []upload) error {
	n := p.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, n)
	for _, u := range uploads {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := p.put(ctx, u); err != nil {
				mu.Lock()
				if first == nil {
					first = err
					cancel(err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return hermes.E("s3site.Put", hermes.Unavailable, context.Cause(ctx))
	}
	return first
}

// put uploads one file with its type, Cache-Control and Content-MD5 (S3
// refuses a body that arrived damaged). The file is opened outside the
// breaker: a local failure says nothing about S3.
func (p *Publisher) put(ctx context.Context, u upload) error {
	sum, err := hex.DecodeString(u.md5hex)
	if err != nil {
		return err
	}
	f, err := os.Open(u.file)
	if err != nil {
		return hermes.E("s3site.Put", hermes.Internal, fmt.Errorf("reading %s: %w", u.file, err))
	}
	defer f.Close()
	err = p.Breaker.Do(func() error {
		_, err := p.API.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(p.Bucket), Key: aws.String(u.key), Body: f,
			ContentLength: aws.Int64(u.size), ContentMD5: aws.String(base64.StdEncoding.EncodeToString(sum)),
			ContentType: aws.String(ContentType(u.key)), CacheControl: aws.String(CacheControl),
		})
		return err
	})
	return p.wrap("s3site.Put", "uploading s3://"+p.Bucket+"/"+u.key, "s3:PutObject", err)
}

// deleteAll deletes up to maxDeleteBatch keys with one DeleteObjects.
func (p *Publisher) deleteAll(ctx context.Context, keys []string) error {
	ids := make([]types.ObjectIdentifier, len(keys))
	for i, k := range keys {
		ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
	}
	var out *s3.DeleteObjectsOutput
	err := p.Breaker.Do(func() error {
		var err error
		out, err = p.API.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(p.Bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		return err
	})
	if err != nil {
		return p.wrap("s3site.Delete", "deleting from s3://"+p.Bucket, "s3:DeleteObject", err)
	}
	if len(out.Errors) > 0 {
		e := out.Errors[0]
		what := fmt.Sprintf("deleting s3://%s/%s (and %d more): %s: %s", p.Bucket, aws.ToString(e.Key), len(out.Errors)-1,
			aws.ToString(e.Code), aws.ToString(e.Message))
		if aws.ToString(e.Code) == "AccessDenied" {
			return &hermes.Error{Op: "s3site.Delete", Kind: hermes.Internal, Message: what + " (the role needs s3:DeleteObject)"}
		}
		return &hermes.Error{Op: "s3site.Delete", Kind: hermes.Unavailable, Message: what}
	}
	return nil
}

// wrap maps an S3 error: NotFound for a missing bucket, Internal with the
// action to allow for a denied call, else awsx.Wrap.
func (p *Publisher) wrap(op, what, action string, err error) error {
	if err == nil {
		return nil
	}
	var nsb *types.NoSuchBucket
	switch code := awsx.Code(err); {
	case errors.As(err, &nsb), code == "NoSuchBucket":
		return &hermes.Error{Op: op, Kind: hermes.NotFound, Message: fmt.Sprintf("the bucket %s does not exist", p.Bucket), Err: err}
	case code == "AccessDenied", code == "Forbidden", code == "AllAccessDisabled":
		return &hermes.Error{Op: op, Kind: hermes.Internal, Message: fmt.Sprintf("%s was denied: allow %s on the bucket to the worker's role", what, action), Err: err}
	}
	return awsx.Wrap(op, fmt.Errorf("%s: %w", what, err))
}

// webTypes are the types of the web's own files, whatever the system's
// MIME tables say (they differ: .js is application/javascript on some).
var webTypes = map[string]string{
	".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8",
	".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
	".json": "application/json", ".map": "application/json", ".webmanifest": "application/manifest+json",
	".txt": "text/plain; charset=utf-8", ".md": "text/markdown; charset=utf-8", ".xml": "application/xml",
	".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
	".webp": "image/webp", ".avif": "image/avif", ".ico": "image/x-icon",
	".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf", ".otf": "font/otf",
	".wasm": "application/wasm", ".pdf": "application/pdf", ".mp4": "video/mp4", ".webm": "video/webm",
}

// ContentType is the Content-Type of a key by its extension: the web's
// own types first, then the system's MIME tables, else
// application/octet-stream.
func ContentType(key string) string {
	ext := strings.ToLower(path.Ext(key))
	if t, ok := webTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); ext != "" && t != "" {
		return t
	}
	return "application/octet-stream"
}
