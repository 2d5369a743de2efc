package sqs

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
)

func TestMapErr(t *testing.T) {
	code := func(c, msg string) error {
		return &smithy.GenericAPIError{Code: c, Message: msg, Fault: smithy.FaultClient}
	}
	for _, c := range []struct {
		name string
		err  error
		want hermes.Kind
	}{
		{"typed QueueDoesNotExist", &types.QueueDoesNotExist{}, hermes.NotFound},
		{"query-compatible code", code("AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist."), hermes.NotFound},
		{"receipt of a deleted message", code("ReceiptHandleIsInvalid", "not a valid receipt handle"), hermes.Conflict},
		{"receipt received again (SQS)", code("InvalidParameterValue",
			"Value AQEB… for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change."), hermes.Conflict},
		{"expired receipt", code("InvalidParameterValue", "Value x for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."), hermes.Conflict},
		{"not in flight", &types.MessageNotInflight{}, hermes.Conflict},
		{"other bad parameter", code("InvalidParameterValue", "Value 99999 for parameter VisibilityTimeout is invalid."), hermes.Invalid},
		{"bad characters", code("InvalidMessageContents", "Invalid characters found."), hermes.Invalid},
		{"throttled", code("RequestThrottled", "slow down"), hermes.Unavailable},
		{"server fault", &smithy.GenericAPIError{Code: "InternalError", Fault: smithy.FaultServer}, hermes.Unavailable},
		{"network", errors.New("dial tcp: connection refused"), hermes.Unavailable},
		{"access denied", code("AccessDenied", "no"), hermes.Internal},
	} {
		if got := mapErr("op", "q", c.err); !hermes.IsKind(got, c.want) {
			t.Errorf("%s: mapErr(%v) = %v, want kind %v", c.name, c.err, got, c.want)
		}
	}
	if mapErr("op", "q", nil) != nil {
		t.Error("mapErr(nil) != nil")
	}
}

func TestSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int32{0: 0, time.Millisecond: 1, 200 * time.Millisecond: 1, time.Second: 1,
		1500 * time.Millisecond: 2, 20 * time.Second: 20, 12 * time.Hour: 43200} {
		if got := seconds(d); got != want {
			t.Errorf("seconds(%v) = %d, want %d", d, got, want)
		}
	}
}

