package dynamo

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
)

// Keys of intake records, outbox items and containers (docs/dynamodb.md).
const (
	skIntake      = "INTAKE"
	skOutbox      = "OUTBOX"
	skContainer   = "CONTAINER"
	outboxAllPK   = "OUTBOX"     // GSI1: every item by CreatedAt
	outboxDuePK   = "OUTBOX-DUE" // GSI2: pending items by NextAttemptAt
	containersPK  = "CONTAINERS" // GSI1: every container by id
	attrRaw       = "raw"
	attrNextAt    = "nextAt"     // outbox: NextAttemptAt, Unix ms
	attrClaimedTo = "claimUntil" // outbox: end of the current claim, Unix ms
)

// IntakeRetention is how long intake records are kept (their TTL): longer
// than any channel redelivers a message (SQS keeps messages 14 days at
// most).
const IntakeRetention = 15 * 24 * time.Hour

func intakePK(channel, id string) string           { return "INTAKE#" + channel + "#" + id }
func outboxPK(id string) string                    { return "OUTBOX#" + id }
func outboxStatusPK(st hermes.OutboxStatus) string { return "OSTATUS#" + string(st) }
func containerPK(id string) string                 { return "CONTAINER#" + id }

// --- intake ---

// ClaimMessage is one conditional update: it takes the record when there
// is none, or when its claim passed without completing.
func (s *Store) ClaimMessage(ctx context.Context, channel, id string, now time.Time, lease time.Duration) (hermes.DedupState, error) {
	const op = "dynamo.ClaimMessage"
	now = norm(now)
	until := norm(now.Add(lease))
	var old map[string]types.AttributeValue
	err := s.call(ctx, op, func(ctx context.Context) error {
		_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: &s.table, Key: key(intakePK(channel, id), skIntake),
			UpdateExpression:         aws.String("SET #u = :u, #d = :f, #t = :t"),
			ConditionExpression:      aws.String("attribute_not_exists(PK) OR (#d = :f AND #u <= :now)"),
			ExpressionAttributeNames: map[string]string{"#u": "until", "#d": "done", "#t": attrTTL},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":u": num(ms(until)), ":f": &types.AttributeValueMemberBOOL{Value: false},
				":t": num(until.Add(IntakeRetention).Unix()), ":now": num(ms(now)),
			},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		var ce *types.ConditionalCheckFailedException
		if errors.As(err, &ce) {
			old = ce.Item
		}
		return err
	})
	if err == nil {
		return hermes.DedupNew, nil
	}
	if !isConditionFailed(err) {
		return "", awsx.Wrap(op, err)
	}
	if len(old) == 0 { // an emulator that does not return the item
		if old, err = s.get(ctx, op, intakePK(channel, id), skIntake); err != nil {
			return "", err
		}
	}
	if getBool(old, "done") {
		return hermes.DedupDone, nil
	}
	return hermes.DedupInProgress, nil
}

func (s *Store) CompleteMessage(ctx context.Context, channel, id string, now time.Time) error {
	const op = "dynamo.CompleteMessage"
	item := key(intakePK(channel, id), skIntake)
	item["done"] = &types.AttributeValueMemberBOOL{Value: true}
	item[attrTTL] = num(norm(now).Add(IntakeRetention).Unix())
	_, err := s.put(ctx, op, item, "", nil)
	return err
}

func (s *Store) ReleaseMessage(ctx context.Context, channel, id string) error {
	const op = "dynamo.ReleaseMessage"
	err := s.call(ctx, op, func(ctx context.Context) error {
		_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName: &s.table, Key: key(intakePK(channel, id), skIntake),
			ConditionExpression:       aws.String("#d = :f"),
			ExpressionAttributeNames:  map[string]string{"#d": "done"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":f": &types.AttributeValueMemberBOOL{Value: false}},
		})
		return err
	})
	if isConditionFailed(err) { // completed, or no claim: nothing to give up
		return nil
	}
	return awsx.Wrap(op, err)
}

// --- outbox ---

func outboxItem(it *hermes.OutboxItem, ver int64) map[string]types.AttributeValue {
	item := key(outboxPK(it.ID), skOutbox)
	item[attrData], item[attrVer], item[attrStatus] = encode(it), num(ver), str(string(it.Status))
	if len(it.Raw) > 0 {
		item[attrRaw] = &types.AttributeValueMemberB{Value: it.Raw}
	}
	item[attrNextAt] = num(ms(it.NextAttemptAt))
	item[attrGSI1PK], item[attrGSI1SK] = str(outboxAllPK), str(sortKey(it.CreatedAt, it.ID))
	if it.Status == hermes.OutboxPending {
		item[attrGSI2PK], item[attrGSI2SK] = str(outboxDuePK), str(sortKey(it.NextAttemptAt, it.ID))
	}
	item[attrGSI3PK], item[attrGSI3SK] = str(outboxStatusPK(it.Status)), str(sortKey(it.CreatedAt, it.ID))
	return item
}

