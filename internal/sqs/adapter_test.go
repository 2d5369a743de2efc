package sqs_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	sqssdk "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
	"github.com/webordinary/hermes/internal/directory"
	"github.com/webordinary/hermes/internal/emailin"
	"github.com/webordinary/hermes/internal/lifecycle"
	"github.com/webordinary/hermes/internal/router"
	"github.com/webordinary/hermes/internal/ses"
	"github.com/webordinary/hermes/internal/sqlite"
	"github.com/webordinary/hermes/internal/sqs"
)

// calls counts the SQS operations a client makes, by name.
type calls struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *calls) get(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[op]
}

// counted returns queues on the emulator whose calls are counted.
func counted(t *testing.T) (*sqs.Queues, *calls) {
	t.Helper()
	c := &calls{n: map[string]int{}}
	cfg := awsx.Emulator(endpoint(t))
	cfg.APIOptions = append(cfg.APIOptions, func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("CountCalls",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				c.mu.Lock()
				c.n[awsmiddleware.GetOperationName(ctx)]++
				c.mu.Unlock()
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	})
	return sqs.New(cfg, sqs.Options{}), c
}

// prefix returns a queue-name prefix unique to the test, and deletes the
// queues that start with it when the test ends.
func prefix(t *testing.T, q hermes.Queues) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	p := "t" + hex.EncodeToString(b[:]) + "-"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		names, err := q.ListQueues(ctx, p)
		if err != nil {
			t.Logf("cleanup: %v", err)
		}
		for _, n := range names {
			if err := q.DeleteQueue(ctx, n); err != nil && !hermes.IsKind(err, hermes.NotFound) {
				t.Logf("cleanup: DeleteQueue(%s): %v", n, err)
			}
		}
	})
	return p
}

