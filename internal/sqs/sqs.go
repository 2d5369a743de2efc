// Package sqs is the Amazon SQS adapter of hermes.Queues: the production
// queues of Hermes (per-container input, output and dead-letter queues, and
// the SES intake queue), run against the same contract as the embedded
// SQLite queues (hermestest.QueueSuite).
//
// Hermes speaks queue names; the adapter resolves a name to its URL with
// GetQueueUrl once and caches it. A queue given as a full URL (EMAIL_QUEUE_URL)
// is used as it is. Every call goes through one circuit breaker ("sqs"), and
// AWS errors become hermes.Error kinds: NotFound for a missing queue,
// Conflict for a receipt that no longer holds its message, Invalid for bad
// names and options, TooLarge for messages over 256 KiB (checked before
// sending), Unavailable for throttling, 5xx answers and network failures.
//
// Where SQS and the contract differ, the adapter does this:
//
//   - Waits and visibility timeouts are whole seconds in SQS. A Receive wait
//     is rounded up (a wait of 200 ms long-polls for 1 s rather than
//     short-polling, which on SQS samples only some servers and may miss
//     messages that are there); visibility timeouts are rounded up too, so a
//     message is never visible again earlier than asked.
//   - A receipt that this adapter knows to be stale (the message was received
//     again, or deleted, through the same Queues) is refused with Conflict by
//     ChangeVisibility and ignored by Delete without calling SQS, as the
//     contract says; DeleteBatch leaves such receipts out of its
//     DeleteMessageBatch (and calls nothing when all are). SQS itself refuses
//     ChangeMessageVisibility with such a receipt (InvalidParameterValue,
//     ReceiptHandleIsInvalid or MessageNotInflight: all Conflict); a stale
//     receipt from another process is left to SQS, whose DeleteMessage and
//     DeleteMessageBatch then succeed but may keep the message (local-aws-sqs
//     finds a message by any of its receipts and deletes it).
//   - DeleteMessageBatch answers for each entry. One refused as stale
//     (ReceiptHandleIsInvalid, or InvalidParameterValue about the
//     ReceiptHandle) counts as deleted, as in Delete; any other failed entry
//     is mapped as the error of a call would be (SenderFault false:
//     Unavailable), and DeleteBatch's error says how many failed while the
//     other entries are deleted. DeleteBatch, the Purge fallback and Redrive
//     share this.
//   - Redrive receives from the dead-letter queue, sends each message to the
//     queue (a new message: new id, new SentAt, receive count 0) and then
//     deletes it from the dead-letter queue, in batches of 10.
//     StartMessageMoveTask is not used: it is asynchronous, moves at a rate
//     rather than a number of messages, and cannot report how many it moved,
//     which Redrive must.
//   - Purge uses PurgeQueue, which SQS allows once a minute per queue and
//     which may take up to 60 s to finish; a Purge within that minute drains
//     the visible messages with batched receives and deletes instead.
//   - Message attributes with an empty value are not sent (SQS refuses empty
//     attribute values); a reader sees them as absent, which a map lookup
//     cannot tell from empty. SQS counts attributes in the 256 KiB limit.
package sqs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqssdk "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
)

var _ hermes.Queues = (*Queues)(nil)

// Queue defaults and limits (those of SQS).
const (
	defaultVisibility = 30 * time.Second
	maxVisibility     = 12 * time.Hour
	defaultRetention  = 4 * 24 * time.Hour
	minRetention      = time.Minute
	maxRetention      = 14 * 24 * time.Hour
	maxAttributes     = 10
	// queueWait is the queue's ReceiveMessageWaitTimeSeconds: receives that
	// name no wait (other tools, the console) long-poll too. Receive always
	// passes its own wait.
	queueWait = 20
	// redriveVisibility hides the messages Redrive is moving from other
	// receivers of the dead-letter queue while it sends them.
	redriveVisibility = 60
)

// Options configure New.
type Options struct {
	// Breaker guards every call; nil makes one named "sqs" with the default
	// settings.
	Breaker *awsx.Breaker
}

// Queues are SQS queues as hermes.Queues.
type Queues struct {
	client  *sqssdk.Client
	breaker *awsx.Breaker

	mu   sync.Mutex
	urls map[string]string // queue name → URL

	receipts receipts
}

