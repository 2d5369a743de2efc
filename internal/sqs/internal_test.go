package sqs

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/webordinary/hermes"
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
