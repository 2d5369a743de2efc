package hermes

import "context"

// Sender delivers outbox items of one channel: SMTP or SES for email,
// Twilio for SMS, Slack for chat.
type Sender interface {
	// Send delivers the item once. An error of kind Invalid is permanent
	// (the item fails at once); any other error is retried with backoff.
	Send(ctx context.Context, it *OutboxItem) error
}
