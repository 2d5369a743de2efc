// Package dynamo is the DynamoDB adapter of hermes.Store: one table (named
// by DYNAMODB_TABLE_NAME) with generic keys and three overloaded global
// secondary indexes. docs/dynamodb.md describes the items and why.
//
// Every state transition is a conditional write (a compare-and-set on the
// item's version, or an existence check); writes that must change two items
// together are transactions; reads the contract needs to see the caller's
// own writes are strongly consistent (the base table only: index queries
// are eventually consistent, as noted where it matters). Every call goes
// through one circuit breaker ("dynamodb"), and AWS failures become
// hermes errors through awsx.Wrap.
package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
)

// Attribute names. Items keep the domain object as JSON in "data" (the
// same encoding as the SQLite adapter) and copy into attributes of their
// own only what keys, indexes and conditions need.
const (
	attrPK     = "PK"
	attrSK     = "SK"
	attrGSI1PK = "GSI1PK"
	attrGSI1SK = "GSI1SK"
	attrGSI2PK = "GSI2PK"
	attrGSI2SK = "GSI2SK"
	attrGSI3PK = "GSI3PK"
	attrGSI3SK = "GSI3SK"
	attrData   = "data"
	attrVer    = "ver" // version of the item, for compare-and-set
	attrTTL    = "ttl" // epoch seconds: garbage collection only (see docs)
)

// Index names.
const (
	gsi1 = "GSI1"
	gsi2 = "GSI2"
	gsi3 = "GSI3"
)

// Store is a hermes.Store on a DynamoDB table.
type Store struct {
	db     *dynamodb.Client
	table  string
	br     *awsx.Breaker
	closed atomic.Bool
}

var _ hermes.Store = (*Store)(nil)

// Options configure New.
type Options struct {
	// Breaker guards every call; nil makes one named "dynamodb". Stores
	// of one process may share one.
	Breaker *awsx.Breaker
}

// NewClient returns a DynamoDB client for cfg (awsx.Load or awsx.Emulator).
func NewClient(cfg aws.Config) *dynamodb.Client {
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		// DynamoDB Local answers without the CRC32 header; the check only
		// logs a warning, and TLS protects real answers.
		o.DisableValidateResponseChecksum = true
	})
}

// New returns the store on table (created by Setup).
func New(client *dynamodb.Client, table string, o Options) *Store {
	br := o.Breaker
	if br == nil {
		br = awsx.NewBreaker("dynamodb", awsx.BreakerOptions{})
	}
	return &Store{db: client, table: table, br: br}
}

// Open returns the store on table with a client for cfg and checks that
// the table answers.
func Open(ctx context.Context, cfg aws.Config, table string) (*Store, error) {
	s := New(NewClient(cfg), table, Options{})
	if err := s.Ping(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Table is the name of the store's table.
func (s *Store) Table() string { return s.table }

// Close makes later calls fail; the client holds nothing to release.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

// Ping describes the table.
func (s *Store) Ping(ctx context.Context) error {
	const op = "dynamo.Ping"
	return awsx.Wrap(op, s.call(ctx, op, func(ctx context.Context) error {
		_, err := s.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &s.table})
		return err
	}))
}

// call runs one SDK call through the breaker: a closed store and a done
// context fail before calling. Its error is the SDK's own (callers map the
// codes that mean something, then awsx.Wrap the rest).
func (s *Store) call(ctx context.Context, op string, fn func(context.Context) error) error {
	if s.closed.Load() {
		return hermes.E(op, hermes.Internal, errors.New("store closed"))
	}
	if err := ctx.Err(); err != nil {
		return hermes.E(op, hermes.Unavailable, err)
	}
	return s.br.Do(func() error { return fn(ctx) })
}

// --- reads ---

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(pk), attrSK: str(sk)}
}