func mustDo(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// A queue's URL is looked up once per handle; a URL is used as it is; a
// deleted queue is looked up again.
func TestURLCacheAndFullURLs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q, c := counted(t)
	name := prefix(t, q) + "a"
	mustDo(t, "CreateQueue", q.CreateQueue(ctx, name, hermes.QueueOptions{VisibilityTimeout: 30 * time.Second}))
	for range 3 {
		if _, err := q.Send(ctx, name, "m", nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.get("GetQueueUrl"); n != 1 {
		t.Errorf("GetQueueUrl called %d times for a create and 3 sends, want 1 (the create's look-up, then cached)", n)
	}

	attrs, err := q.Attributes(ctx, name)
	mustDo(t, "Attributes", err)
	if attrs["QueueArn"] == "" {
		t.Fatalf("no QueueArn in %v", attrs)
	}
	// Another handle gets the URL from ListQueues and uses it as is.
	other, oc := counted(t)
	names, err := other.ListQueues(ctx, name)
	mustDo(t, "ListQueues", err)
	if len(names) != 1 || names[0] != name {
		t.Fatalf("ListQueues(%q) = %v", name, names)
	}
	url := queueURL(t, q, name)
	if sqs.NameOf(url) != name {
		t.Errorf("NameOf(%q) = %q, want %q", url, sqs.NameOf(url), name)
	}
	id, err := other.Send(ctx, url, "by url", map[string]string{"k": "v"})
	mustDo(t, "Send to the URL", err)
	// Counts are approximate (as on SQS): they may take a moment to settle.
	var st hermes.QueueStats
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err = other.Stats(ctx, url)
		mustDo(t, "Stats of the URL", err)
		if st.Visible == 4 || time.Now().After(deadline) {
			break
		}
	}
	if st.Visible != 4 {
		t.Errorf("Stats by URL = %+v, want 4 visible", st)
	}
	if n := oc.get("GetQueueUrl"); n != 0 {
		t.Errorf("GetQueueUrl called %d times for a queue given as a URL, want 0", n)
	}
	// Everything sent by name and by URL is in the same queue.
	got := map[string]bool{}
	for len(got) < 4 {
		ds, err := other.Receive(ctx, url, 10, time.Second, time.Minute)
		mustDo(t, "Receive by URL", err)
		if len(ds) == 0 {
			t.Fatalf("received %d of 4 messages", len(got))
		}
		for _, d := range ds {
			got[d.ID] = true
			mustDo(t, "Delete by name", other.Delete(ctx, name, d.Receipt))
		}
	}
	if !got[id] {
		t.Errorf("the message sent to the URL (%s) was not received", id)
	}

	// Deleted through the other handle, recreated: the first handle's
	// cached URL answers NotFound in between, then works again.
	mustDo(t, "DeleteQueue", other.DeleteQueue(ctx, name))
	if _, err := q.Send(ctx, name, "gone", nil); !hermes.IsKind(err, hermes.NotFound) {
		t.Fatalf("Send to a queue deleted through another handle: %v, want NotFound", err)
	}
	mustDo(t, "CreateQueue again", other.CreateQueue(ctx, name, hermes.QueueOptions{}))
	if _, err := q.Send(ctx, name, "back", nil); err != nil {
		t.Fatalf("Send to the recreated queue: %v", err)
	}
}

func queueURL(t *testing.T, q *sqs.Queues, name string) string {
	t.Helper()
	out, err := q.Client().GetQueueUrl(t.Context(), &sqssdk.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.QueueUrl)
}

// The router's queue set: tags, visibility, retention and the redrive
// policy (the dead-letter queue's ARN, 3 receives) can be read back, and a
// second CreateQueue updates them.
func TestQueueSetAttributes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := open(t)
	p := prefix(t, q)
	set := hermes.QueueSetFor(p, "amelia_site_scott")
	tags := map[string]string{"client": "amelia", "project": "site", "user": "scott", "managed-by": "hermes"}
	mustDo(t, "dlq", q.CreateQueue(ctx, set.DLQ, hermes.QueueOptions{Retention: 14 * 24 * time.Hour, Tags: tags}))
	mustDo(t, "input", q.CreateQueue(ctx, set.Input, hermes.QueueOptions{
		VisibilityTimeout: router.JobVisibility, DeadLetter: set.DLQ, MaxReceives: hermes.DefaultMaxReceive, Tags: tags}))

	dlq, err := q.Attributes(ctx, set.DLQ)
	mustDo(t, "Attributes(dlq)", err)
	in, err := q.Attributes(ctx, set.Input)
	mustDo(t, "Attributes(input)", err)
	for _, c := range []struct {
		attrs      map[string]string
		name, want string
	}{
		{dlq, "MessageRetentionPeriod", "1209600"},
		{dlq, "VisibilityTimeout", "30"},
		{in, "VisibilityTimeout", "300"},
		{in, "MessageRetentionPeriod", "345600"},
		{in, "ReceiveMessageWaitTimeSeconds", "20"},
	} {
		if got := c.attrs[c.name]; got != c.want {
			t.Errorf("%s = %q, want %q", c.name, got, c.want)
		}
	}
	var policy struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
		MaxReceiveCount     any    `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(in["RedrivePolicy"]), &policy); err != nil {
		t.Fatalf("RedrivePolicy %q: %v", in["RedrivePolicy"], err)
	}
	if policy.DeadLetterTargetArn != dlq["QueueArn"] || policy.DeadLetterTargetArn == "" {
		t.Errorf("deadLetterTargetArn = %q, want the dead-letter queue's ARN %q", policy.DeadLetterTargetArn, dlq["QueueArn"])
	}
	if n, _ := json.Marshal(policy.MaxReceiveCount); strings.Trim(string(n), `"`) != "3" {
		t.Errorf("maxReceiveCount = %v, want 3", policy.MaxReceiveCount)
	}
	for _, name := range []string{set.DLQ, set.Input} {
		got, err := q.Tags(ctx, name)
		mustDo(t, "Tags", err)
		if !maps.Equal(got, tags) {
			t.Errorf("Tags(%s) = %v, want %v", name, got, tags)
		}
	}

	// Again with other options: updated, the redrive policy gone.
	mustDo(t, "CreateQueue again", q.CreateQueue(ctx, set.Input, hermes.QueueOptions{
		VisibilityTimeout: 1500 * time.Millisecond, Tags: map[string]string{"user": "kim"}}))
	in, err = q.Attributes(ctx, set.Input)
	mustDo(t, "Attributes(input)", err)
	if in["VisibilityTimeout"] != "2" || in["RedrivePolicy"] != "" {
		t.Errorf("after the update: VisibilityTimeout %q (want 2: 1.5 s rounded up), RedrivePolicy %q (want none)", in["VisibilityTimeout"], in["RedrivePolicy"])
	}
	got, err := q.Tags(ctx, set.Input)
	mustDo(t, "Tags", err)
	if got["user"] != "kim" || got["client"] != "amelia" {
		t.Errorf("Tags after the update = %v, want user kim (changed) and client amelia (kept)", got)
	}
}