// New returns the queues of the SQS endpoint that cfg configures
// (awsx.Load, or awsx.Emulator in tests).
func New(cfg aws.Config, o Options) *Queues {
	b := o.Breaker
	if b == nil {
		b = awsx.NewBreaker("sqs", awsx.BreakerOptions{})
	}
	return &Queues{client: sqssdk.NewFromConfig(cfg), breaker: b, urls: map[string]string{}}
}

// Client is the SDK client, for what the port does not cover.
func (q *Queues) Client() *sqssdk.Client { return q.client }

// call runs fn through the breaker and maps its error for op.
func (q *Queues) call(op, queue string, fn func() error) error {
	return mapErr(op, queue, q.breaker.Do(fn))
}

// mapErr turns an SQS error into a hermes.Error.
func mapErr(op, queue string, err error) error {
	if err == nil {
		return nil
	}
	var he *hermes.Error
	if errors.As(err, &he) {
		if he.Op == "" {
			return &hermes.Error{Op: op, Kind: he.Kind, Message: he.Message, Err: he.Err}
		}
		return err
	}
	switch {
	case isNotFound(err):
		return &hermes.Error{Op: op, Kind: hermes.NotFound, Message: fmt.Sprintf("queue %q not found", queue), Err: err}
	case isStaleReceipt(err):
		return &hermes.Error{Op: op, Kind: hermes.Conflict, Message: "the message is no longer held under this receipt", Err: err}
	}
	switch code := awsx.Code(err); code {
	case "InvalidMessageContents", "InvalidAttributeName", "InvalidAttributeValue", "InvalidParameterValue",
		"MissingParameter", "InvalidAddress", "InvalidBatchEntryId", "TooManyEntriesInBatchRequest",
		"EmptyBatchRequest", "BatchEntryIdsNotDistinct":
		return &hermes.Error{Op: op, Kind: hermes.Invalid, Message: "SQS refused the request (" + code + ")", Err: err}
	}
	return awsx.Wrap(op, err)
}

func isNotFound(err error) bool {
	var nf *types.QueueDoesNotExist
	if errors.As(err, &nf) {
		return true
	}
	switch awsx.Code(err) {
	case "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue":
		return true
	}
	return false
}

// isStaleReceipt reports whether SQS refused a receipt handle because its
// message is gone or held under a newer receipt.
func isStaleReceipt(err error) bool {
	var rh *types.ReceiptHandleIsInvalid
	var ni *types.MessageNotInflight
	if errors.As(err, &rh) || errors.As(err, &ni) {
		return true
	}
	switch awsx.Code(err) {
	case "ReceiptHandleIsInvalid", "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight":
		return true
	case "InvalidParameterValue":
		// "Value … for parameter ReceiptHandle is invalid. Reason: Message
		// does not exist or is not available for visibility timeout change"
		// or "…: The receipt handle has expired."
		return strings.Contains(err.Error(), "ReceiptHandle")
	}
	return false
}

func checkName(name string) error {
	if !hermes.ValidQueueName(name) {
		return hermes.Errorf(hermes.Invalid, "queue name %q must be 1-%d letters, digits, hyphens or underscores", name, hermes.MaxQueueNameLen)
	}
	return nil
}

// isURL reports whether queue is a queue URL rather than a name.
func isURL(queue string) bool {
	return strings.HasPrefix(queue, "https://") || strings.HasPrefix(queue, "http://")
}

// NameOf returns the queue name of a queue URL (its last path segment), or
// queue itself when it is a name.
func NameOf(queue string) string {
	if !isURL(queue) {
		return queue
	}
	u, err := url.Parse(queue)
	if err != nil {
		return queue
	}
	p := strings.TrimRight(u.Path, "/")
	return p[strings.LastIndexByte(p, '/')+1:]
}

