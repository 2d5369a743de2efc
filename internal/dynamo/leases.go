package dynamo

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
)

var _ hermes.Leases = (*Store)(nil)

// Lease items: PK "LEASE#name", SK "LEASE", holder and expiry (Unix
// milliseconds) as attributes.
const (
	attrHolder  = "holder"
	attrExpires = "expiresAt"
)

func leaseKey(name string) map[string]types.AttributeValue { return key("LEASE#"+name, "LEASE") }

// AcquireLease implements hermes.Leases with one conditional put: the
// item is written when it is absent, this holder's, or expired.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	const op = "dynamo.AcquireLease"
	item := leaseKey(name)
	item[attrHolder] = str(holder)
	item[attrExpires] = num(now.Add(ttl).UnixMilli())
	err := s.call(ctx, op, func(ctx context.Context) error {
		_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:           &s.table,
			Item:                item,
			ConditionExpression: aws.String("attribute_not_exists(PK) OR #h = :h OR #e <= :now"),
			ExpressionAttributeNames: map[string]string{
				"#h": attrHolder, "#e": attrExpires,
			},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":h": str(holder), ":now": num(now.UnixMilli()),
			},
		})
		return err
	})
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, awsx.Wrap(op, err)
	}
	return true, nil
}

// ReleaseLease implements hermes.Leases: a conditional delete by the holder.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	const op = "dynamo.ReleaseLease"
	err := s.call(ctx, op, func(ctx context.Context) error {
		_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName:                 &s.table,
			Key:                       leaseKey(name),
			ConditionExpression:       aws.String("#h = :h"),
			ExpressionAttributeNames:  map[string]string{"#h": attrHolder},
			ExpressionAttributeValues: map[string]types.AttributeValue{":h": str(holder)},
		})
		return err
	})
	if isConditionFailed(err) {
		return nil
	}
	return awsx.Wrap(op, err)
}
