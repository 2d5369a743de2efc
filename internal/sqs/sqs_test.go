package sqs_test

import (
	"os"
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
	ep := os.Getenv("HERMES_TEST_SQS_ENDPOINT")
	if ep == "" {
		if os.Getenv("HERMES_TEST_REQUIRE_EMULATORS") == "1" {
			t.Fatal("HERMES_TEST_SQS_ENDPOINT is not set and HERMES_TEST_REQUIRE_EMULATORS=1: start the emulators with `. .ci/services.sh`")
		}
		t.Skip("SKIPPED: no SQS emulator (set HERMES_TEST_SQS_ENDPOINT, e.g. with `. .ci/services.sh`)")
	}
	return ep
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
