package awsx

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/webordinary/hermes"
)

func TestBreakerOpensOnTransientFailuresOnly(t *testing.T) {
	var states []string
	b := NewBreaker("ses", BreakerOptions{Failures: 3, Cooldown: 50 * time.Millisecond, OnState: func(_, s string) { states = append(states, s) }})
	refused := &smithy.GenericAPIError{Code: "ValidationException", Fault: smithy.FaultClient}
	for range 10 {
		if err := b.Do(func() error { return refused }); !errors.Is(err, refused) {
			t.Fatalf("a refused call: %v", err)
		}
	}
	if b.State() != "closed" {
		t.Fatalf("refused calls opened the breaker: %s", b.State())
	}
	down := &smithy.GenericAPIError{Code: "InternalFailure", Fault: smithy.FaultServer}
	calls := 0
	for range 3 {
		_ = b.Do(func() error { calls++; return down })
	}
	err := b.Do(func() error { calls++; return nil })
	if !hermes.IsKind(err, hermes.Unavailable) || calls != 3 || b.State() != "open" {
		t.Fatalf("after 3 server faults: %v, %d calls, %s", err, calls, b.State())
	}
	time.Sleep(60 * time.Millisecond)
	if err := b.Do(func() error { return nil }); err != nil || b.State() != "closed" {
		t.Fatalf("trial call: %v %s", err, b.State())
	}
	if len(states) != 3 || states[0] != "open" || states[1] != "half-open" || states[2] != "closed" {
		t.Fatalf("states %v", states)
	}
}

func TestTransientAndWrap(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&smithy.GenericAPIError{Code: "ThrottlingException", Fault: smithy.FaultClient}, true},
		{&smithy.GenericAPIError{Code: "ProvisionedThroughputExceededException", Fault: smithy.FaultClient}, true},
		{&smithy.GenericAPIError{Code: "ServiceUnavailable", Fault: smithy.FaultServer}, true},
		{&smithy.GenericAPIError{Code: "ConditionalCheckFailedException", Fault: smithy.FaultClient}, false},
		{errors.New("dial tcp: connection refused"), true},
	} {
		if got := Transient(c.err); got != c.want {
			t.Errorf("Transient(%v) = %v", c.err, got)
		}
	}
	if err := Wrap("op", &smithy.GenericAPIError{Code: "ValidationException", Fault: smithy.FaultClient}); !hermes.IsKind(err, hermes.Internal) {
		t.Errorf("refused → %v", err)
	}
	if err := Wrap("op", context.DeadlineExceeded); !hermes.IsKind(err, hermes.Unavailable) {
		t.Errorf("deadline → %v", err)
	}
	if Wrap("op", nil) != nil {
		t.Error("nil")
	}
}