// get reads one item with a strongly consistent read; nil when absent.
func (s *Store) get(ctx context.Context, op, pk, sk string) (map[string]types.AttributeValue, error) {
	var out *dynamodb.GetItemOutput
	err := s.call(ctx, op, func(ctx context.Context) (err error) {
		out, err = s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: key(pk, sk), ConsistentRead: aws.Bool(true)})
		return err
	})
	if err != nil {
		return nil, awsx.Wrap(op, err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

// getData reads one item's JSON into v: NotFound (with message notFound)
// when absent. It returns the item.
func (s *Store) getData(ctx context.Context, op, pk, sk string, v any, notFound string) (map[string]types.AttributeValue, error) {
	item, err := s.get(ctx, op, pk, sk)
	if err != nil {
		return nil, err
	}
	if item == nil {
		return nil, errf(op, hermes.NotFound, "%s", notFound)
	}
	if err := decode(item, v); err != nil {
		return nil, hermes.E(op, hermes.Internal, err)
	}
	return item, nil
}

// query runs q page by page, calling each with the page's items until it
// returns false or the pages end.
func (s *Store) query(ctx context.Context, op string, q *dynamodb.QueryInput, each func([]map[string]types.AttributeValue) bool) error {
	q.TableName = &s.table
	for {
		var out *dynamodb.QueryOutput
		err := s.call(ctx, op, func(ctx context.Context) (err error) {
			out, err = s.db.Query(ctx, q)
			return err
		})
		if err != nil {
			return awsx.Wrap(op, err)
		}
		if !each(out.Items) || len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		q.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// queryAll returns every item of q.
func (s *Store) queryAll(ctx context.Context, op string, q *dynamodb.QueryInput) ([]map[string]types.AttributeValue, error) {
	var all []map[string]types.AttributeValue
	err := s.query(ctx, op, q, func(items []map[string]types.AttributeValue) bool {
		all = append(all, items...)
		return true
	})
	return all, err
}

// partition queries the items of one base-table partition whose sort key
// starts with prefix, strongly consistent, in sort-key order.
func (s *Store) partition(ctx context.Context, op, pk, prefix string) ([]map[string]types.AttributeValue, error) {
	q := &dynamodb.QueryInput{
		ConsistentRead:            aws.Bool(true),
		KeyConditionExpression:    aws.String("PK = :pk AND begins_with(SK, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pk), ":p": str(prefix)},
	}
	if prefix == "" {
		q.KeyConditionExpression = aws.String("PK = :pk")
		delete(q.ExpressionAttributeValues, ":p")
	}
	return s.queryAll(ctx, op, q)
}

// --- writes ---

// put writes item when cond holds (empty: always). It reports false when
// the condition failed.
func (s *Store) put(ctx context.Context, op string, item map[string]types.AttributeValue, cond string, vals map[string]types.AttributeValue) (bool, error) {
	in := &dynamodb.PutItemInput{TableName: &s.table, Item: item}
	if cond != "" {
		in.ConditionExpression = &cond
		in.ExpressionAttributeValues = vals
	}
	err := s.call(ctx, op, func(ctx context.Context) error {
		_, err := s.db.PutItem(ctx, in)
		return err
	})
	if isConditionFailed(err) {
		return false, nil
	}
	return err == nil, awsx.Wrap(op, err)
}

// transact runs a transaction. It retries a transaction that another one
// got in the way of (TransactionConflict) a few times; a transaction
// cancelled by a failed condition gives the cancellation reasons (with a
// nil error), one per item in order: see failed and anyFailed. A Put or
// Update asked for ReturnValuesOnConditionCheckFailure has the existing
// item in its reason.
func (s *Store) transact(ctx context.Context, op string, items []types.TransactWriteItem) ([]types.CancellationReason, error) {
	for attempt := 0; ; attempt++ {
		err := s.call(ctx, op, func(ctx context.Context) error {
			_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
			return err
		})
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			return nil, awsx.Wrap(op, err)
		}
		conflict := false
		for _, r := range tce.CancellationReasons {
			switch aws.ToString(r.Code) {
			case "TransactionConflict":
				conflict = true
			case "", "None", "ConditionalCheckFailed":
			default:
				// Throttling, validation: not a refusal of the contract.
				return nil, awsx.Wrap(op, err)
			}
		}
		if !conflict {
			if len(tce.CancellationReasons) == 0 {
				return nil, awsx.Wrap(op, err)
			}
			return tce.CancellationReasons, nil
		}
		if attempt >= 8 {
			return nil, hermes.E(op, hermes.Unavailable, err)
		}
		if err := sleep(ctx, time.Duration(5+rand.IntN(10<<attempt))*time.Millisecond); err != nil {
			return nil, hermes.E(op, hermes.Unavailable, err)
		}
	}
}

// failed reports whether the transaction's item i failed its condition.
func failed(reasons []types.CancellationReason, i int) bool {
	return i < len(reasons) && aws.ToString(reasons[i].Code) == "ConditionalCheckFailed"
}

// anyFailed reports whether any item failed its condition.
func anyFailed(reasons []types.CancellationReason) bool {
	for i := range reasons {
		if failed(reasons, i) {
			return true
		}
	}
	return false
}

// deleteAll removes the items with the given keys, 25 at a time.
func (s *Store) deleteAll(ctx context.Context, op string, keys []map[string]types.AttributeValue) error {
	for len(keys) > 0 {
		n := min(len(keys), 25)
		reqs := make([]types.WriteRequest, n)
		for i, k := range keys[:n] {
			reqs[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: k}}
		}
		keys = keys[n:]
		for attempt := 0; len(reqs) > 0; attempt++ {
			var out *dynamodb.BatchWriteItemOutput
			err := s.call(ctx, op, func(ctx context.Context) (err error) {
				out, err = s.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{s.table: reqs}})
				return err
			})
			if err != nil {
				return awsx.Wrap(op, err)
			}
			reqs = out.UnprocessedItems[s.table]
			if len(reqs) > 0 {
				if attempt >= 10 {
					return hermes.E(op, hermes.Unavailable, errors.New("batch delete: items left unprocessed"))
				}
				if err := sleep(ctx, time.Duration(10<<min(attempt, 6))*time.Millisecond); err != nil {
					return hermes.E(op, hermes.Unavailable, err)
				}
			}
		}
	}
	return nil
}

// keyOf returns the primary key of an item.
func keyOf(item map[string]types.AttributeValue) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: item[attrPK], attrSK: item[attrSK]}
}