// Queue names of the longest container ids fit SQS's 80 characters with
// the default prefix, and SQS takes them.
func TestLongContainerIDs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := open(t)
	long := strings.Repeat("c", 70)
	id := hermes.ContainerID(long, strings.Repeat("p", 70), strings.Repeat("u", 70))
	set := hermes.QueueSetFor(router.DefaultQueuePrefix, id)
	for _, name := range []string{set.Input, set.Output, set.DLQ} {
		if len(name) > hermes.MaxQueueNameLen || !hermes.ValidQueueName(name) {
			t.Fatalf("queue name %q (%d characters) is not a valid SQS name", name, len(name))
		}
	}
	// The test's own prefix instead of "webordinary-", same length, so that
	// runs do not share queues.
	p := prefix(t, q)[:len(router.DefaultQueuePrefix)]
	set = hermes.QueueSetFor(p, id)
	t.Cleanup(func() {
		for _, n := range []string{set.Input, set.Output, set.DLQ} {
			_ = q.DeleteQueue(context.Background(), n)
		}
	})
	mustDo(t, "dlq", q.CreateQueue(ctx, set.DLQ, hermes.QueueOptions{}))
	mustDo(t, "input", q.CreateQueue(ctx, set.Input, hermes.QueueOptions{DeadLetter: set.DLQ, MaxReceives: 3}))
	mustDo(t, "output", q.CreateQueue(ctx, set.Output, hermes.QueueOptions{}))
	if len(set.Output) > hermes.MaxQueueNameLen {
		t.Fatalf("%q is %d characters", set.Output, len(set.Output))
	}
	if _, err := q.Send(ctx, set.Output, "x", nil); err != nil {
		t.Fatal(err)
	}
	// One character more than SQS allows is refused before calling it.
	if err := q.CreateQueue(ctx, strings.Repeat("x", 81), hermes.QueueOptions{}); !hermes.IsKind(err, hermes.Invalid) {
		t.Errorf("CreateQueue of an 81-character name: %v, want Invalid", err)
	}
}