// url returns the URL of the queue: itself when it is a URL, the cached
// one, or GetQueueUrl's answer (NotFound when there is no such queue).
func (q *Queues) url(ctx context.Context, op, queue string) (string, error) {
	if isURL(queue) {
		return queue, nil
	}
	if err := checkName(queue); err != nil {
		return "", mapErr(op, queue, err)
	}
	q.mu.Lock()
	u, ok := q.urls[queue]
	q.mu.Unlock()
	if ok {
		return u, nil
	}
	var out *sqssdk.GetQueueUrlOutput
	err := q.call(op, queue, func() (err error) {
		out, err = q.client.GetQueueUrl(ctx, &sqssdk.GetQueueUrlInput{QueueName: aws.String(queue)})
		return err
	})
	if err != nil {
		return "", err
	}
	u = aws.ToString(out.QueueUrl)
	q.remember(queue, u)
	return u, nil
}

func (q *Queues) remember(name, u string) {
	q.mu.Lock()
	q.urls[name] = u
	q.mu.Unlock()
}

// forget drops a cached URL: the queue was deleted, or SQS said it does
// not exist.
func (q *Queues) forget(name string) {
	q.mu.Lock()
	delete(q.urls, name)
	q.mu.Unlock()
}

// checked forgets the queue's URL when err says that the queue is gone.
func (q *Queues) checked(queue string, err error) error {
	if hermes.IsKind(err, hermes.NotFound) {
		q.forget(queue)
	}
	return err
}

// seconds converts d to whole seconds, rounding up.
func seconds(d time.Duration) int32 {
	return int32(math.Ceil(d.Seconds()))
}

func normalize(o *hermes.QueueOptions) error {
	switch {
	case o.VisibilityTimeout < 0 || o.VisibilityTimeout > maxVisibility:
		return hermes.Errorf(hermes.Invalid, "visibility timeout must be between 0 and %s", maxVisibility)
	case o.Retention != 0 && (o.Retention < minRetention || o.Retention > maxRetention):
		return hermes.Errorf(hermes.Invalid, "retention must be between %s and %s", minRetention, maxRetention)
	case o.MaxReceives < 0 || o.MaxReceives > 1000:
		return hermes.Errorf(hermes.Invalid, "max receives must be between 1 and 1000")
	case o.DeadLetter != "" && !isURL(o.DeadLetter) && !hermes.ValidQueueName(o.DeadLetter):
		return hermes.Errorf(hermes.Invalid, "dead-letter queue name %q is invalid", o.DeadLetter)
	}
	if o.VisibilityTimeout == 0 {
		o.VisibilityTimeout = defaultVisibility
	}
	if o.Retention == 0 {
		o.Retention = defaultRetention
	}
	if o.DeadLetter != "" && o.MaxReceives == 0 {
		o.MaxReceives = hermes.DefaultMaxReceive
	}
	return nil
}

// CreateQueue creates the queue, or updates the attributes and tags of the
// existing one. A queue given as a URL is created under its name (the URL's
// last segment).
func (q *Queues) CreateQueue(ctx context.Context, name string, o hermes.QueueOptions) error {
	const op = "sqs.CreateQueue"
	name = NameOf(name)
	if err := checkName(name); err != nil {
		return err
	}
	if err := normalize(&o); err != nil {
		return err
	}
	attrs := map[string]string{
		string(types.QueueAttributeNameVisibilityTimeout):             strconv.Itoa(int(seconds(o.VisibilityTimeout))),
		string(types.QueueAttributeNameMessageRetentionPeriod):        strconv.Itoa(int(seconds(o.Retention))),
		string(types.QueueAttributeNameReceiveMessageWaitTimeSeconds): strconv.Itoa(queueWait),
	}
	if o.DeadLetter != "" && NameOf(o.DeadLetter) != name {
		arn, err := q.arn(ctx, op, o.DeadLetter)
		if hermes.IsKind(err, hermes.NotFound) {
			return hermes.Errorf(hermes.NotFound, "dead-letter queue %q not found", o.DeadLetter)
		}
		if err != nil {
			return err
		}
		policy, err := json.Marshal(map[string]any{"deadLetterTargetArn": arn, "maxReceiveCount": o.MaxReceives})
		if err != nil {
			return hermes.E(op, hermes.Internal, err)
		}
		attrs[string(types.QueueAttributeNameRedrivePolicy)] = string(policy)
	}

	u, err := q.url(ctx, op, name)
	switch {
	case hermes.IsKind(err, hermes.NotFound):
		var out *sqssdk.CreateQueueOutput
		err = q.call(op, name, func() (err error) {
			out, err = q.client.CreateQueue(ctx, &sqssdk.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs, Tags: o.Tags})
			return err
		})
		var exists *types.QueueNameExists
		if errors.As(err, &exists) || awsx.Code(err) == "QueueAlreadyExists" {
			// Created meanwhile, with other attributes: update it.
			if u, err = q.url(ctx, op, name); err == nil {
				err = q.update(ctx, op, name, u, attrs, o.Tags)
			}
			return err
		}
		if err != nil {
			return err
		}
		q.remember(name, aws.ToString(out.QueueUrl))
		return nil
	case err != nil:
		return err
	}
	return q.checked(name, q.update(ctx, op, name, u, attrs, o.Tags))
}