func isConditionFailed(err error) bool {
	var ce *types.ConditionalCheckFailedException
	return errors.As(err, &ce)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// --- attribute values ---

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: fmt.Sprint(v)}
}

func getS(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getN(item map[string]types.AttributeValue, name string) int64 {
	if v, ok := item[name].(*types.AttributeValueMemberN); ok {
		var n int64
		fmt.Sscan(v.Value, &n)
		return n
	}
	return 0
}

func getBool(item map[string]types.AttributeValue, name string) bool {
	v, ok := item[name].(*types.AttributeValueMemberBOOL)
	return ok && v.Value
}

// encode returns the JSON of v as the data attribute's value.
func encode(v any) types.AttributeValue {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("dynamo: encoding %T: %v", v, err)) // plain structs always encode
	}
	return str(string(b))
}

func decode(item map[string]types.AttributeValue, v any) error {
	return json.Unmarshal([]byte(getS(item, attrData)), v)
}

// --- times ---

// norm is the form every stored time takes: UTC, whole milliseconds.
func norm(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func ms(t time.Time) int64 { return t.UnixMilli() }

// sortKey is a sort key that orders by time, then id: the time as 15
// zero-padded digits of Unix milliseconds.
func sortKey(t time.Time, id string) string { return fmt.Sprintf("%015d#%s", max(ms(t), 0), id) }

// before is the smallest sort key after every sortKey at or before t.
func before(t time.Time) string { return fmt.Sprintf("%015d", max(ms(t), 0)+1) }

// errf returns a hermes.Error of op with a caller-safe message.
func errf(op string, kind hermes.Kind, format string, args ...any) error {
	return &hermes.Error{Op: op, Kind: kind, Message: fmt.Sprintf(format, args...)}
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
