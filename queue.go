package hermes

import (
	"context"
	"time"
)

// Queues are durable message queues with the semantics of Amazon SQS
// standard queues: a received message stays in the queue but is invisible
// for a visibility timeout; unless it is deleted in that time it becomes
// visible again; each receive counts, and a queue with a dead-letter queue
// moves a message there once it has been received MaxReceives times without
// being deleted. Delivery is at least once: consumers delete what they have
// finished, and tolerate seeing a message again.
//
// The embedded adapter keeps queues in SQLite (internal/sqlite); the
// production one is SQS. Both run hermestest.QueueSuite.
type Queues interface {
	// CreateQueue creates the named queue with the options, or does nothing
	// when it exists (options of an existing queue are updated). Invalid for
	// a bad name or options; NotFound when the dead-letter queue named in the
	// options does not exist.
	CreateQueue(ctx context.Context, name string, o QueueOptions) error
	// DeleteQueue removes the queue and its messages. NotFound if there is
	// none.
	DeleteQueue(ctx context.Context, name string) error
	// ListQueues returns the names of the queues starting with prefix,
	// sorted.
	ListQueues(ctx context.Context, prefix string) ([]string, error)

	// Send adds a message (body at most MaxMessageBytes, with string
	// attributes) and returns its id. NotFound if the queue does not exist;
	// TooLarge for a body over the limit.
	Send(ctx context.Context, queue, body string, attrs map[string]string) (string, error)
	// Receive returns up to max (1–10) visible messages, hiding each for
	// visibility (0 means the queue's default) and counting the receive. When
	// none is visible it waits up to wait (long polling, at most 20 s) and
	// returns as soon as one arrives; it returns an empty slice when the wait
	// ends with nothing. Messages over the queue's MaxReceives go to its
	// dead-letter queue instead of being returned. NotFound if the queue does
	// not exist.
	Receive(ctx context.Context, queue string, max int, wait, visibility time.Duration) ([]Delivery, error)
	// Delete removes a received message by its receipt handle. A receipt
	// whose message is already gone is not an error (deletes are retried).
	Delete(ctx context.Context, queue, receipt string) error
	// DeleteBatch removes up to MaxReceiveBatch received messages by their
	// receipts in one call (SQS DeleteMessageBatch), for consumers that
	// finish a received batch together. Each receipt is deleted as Delete
	// would: one whose message is already gone, or held under a newer
	// receipt, is not an error. An empty list does nothing. Invalid, with
	// nothing deleted, for more than MaxReceiveBatch receipts or an empty
	// one; NotFound if the queue does not exist. When some receipts fail for
	// another reason the others are deleted, and the error (of the failures'
	// kind when they share one, else Internal) says how many failed; the
	// messages that failed become visible again after their visibility, as
	// undeleted messages do.
	DeleteBatch(ctx context.Context, queue string, receipts []string) error
	// ChangeVisibility hides a received message for d from now (0 makes it
	// visible at once), e.g. to extend the time a long job holds it.
	// Conflict if the receipt is not the message's current one (it became
	// visible and was received again, or was deleted).
	ChangeVisibility(ctx context.Context, queue, receipt string, d time.Duration) error
	// Stats returns the queue's approximate counts. NotFound if the queue
	// does not exist.
	Stats(ctx context.Context, queue string) (QueueStats, error)
	// Purge deletes every message of the queue.
	Purge(ctx context.Context, queue string) error
	// Redrive moves up to max messages from a dead-letter queue back to
	// queue (with fresh receive counts) and returns how many it moved.
	Redrive(ctx context.Context, deadLetter, queue string, max int) (int, error)
}

// QueueOptions configure a queue.
type QueueOptions struct {
	// VisibilityTimeout is the default time a received message stays
	// hidden (SQS default 30 s; Hermes uses 300 s for job queues).
	VisibilityTimeout time.Duration
	// Retention is how long an unconsumed message is kept (default 4 days).
	Retention time.Duration
	// DeadLetter names the queue that takes messages received MaxReceives
	// times without being deleted; empty for none.
	DeadLetter  string
	MaxReceives int
	// Tags are kept with the queue (client, project, user, managed-by).
	Tags map[string]string
}

// Delivery is a received message.
type Delivery struct {
	ID           string
	Body         string
	Attributes   map[string]string
	Receipt      string // the handle to Delete or ChangeVisibility this receive
	ReceiveCount int    // how many times it has been received, this one included
	SentAt       time.Time
}

// QueueStats are a queue's counts.
type QueueStats struct {
	Visible  int // waiting to be received (SQS ApproximateNumberOfMessages)
	InFlight int // received and not yet deleted or visible again
}

// Queue limits (those of SQS).
const (
	MaxMessageBytes   = 256 << 10
	MaxReceiveBatch   = 10
	MaxReceiveWait    = 20 * time.Second
	MaxQueueNameLen   = 80
	DefaultMaxReceive = 3
)

// ValidQueueName reports whether s is a valid queue name (SQS rules:
// 1–80 letters, digits, hyphens and underscores).
func ValidQueueName(s string) bool {
	if len(s) == 0 || len(s) > MaxQueueNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}