// update sets the attributes and tags of an existing queue; a queue
// without a dead-letter queue loses any redrive policy it had.
func (q *Queues) update(ctx context.Context, op, name, u string, attrs, tags map[string]string) error {
	if _, ok := attrs[string(types.QueueAttributeNameRedrivePolicy)]; !ok {
		attrs[string(types.QueueAttributeNameRedrivePolicy)] = ""
	}
	err := q.call(op, name, func() error {
		_, err := q.client.SetQueueAttributes(ctx, &sqssdk.SetQueueAttributesInput{QueueUrl: aws.String(u), Attributes: attrs})
		return err
	})
	if err != nil || len(tags) == 0 {
		return err
	}
	return q.call(op, name, func() error {
		_, err := q.client.TagQueue(ctx, &sqssdk.TagQueueInput{QueueUrl: aws.String(u), Tags: tags})
		return err
	})
}

// arn returns the queue's ARN (for redrive policies).
func (q *Queues) arn(ctx context.Context, op, queue string) (string, error) {
	a, err := q.attributes(ctx, op, queue, types.QueueAttributeNameQueueArn)
	if err != nil {
		return "", err
	}
	arn := a[string(types.QueueAttributeNameQueueArn)]
	if arn == "" {
		return "", hermes.Errorf(hermes.Internal, "queue %q has no ARN", queue)
	}
	return arn, nil
}

// attributes returns the named attributes of the queue.
func (q *Queues) attributes(ctx context.Context, op, queue string, names ...types.QueueAttributeName) (map[string]string, error) {
	u, err := q.url(ctx, op, queue)
	if err != nil {
		return nil, err
	}
	var out *sqssdk.GetQueueAttributesOutput
	err = q.call(op, queue, func() (err error) {
		out, err = q.client.GetQueueAttributes(ctx, &sqssdk.GetQueueAttributesInput{QueueUrl: aws.String(u), AttributeNames: names})
		return err
	})
	if err != nil {
		return nil, q.checked(queue, err)
	}
	return out.Attributes, nil
}

// Attributes returns all the attributes of the queue (for operators and
// tests): VisibilityTimeout, RedrivePolicy, QueueArn…
func (q *Queues) Attributes(ctx context.Context, queue string) (map[string]string, error) {
	return q.attributes(ctx, "sqs.Attributes", queue, types.QueueAttributeNameAll)
}

// Tags returns the tags of the queue.
func (q *Queues) Tags(ctx context.Context, queue string) (map[string]string, error) {
	const op = "sqs.Tags"
	u, err := q.url(ctx, op, queue)
	if err != nil {
		return nil, err
	}
	var out *sqssdk.ListQueueTagsOutput
	err = q.call(op, queue, func() (err error) {
		out, err = q.client.ListQueueTags(ctx, &sqssdk.ListQueueTagsInput{QueueUrl: aws.String(u)})
		return err
	})
	if err != nil {
		return nil, q.checked(queue, err)
	}
	if out.Tags == nil {
		return map[string]string{}, nil
	}
	return out.Tags, nil
}

// DeleteQueue deletes the queue and its messages.
func (q *Queues) DeleteQueue(ctx context.Context, name string) error {
	const op = "sqs.DeleteQueue"
	u, err := q.url(ctx, op, name)
	if err != nil {
		return err
	}
	err = q.call(op, name, func() error {
		_, err := q.client.DeleteQueue(ctx, &sqssdk.DeleteQueueInput{QueueUrl: aws.String(u)})
		return err
	})
	if err == nil || hermes.IsKind(err, hermes.NotFound) {
		q.forget(name)
	}
	return err
}