func TestNameOf(t *testing.T) {
	for in, want := range map[string]string{
		"webordinary-input-a_b_c": "webordinary-input-a_b_c",
		"https://sqs.us-east-1.amazonaws.com/123456789012/webordinary-email-intake": "webordinary-email-intake",
		"http://127.0.0.1:9324/123456789012/q/":                                     "q",
	} {
		if got := NameOf(in); got != want {
			t.Errorf("NameOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReceipts(t *testing.T) {
	var r receipts
	r.received("u", "m1", "r1")
	if r.stale("r1") || r.stale("unknown") {
		t.Fatal("a current or unknown receipt is stale")
	}
	r.received("u", "m1", "r2") // received again
	if !r.stale("r1") || r.stale("r2") {
		t.Fatal("after a second receive: r1 must be stale, r2 current")
	}
	r.received("other-queue", "m1", "r3") // same id in another queue
	if r.stale("r2") {
		t.Fatal("a receive in another queue made r2 stale")
	}
	r.deleted("r2")
	if !r.stale("r2") || !r.stale("r1") {
		t.Fatal("receipts of a deleted message must be stale")
	}
}

// fakeDeleteBatch answers DeleteMessageBatch as SQS does, by the receipt's
// prefix: "ok" deleted, "stale" ReceiptHandleIsInvalid, "busy" a fault of
// SQS (SenderFault false), "denied" AccessDenied, "silent" left out of the
// answer; a receipt "no-queue" fails the whole call with QueueDoesNotExist.
// (local-aws-sqs marks every failed entry a sender fault, and fails entries
// only for invalid receipts.)
func fakeDeleteBatch(t *testing.T, calls *atomic.Int32) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if target := r.Header.Get("X-Amz-Target"); target != "AmazonSQS.DeleteMessageBatch" {
			t.Errorf("unexpected call %s", target)
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		var in struct {
			QueueUrl string
			Entries  []struct{ Id, ReceiptHandle string }
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			t.Errorf("request body: %v", err)
		}
		type failed struct {
			Id, Code, Message string
			SenderFault       bool
		}
		var out struct {
			Successful []map[string]string `json:",omitempty"`
			Failed     []failed            `json:",omitempty"`
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		for _, e := range in.Entries {
			kind, _, _ := strings.Cut(e.ReceiptHandle, "-")
			switch kind {
			case "ok":
				out.Successful = append(out.Successful, map[string]string{"Id": e.Id})
			case "stale":
				out.Failed = append(out.Failed, failed{e.Id, "ReceiptHandleIsInvalid", "The input receipt handle is not a valid receipt handle.", true})
			case "busy":
				out.Failed = append(out.Failed, failed{e.Id, "InternalError", "We encountered an internal error.", false})
			case "denied":
				out.Failed = append(out.Failed, failed{e.Id, "AccessDenied", "Access to the resource is denied.", true})
			case "no":
				w.WriteHeader(http.StatusBadRequest)
				_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "The specified queue does not exist."})
				return
			}
		}
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// DeleteBatch's answer to SQS's per-entry results: stale receipts count as
// deleted, other failures are counted in one error of their kind (Internal
// when they differ), the rest are deleted and recorded so.
func TestDeleteBatchEntryFailures(t *testing.T) {
	var calls atomic.Int32
	srv := fakeDeleteBatch(t, &calls)
	q := New(awsx.Emulator(srv.URL), Options{})
	queue := srv.URL + "/123456789012/q"
	for _, c := range []struct {
		name     string
		receipts []string
		kind     hermes.Kind // with wantErr
		wantErr  string      // "" for no error
		deleted  []string    // known stale afterwards
		kept     []string    // not
	}{
		{name: "all deleted", receipts: []string{"ok-1", "ok-2"}, deleted: []string{"ok-1", "ok-2"}},
		{name: "stale counts as deleted", receipts: []string{"ok-3", "stale-1"}, deleted: []string{"ok-3", "stale-1"}},
		{name: "faults of SQS", receipts: []string{"ok-4", "stale-2", "busy-1", "busy-2"}, kind: hermes.Unavailable,
			wantErr: "2 of 4 messages not deleted", deleted: []string{"ok-4", "stale-2"}, kept: []string{"busy-1", "busy-2"}},
		{name: "mixed failures", receipts: []string{"busy-3", "ok-5", "denied-1"}, kind: hermes.Internal,
			wantErr: "2 of 3 messages not deleted", deleted: []string{"ok-5"}, kept: []string{"busy-3", "denied-1"}},
		{name: "entry left unanswered", receipts: []string{"ok-6", "silent-1"}, kind: hermes.Internal,
			wantErr: "1 of 2 messages not deleted", deleted: []string{"ok-6"}, kept: []string{"silent-1"}},
		{name: "queue gone", receipts: []string{"no-queue"}, kind: hermes.NotFound, wantErr: "not found", kept: []string{"no-queue"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, r := range c.receipts {
				q.receipts.received(queue, "id-"+r, r)
			}
			err := q.DeleteBatch(t.Context(), queue, c.receipts)
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("DeleteBatch(%q) = %v, want no error", c.receipts, err)
			case c.wantErr != "" && (!hermes.IsKind(err, c.kind) || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("DeleteBatch(%q) = %v (%v), want a %v error saying %q", c.receipts, err, hermes.ErrorKind(err), c.kind, c.wantErr)
			}
			for _, r := range c.deleted {
				if !q.receipts.stale(r) {
					t.Errorf("receipt %s is not recorded as deleted", r)
				}
			}
			for _, r := range c.kept {
				if q.receipts.stale(r) {
					t.Errorf("receipt %s, not deleted, is recorded as deleted", r)
				}
			}
		})
	}

	// Receipts known to be stale are not sent; only such receipts, no call.
	before := calls.Load()
	if err := q.DeleteBatch(t.Context(), queue, []string{"ok-1", "stale-1"}); err != nil {
		t.Errorf("DeleteBatch of deleted receipts: %v", err)
	}
	if n := calls.Load() - before; n != 0 {
		t.Errorf("DeleteBatch of receipts known to be deleted made %d calls, want none", n)
	}
}