func decodeOutbox(item map[string]types.AttributeValue) (*hermes.OutboxItem, error) {
	it := new(hermes.OutboxItem)
	if err := decode(item, it); err != nil {
		return nil, err
	}
	if b, ok := item[attrRaw].(*types.AttributeValueMemberB); ok {
		it.Raw = b.Value
	}
	return it, nil
}

func decodeOutboxes(op string, items []map[string]types.AttributeValue) ([]*hermes.OutboxItem, error) {
	out := make([]*hermes.OutboxItem, 0, len(items))
	for _, item := range items {
		it, err := decodeOutbox(item)
		if err != nil {
			return nil, hermes.E(op, hermes.Internal, err)
		}
		out = append(out, it)
	}
	return out, nil
}

func (s *Store) EnqueueOutbox(ctx context.Context, items ...*hermes.OutboxItem) error {
	const op = "dynamo.EnqueueOutbox"
	if err := ctx.Err(); err != nil {
		return hermes.E(op, hermes.Unavailable, err)
	}
	for _, it := range items {
		x := *it
		x.Status = hermes.OutboxPending
		x.CreatedAt, x.NextAttemptAt = norm(it.CreatedAt), norm(it.NextAttemptAt)
		// Unique by id: an item stored already stays as it is.
		if _, err := s.put(ctx, op, outboxItem(&x, 1), "attribute_not_exists(PK)", nil); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) GetOutbox(ctx context.Context, id string) (*hermes.OutboxItem, error) {
	const op = "dynamo.GetOutbox"
	item, err := s.get(ctx, op, outboxPK(id), skOutbox)
	if err != nil {
		return nil, err
	}
	if item == nil {
		return nil, errf(op, hermes.NotFound, "outbox item %q not found", id)
	}
	it, err := decodeOutbox(item)
	if err != nil {
		return nil, hermes.E(op, hermes.Internal, err)
	}
	return it, nil
}

// ListOutbox queries every item (GSI1) or one status's (GSI3) by CreatedAt.
func (s *Store) ListOutbox(ctx context.Context, status hermes.OutboxStatus, limit int, cursor string) ([]*hermes.OutboxItem, string, error) {
	const op = "dynamo.ListOutbox"
	index, ipk, isk, partition := gsi1, attrGSI1PK, attrGSI1SK, outboxAllPK
	if status != "" {
		index, ipk, isk, partition = gsi3, attrGSI3PK, attrGSI3SK, outboxStatusPK(status)
	}
	q := &dynamodb.QueryInput{
		IndexName:                 aws.String(index),
		KeyConditionExpression:    aws.String(ipk + " = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(partition)},
	}
	items, next, err := s.page(ctx, op, q, ipk, isk, limit, cursor, func(c string) (map[string]types.AttributeValue, error) {
		return decodeCursor(op, c, ipk, isk, partition, "OUTBOX#", skOutbox)
	})
	if err != nil {
		return nil, "", err
	}
	out, err := decodeOutboxes(op, items)
	return out, next, err
}

// ClaimOutbox walks the pending items by NextAttemptAt (GSI2) and claims
// each with a conditional update, so that of concurrent senders exactly
// one gets an item.
func (s *Store) ClaimOutbox(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*hermes.OutboxItem, error) {
	const op = "dynamo.ClaimOutbox"
	now = norm(now)
	out := []*hermes.OutboxItem{}
	var claimErr error
	err := s.query(ctx, op, &dynamodb.QueryInput{
		IndexName:                 aws.String(gsi2),
		KeyConditionExpression:    aws.String("GSI2PK = :p AND GSI2SK < :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(outboxDuePK), ":t": str(before(now))},
	}, func(items []map[string]types.AttributeValue) bool {
		for _, item := range items {
			if len(out) >= limit {
				return false
			}
			if _, held := item[attrClaimedTo]; held && getN(item, attrClaimedTo) > ms(now) {
				continue
			}
			var claimed map[string]types.AttributeValue
			err := s.call(ctx, op, func(ctx context.Context) error {
				res, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
					TableName: &s.table, Key: keyOf(item),
					UpdateExpression: aws.String("SET #c = :until"),
					ConditionExpression: aws.String("#s = :pending AND #n <= :now AND " +
						"(attribute_not_exists(#c) OR #c <= :now)"),
					ExpressionAttributeNames: map[string]string{"#c": attrClaimedTo, "#s": attrStatus, "#n": attrNextAt},
					ExpressionAttributeValues: map[string]types.AttributeValue{
						":until": num(ms(now.Add(lease))), ":pending": str(string(hermes.OutboxPending)), ":now": num(ms(now)),
					},
					ReturnValues: types.ReturnValueAllNew,
				})
				if err == nil {
					claimed = res.Attributes
				}
				return err
			})
			if isConditionFailed(err) {
				continue // another sender has it, or it changed
			}
			if err != nil {
				claimErr = awsx.Wrap(op, err)
				return false
			}
			it, err := decodeOutbox(claimed)
			if err != nil {
				claimErr = hermes.E(op, hermes.Internal, err)
				return false
			}
			out = append(out, it)
		}
		return len(out) < limit
	})
	if err == nil {
		err = claimErr
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) FinishOutbox(ctx context.Context, id string, status hermes.OutboxStatus, now, retryAt time.Time, lastError string) error {
	const op = "dynamo.FinishOutbox"
	switch status {
	case hermes.OutboxSent, hermes.OutboxPending, hermes.OutboxFailed:
	default:
		return errf(op, hermes.Invalid, "unknown outbox status %q", status)
	}
	for {
		item, err := s.get(ctx, op, outboxPK(id), skOutbox)
		if err != nil {
			return err
		}
		if item == nil {
			return errf(op, hermes.NotFound, "outbox item %q not found", id)
		}
		it, err := decodeOutbox(item)
		if err != nil {
			return hermes.E(op, hermes.Internal, err)
		}
		it.Status, it.Attempts, it.LastError = status, it.Attempts+1, lastError
		switch status {
		case hermes.OutboxSent:
			t := norm(now)
			it.SentAt = &t
		case hermes.OutboxPending:
			it.NextAttemptAt = norm(retryAt)
		}
		ver := getN(item, attrVer)
		// The new item has no claim: a retry is due at retryAt.
		ok, err := s.put(ctx, op, outboxItem(it, ver+1), "ver = :v", map[string]types.AttributeValue{":v": num(ver)})
		if err != nil || ok {
			return err
		}
	}
}

// --- containers ---

func containerItem(c *hermes.Container) map[string]types.AttributeValue {
	item := key(containerPK(c.ID), skContainer)
	item[attrData], item[attrVer] = encode(c), num(c.Version)
	item[attrGSI1PK], item[attrGSI1SK] = str(containersPK), str(c.ID)
	return item
}

func normContainer(c *hermes.Container) *hermes.Container {
	x := *c
	x.CreatedAt, x.UpdatedAt = norm(c.CreatedAt), norm(c.UpdatedAt)
	if c.LastHeartbeat != nil {
		t := norm(*c.LastHeartbeat)
		x.LastHeartbeat = &t
	}
	if c.QueuesStateAt != nil {
		t := norm(*c.QueuesStateAt)
		x.QueuesStateAt = &t
	}
	return &x
}

func decodeContainer(item map[string]types.AttributeValue) (*hermes.Container, error) {
	c := new(hermes.Container)
	if err := decode(item, c); err != nil {
		return nil, err
	}
	c.Version = getN(item, attrVer)
	return c, nil
}

func (s *Store) EnsureContainer(ctx context.Context, c *hermes.Container) (*hermes.Container, error) {
	const op = "dynamo.EnsureContainer"
	x := normContainer(c)
	x.Version = 1
	if _, err := s.put(ctx, op, containerItem(x), "attribute_not_exists(PK)", nil); err != nil {
		return nil, err
	}
	return s.getContainer(ctx, op, c.ID)
}

func (s *Store) GetContainer(ctx context.Context, id string) (*hermes.Container, error) {
	return s.getContainer(ctx, "dynamo.GetContainer", id)
}

func (s *Store) getContainer(ctx context.Context, op, id string) (*hermes.Container, error) {
	item, err := s.get(ctx, op, containerPK(id), skContainer)
	if err != nil {
		return nil, err
	}
	if item == nil {
		return nil, errf(op, hermes.NotFound, "container %q not found", id)
	}
	c, err := decodeContainer(item)
	if err != nil {
		return nil, hermes.E(op, hermes.Internal, err)
	}
	return c, nil
}

// ListContainers queries GSI1 (eventually consistent).
func (s *Store) ListContainers(ctx context.Context) ([]*hermes.Container, error) {
	const op = "dynamo.ListContainers"
	items, err := s.queryAll(ctx, op, &dynamodb.QueryInput{
		IndexName:                 aws.String(gsi1),
		KeyConditionExpression:    aws.String("GSI1PK = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(containersPK)},
	})
	if err != nil {
		return nil, err
	}
	out := make([]*hermes.Container, 0, len(items))
	for _, item := range items {
		c, err := decodeContainer(item)
		if err != nil {
			return nil, hermes.E(op, hermes.Internal, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func (s *Store) UpdateContainer(ctx context.Context, id string, fn func(*hermes.Container) error) (*hermes.Container, error) {
	const op = "dynamo.UpdateContainer"
	for {
		cur, err := s.getContainer(ctx, op, id)
		if err != nil {
			return nil, err
		}
		old := cur.Version
		if err := fn(cur); err != nil {
			return nil, err
		}
		x := normContainer(cur)
		x.ID, x.Version = id, old+1
		ok, err := s.put(ctx, op, containerItem(x), "ver = :v", map[string]types.AttributeValue{":v": num(old)})
		if err != nil {
			return nil, err
		}
		if ok {
			return x, nil
		}
	}
}