// ListQueues returns the names of the queues starting with prefix, sorted,
// across every page of ListQueues.
func (q *Queues) ListQueues(ctx context.Context, prefix string) ([]string, error) {
	const op = "sqs.ListQueues"
	names := []string{}
	in := &sqssdk.ListQueuesInput{MaxResults: aws.Int32(1000)}
	if prefix != "" {
		in.QueueNamePrefix = aws.String(prefix)
	}
	for {
		var out *sqssdk.ListQueuesOutput
		err := q.call(op, prefix, func() (err error) {
			out, err = q.client.ListQueues(ctx, in)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, u := range out.QueueUrls {
			if n := NameOf(u); strings.HasPrefix(n, prefix) {
				names = append(names, n)
				q.remember(n, u)
			}
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	sort.Strings(names)
	return names, nil
}

// messageAttributes converts attributes to SQS's, leaving out empty values.
func messageAttributes(attrs map[string]string) (map[string]types.MessageAttributeValue, int, error) {
	size := 0
	var out map[string]types.MessageAttributeValue
	for k, v := range attrs {
		if v == "" {
			continue
		}
		if out == nil {
			out = make(map[string]types.MessageAttributeValue, len(attrs))
		}
		out[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		size += len(k) + len("String") + len(v)
	}
	if len(out) > maxAttributes {
		return nil, 0, hermes.Errorf(hermes.Invalid, "a message has at most %d attributes, not %d", maxAttributes, len(out))
	}
	return out, size, nil
}

// Send sends the message and returns its SQS message id.
func (q *Queues) Send(ctx context.Context, queue, body string, attrs map[string]string) (string, error) {
	const op = "sqs.Send"
	if len(body) > hermes.MaxMessageBytes {
		return "", hermes.Errorf(hermes.TooLarge, "message body is larger than %d bytes", hermes.MaxMessageBytes)
	}
	ma, size, err := messageAttributes(attrs)
	if err != nil {
		return "", err
	}
	if len(body)+size > hermes.MaxMessageBytes {
		return "", hermes.Errorf(hermes.TooLarge, "message body and attributes are larger than %d bytes", hermes.MaxMessageBytes)
	}
	u, err := q.url(ctx, op, queue)
	if err != nil {
		return "", err
	}
	var out *sqssdk.SendMessageOutput
	err = q.call(op, queue, func() (err error) {
		out, err = q.client.SendMessage(ctx, &sqssdk.SendMessageInput{QueueUrl: aws.String(u), MessageBody: aws.String(body), MessageAttributes: ma})
		return err
	})
	if err != nil {
		return "", q.checked(queue, err)
	}
	return aws.ToString(out.MessageId), nil
}

// Receive long-polls for up to max messages (see the package comment on
// rounding to seconds).
func (q *Queues) Receive(ctx context.Context, queue string, max int, wait, visibility time.Duration) ([]hermes.Delivery, error) {
	const op = "sqs.Receive"
	switch {
	case max < 1 || max > hermes.MaxReceiveBatch:
		return nil, hermes.Errorf(hermes.Invalid, "max must be between 1 and %d", hermes.MaxReceiveBatch)
	case wait < 0 || wait > hermes.MaxReceiveWait:
		return nil, hermes.Errorf(hermes.Invalid, "wait must be between 0 and %s", hermes.MaxReceiveWait)
	case visibility < 0 || visibility > maxVisibility:
		return nil, hermes.Errorf(hermes.Invalid, "visibility must be between 0 and %s", maxVisibility)
	}
	if err := ctx.Err(); err != nil {
		return nil, hermes.E(op, hermes.Unavailable, err)
	}
	u, err := q.url(ctx, op, queue)
	if err != nil {
		return nil, err
	}
	ms, err := q.receive(ctx, op, queue, u, int32(max), seconds(wait), seconds(visibility))
	if err != nil {
		return nil, q.checked(queue, err)
	}
	out := make([]hermes.Delivery, 0, len(ms))
	for _, m := range ms {
		d := delivery(m)
		q.receipts.received(u, d.ID, d.Receipt)
		out = append(out, d)
	}
	return out, nil
}

// receive is one ReceiveMessage call; visibility 0 uses the queue's.
func (q *Queues) receive(ctx context.Context, op, queue, u string, max, wait, visibility int32) ([]types.Message, error) {
	in := &sqssdk.ReceiveMessageInput{
		QueueUrl:            aws.String(u),
		MaxNumberOfMessages: max,
		WaitTimeSeconds:     wait,
		// local-aws-sqs ignores MessageSystemAttributeNames: the deprecated
		// AttributeNames ["All"] gets the receive count and send time there.
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}, //lint:ignore SA1019 the emulator reads only this field
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount, types.MessageSystemAttributeNameSentTimestamp,
		},
		MessageAttributeNames: []string{"All"},
	}
	if visibility > 0 {
		in.VisibilityTimeout = visibility
	}
	var opts []func(*sqssdk.Options)
	if wait == 0 {
		opts = append(opts, zeroWait)
	}
	var out *sqssdk.ReceiveMessageOutput
	err := q.call(op, queue, func() (err error) {
		out, err = q.client.ReceiveMessage(ctx, in, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out.Messages, nil
}

func delivery(m types.Message) hermes.Delivery {
	d := hermes.Delivery{ID: aws.ToString(m.MessageId), Body: aws.ToString(m.Body), Receipt: aws.ToString(m.ReceiptHandle)}
	if len(m.MessageAttributes) > 0 {
		d.Attributes = make(map[string]string, len(m.MessageAttributes))
		for k, v := range m.MessageAttributes {
			d.Attributes[k] = aws.ToString(v.StringValue)
		}
	}
	if n, err := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)]); err == nil {
		d.ReceiveCount = n
	}
	if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		d.SentAt = time.UnixMilli(ms).UTC()
	}
	return d
}

// Delete deletes a received message. A receipt of a message that is gone,
// or that this adapter saw received again, is not an error.
func (q *Queues) Delete(ctx context.Context, queue, receipt string) error {
	const op = "sqs.Delete"
	if receipt == "" {
		return hermes.Errorf(hermes.Invalid, "receipt is empty")
	}
	u, err := q.url(ctx, op, queue)
	if err != nil {
		return err
	}
	if q.receipts.stale(receipt) {
		return nil // held under a newer receipt, or deleted already
	}
	err = q.call(op, queue, func() error {
		_, err := q.client.DeleteMessage(ctx, &sqssdk.DeleteMessageInput{QueueUrl: aws.String(u), ReceiptHandle: aws.String(receipt)})
		return err
	})
	if hermes.IsKind(err, hermes.Conflict) {
		err = nil // the message is gone already
	}
	if err == nil {
		q.receipts.deleted(receipt)
	}
	return q.checked(queue, err)
}

// DeleteBatch deletes up to 10 received messages with one
// DeleteMessageBatch, as Delete does each (see deleteBatch).
func (q *Queues) DeleteBatch(ctx context.Context, queue string, receipts []string) error {
	const op = "sqs.DeleteBatch"
	if len(receipts) > hermes.MaxReceiveBatch {
		return hermes.Errorf(hermes.Invalid, "at most %d receipts can be deleted in one batch, not %d", hermes.MaxReceiveBatch, len(receipts))
	}
	if slices.Contains(receipts, "") {
		return hermes.Errorf(hermes.Invalid, "receipt is empty")
	}
	if len(receipts) == 0 {
		return nil
	}
	u, err := q.url(ctx, op, queue)
	if err != nil {
		return err
	}
	return q.checked(queue, q.deleteBatch(ctx, op, queue, u, receipts))
}

// ChangeVisibility hides a received message for d from now, rounded up to
// whole seconds.
func (q *Queues) ChangeVisibility(ctx context.Context, queue, receipt string, d time.Duration) error {
	const op = "sqs.ChangeVisibility"
	if d < 0 || d > maxVisibility {
		return hermes.Errorf(hermes.Invalid, "visibility must be between 0 and %s", maxVisibility)
	}
	if receipt == "" {
		return hermes.Errorf(hermes.Invalid, "receipt is empty")
	}
	u, err := q.url(ctx, op, queue)
	if err != nil {
		return err
	}
	if q.receipts.stale(receipt) {
		return &hermes.Error{Op: op, Kind: hermes.Conflict, Message: "the message is no longer held under this receipt"}
	}
	err = q.call(op, queue, func() error {
		_, err := q.client.ChangeMessageVisibility(ctx, &sqssdk.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(u), ReceiptHandle: aws.String(receipt), VisibilityTimeout: seconds(d),
		})
		return err
	})
	return q.checked(queue, err)
}

// Stats returns the queue's approximate counts.
func (q *Queues) Stats(ctx context.Context, queue string) (hermes.QueueStats, error) {
	a, err := q.attributes(ctx, "sqs.Stats", queue,
		types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)
	if err != nil {
		return hermes.QueueStats{}, err
	}
	var s hermes.QueueStats
	s.Visible, _ = strconv.Atoi(a[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	s.InFlight, _ = strconv.Atoi(a[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return s, nil
}

// Purge deletes every message of the queue (see the package comment).
func (q *Queues) Purge(ctx context.Context, queue string) error {
	const op = "sqs.Purge"
	u, err := q.url(ctx, op, queue)
	if err != nil {
		return err
	}
	err = q.call(op, queue, func() error {
		_, err := q.client.PurgeQueue(ctx, &sqssdk.PurgeQueueInput{QueueUrl: aws.String(u)})
		return err
	})
	var busy *types.PurgeQueueInProgress
	if errors.As(err, &busy) || awsx.Code(err) == "AWS.SimpleQueueService.PurgeQueueInProgress" {
		return q.checked(queue, q.drain(ctx, op, queue, u))
	}
	return q.checked(queue, err)
}

// drain receives and deletes the visible messages of the queue until none
// is left.
func (q *Queues) drain(ctx context.Context, op, queue, u string) error {
	for {
		ms, err := q.receive(ctx, op, queue, u, hermes.MaxReceiveBatch, 0, redriveVisibility)
		if err != nil || len(ms) == 0 {
			return err
		}
		if err := q.deleteBatch(ctx, op, queue, u, receiptsOf(ms)); err != nil {
			return err
		}
	}
}

// receiptsOf returns the receipt handles of ms.
func receiptsOf(ms []types.Message) []string {
	rs := make([]string, len(ms))
	for i, m := range ms {
		rs[i] = aws.ToString(m.ReceiptHandle)
	}
	return rs
}

// deleteBatch deletes received messages by their receipts (at most 10)
// with one DeleteMessageBatch, as Delete does each: a receipt this adapter
// knows to be stale is not sent, one that SQS refuses as stale counts as
// deleted, and the receipts of deleted messages are recorded as such. When
// the call fails, its error is mapped as usual; when only some entries
// fail, the others are deleted and the error says how many failed, of the
// kind they share (Unavailable for faults of SQS), else Internal.
func (q *Queues) deleteBatch(ctx context.Context, op, queue, u string, receipts []string) error {
	entries := make([]types.DeleteMessageBatchRequestEntry, 0, len(receipts))
	for i, r := range receipts {
		if q.receipts.stale(r) {
			continue // held under a newer receipt, or deleted already
		}
		entries = append(entries, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(r)})
	}
	if len(entries) == 0 {
		return nil
	}
	var out *sqssdk.DeleteMessageBatchOutput
	err := q.call(op, queue, func() (err error) {
		out, err = q.client.DeleteMessageBatch(ctx, &sqssdk.DeleteMessageBatchInput{QueueUrl: aws.String(u), Entries: entries})
		return err
	})
	if err != nil {
		return err
	}
	receipt := func(id *string) (string, bool) {
		i, err := strconv.Atoi(aws.ToString(id))
		if err != nil || i < 0 || i >= len(receipts) {
			return "", false
		}
		return receipts[i], true
	}
	answered := map[string]bool{}
	for _, s := range out.Successful {
		if r, ok := receipt(s.Id); ok {
			answered[aws.ToString(s.Id)] = true
			q.receipts.deleted(r)
		}
	}
	var failed []error
	for _, f := range out.Failed {
		r, ok := receipt(f.Id)
		if !ok {
			continue
		}
		answered[aws.ToString(f.Id)] = true
		fault := smithy.FaultServer
		if f.SenderFault {
			fault = smithy.FaultClient
		}
		err := mapErr(op, queue, &smithy.GenericAPIError{Code: aws.ToString(f.Code), Message: aws.ToString(f.Message), Fault: fault})
		if hermes.IsKind(err, hermes.Conflict) {
			q.receipts.deleted(r) // the message is gone already
			continue
		}
		failed = append(failed, err)
	}
	for _, e := range entries {
		if !answered[aws.ToString(e.Id)] {
			failed = append(failed, hermes.E(op, hermes.Internal, errors.New("SQS answered nothing for the entry")))
		}
	}
	if len(failed) == 0 {
		return nil
	}
	kind := hermes.ErrorKind(failed[0])
	for _, err := range failed[1:] {
		if hermes.ErrorKind(err) != kind {
			kind = hermes.Internal
		}
	}
	return &hermes.Error{Op: op, Kind: kind, Message: fmt.Sprintf("%d of %d messages not deleted from queue %q", len(failed), len(receipts), queue), Err: errors.Join(failed...)}
}

// Redrive moves up to max messages from the dead-letter queue to queue
// (see the package comment).
func (q *Queues) Redrive(ctx context.Context, deadLetter, queue string, max int) (int, error) {
	const op = "sqs.Redrive"
	if max < 1 {
		return 0, hermes.Errorf(hermes.Invalid, "max must be at least 1")
	}
	from, err := q.url(ctx, op, deadLetter)
	if err != nil {
		return 0, err
	}
	to, err := q.url(ctx, op, queue)
	if err != nil {
		return 0, err
	}
	moved := 0
	for wait := int32(1); moved < max; wait = 0 {
		// The first receive long-polls (1 s): a short poll samples only some
		// SQS servers and may find nothing in a queue that holds messages.
		ms, err := q.receive(ctx, op, deadLetter, from, int32(min(max-moved, hermes.MaxReceiveBatch)), wait, redriveVisibility)
		if err != nil {
			return moved, q.checked(deadLetter, err)
		}
		if len(ms) == 0 {
			break
		}
		sent, err := q.sendBatch(ctx, op, queue, to, ms)
		if err != nil {
			return moved, q.checked(queue, err)
		}
		if err := q.deleteBatch(ctx, op, deadLetter, from, receiptsOf(sent)); err != nil {
			// Sent but not deleted: they come back to the dead-letter queue
			// after their visibility, and a later redrive sends them again.
			return moved, err
		}
		moved += len(sent)
		if len(sent) < len(ms) {
			break // the rest failed to send; they stay in the dead-letter queue
		}
	}
	return moved, nil
}

// sendBatch sends the bodies and attributes of ms to the queue at u with
// SendMessageBatch and returns the messages that were sent.
func (q *Queues) sendBatch(ctx context.Context, op, queue, u string, ms []types.Message) ([]types.Message, error) {
	entries := make([]types.SendMessageBatchRequestEntry, len(ms))
	for i, m := range ms {
		entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: m.Body, MessageAttributes: m.MessageAttributes}
	}
	var out *sqssdk.SendMessageBatchOutput
	err := q.call(op, queue, func() (err error) {
		out, err = q.client.SendMessageBatch(ctx, &sqssdk.SendMessageBatchInput{QueueUrl: aws.String(u), Entries: entries})
		return err
	})
	if err != nil {
		return nil, err
	}
	sent := make([]types.Message, 0, len(out.Successful))
	for _, s := range out.Successful {
		if i, err := strconv.Atoi(aws.ToString(s.Id)); err == nil && i >= 0 && i < len(ms) {
			sent = append(sent, ms[i])
		}
	}
	if len(sent) == 0 && len(out.Failed) > 0 {
		f := out.Failed[0]
		return nil, hermes.Errorf(hermes.Internal, "sending to queue %q: %s: %s", queue, aws.ToString(f.Code), aws.ToString(f.Message))
	}
	return sent, nil
}