// DeleteBatch is one DeleteMessageBatch; receipts this handle knows to be
// stale are left out of it, and a batch of only such receipts calls
// nothing. (The suite checks what the contract says; this checks the
// calls.)
func TestDeleteBatchCalls(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q, c := counted(t)
	name := prefix(t, q) + "a"
	mustDo(t, "CreateQueue", q.CreateQueue(ctx, name, hermes.QueueOptions{VisibilityTimeout: 30 * time.Second}))
	for i := range hermes.MaxReceiveBatch {
		if _, err := q.Send(ctx, name, fmt.Sprintf("m%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	var rs []string
	for len(rs) < hermes.MaxReceiveBatch {
		ds, err := q.Receive(ctx, name, hermes.MaxReceiveBatch, time.Second, time.Minute)
		mustDo(t, "Receive", err)
		if len(ds) == 0 {
			t.Fatalf("received %d of %d messages", len(rs), hermes.MaxReceiveBatch)
		}
		for _, d := range ds {
			rs = append(rs, d.Receipt)
		}
	}
	mustDo(t, "DeleteBatch", q.DeleteBatch(ctx, name, rs))
	if n, single := c.get("DeleteMessageBatch"), c.get("DeleteMessage"); n != 1 || single != 0 {
		t.Errorf("DeleteBatch of %d receipts made %d DeleteMessageBatch and %d DeleteMessage calls, want 1 and 0", len(rs), n, single)
	}
	// Deleted through this handle: stale, so nothing to send.
	mustDo(t, "DeleteBatch again", q.DeleteBatch(ctx, name, rs))
	if n := c.get("DeleteMessageBatch"); n != 1 {
		t.Errorf("DeleteBatch of receipts deleted already made %d more DeleteMessageBatch calls, want none", n-1)
	}
	st, err := q.Stats(ctx, name)
	mustDo(t, "Stats", err)
	if st != (hermes.QueueStats{}) {
		t.Errorf("Stats after DeleteBatch = %+v, want an empty queue", st)
	}
}

// An SNS-wrapped SES receipt notification in an SQS intake queue, given as
// its URL (EMAIL_QUEUE_URL), becomes one job on the container's SQS input
// queue through emailin.ConsumeQueue, and the notification is deleted.
func TestSESIntakeEndToEnd(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	q := open(t)
	p := prefix(t, q)
	intake := p + "ses-intake"
	mustDo(t, "CreateQueue(intake)", q.CreateQueue(ctx, intake, hermes.QueueOptions{VisibilityTimeout: 2 * time.Minute}))
	intakeURL := queueURL(t, q, intake)

	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hermes.db"))
	mustDo(t, "sqlite.Open", err)
	t.Cleanup(func() { db.Close() })
	tree := &directory.ClientTree{Client: hermes.Client{ID: "amelia", Name: "Amelia"},
		Projects: []*hermes.Project{{ID: "site", RepoURL: "/srv/site.git", EmailAddresses: []string{"edit@amelia.example.com"}}},
		Users:    []*hermes.User{{ID: "scott", Emails: []string{"scott@example.com"}}}}
	tree.Normalize()
	mustDo(t, "directory.Create", directory.Create(ctx, db, tree, time.Now()))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sessions := &lifecycle.Sessions{Store: db, Clock: time.Now, TTL: time.Hour, PublicBase: "http://hermes.test", Log: log}
	rt := &router.Router{Store: db, Queues: q, Sessions: sessions, Clock: time.Now, Log: log, QueuePrefix: p}
	in := &emailin.Intake{Router: rt, Store: db, Policy: ses.DefaultPolicy(), Log: log}

	notification, err := os.ReadFile(filepath.Join("..", "ses", "testdata", "sns_base64.json"))
	mustDo(t, "fixture", err)
	for _, body := range []string{string(notification), `{"not":"ses"}`, string(notification)} {
		if _, err := q.Send(ctx, intakeURL, body, nil); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { in.ConsumeQueue(ctx, q, intakeURL); close(done) }()

	input := hermes.QueueSetFor(p, hermes.ContainerID("amelia", "site", "scott")).Input
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, _ := q.Stats(ctx, intakeURL)
		jobs, _ := q.Stats(ctx, input)
		if st == (hermes.QueueStats{}) && jobs.Visible == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("intake queue %+v, jobs %+v: want the intake queue empty and one job (the duplicate notification routed once)", st, jobs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ds, err := q.Receive(ctx, input, 10, time.Second, time.Minute)
	mustDo(t, "Receive(input)", err)
	if len(ds) != 1 || !strings.Contains(ds[0].Body, "header blue") {
		t.Errorf("jobs on %s: %+v, want the instruction of the mail", input, ds)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(25 * time.Second):
		t.Fatal("ConsumeQueue did not stop with its context")
	}
}
