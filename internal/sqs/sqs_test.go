package sqs_test

import (
	"testing"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
	"github.com/webordinary/hermes/internal/hermestest"
	"github.com/webordinary/hermes/internal/sqs"
)

// endpoint returns the SQS emulator's endpoint (local-aws-sqs, started by
// .ci/services.sh), or skips the test loudly when there is none, unless
// HERMES_TEST_REQUIRE_EMULATORS=1 makes that a failure.
func endpoint(t *testing.T) string {
	t.Helper()
	return hermestest.Emulator(t, "HERMES_TEST_SQS_ENDPOINT", "SQS emulator (local-aws-sqs)")
}

// open returns queues on the emulator, each with a client (and URL cache)
// of its own.
func open(t *testing.T) *sqs.Queues {
	t.Helper()
	return sqs.New(awsx.Emulator(endpoint(t)), sqs.Options{})
}

func TestQueueSuite(t *testing.T) {
	endpoint(t)
	hermestest.QueueSuite(t, hermestest.QueueOpener{
		New:    func(t *testing.T) hermes.Queues { return open(t) },
		Reopen: func(t *testing.T, _ hermes.Queues) hermes.Queues { return open(t) },
	})
}
