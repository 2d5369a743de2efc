package dynamo

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
)

// Keys of threads and sessions (docs/dynamodb.md).
const (
	skThread      = "THREAD"
	skSession     = "SESSION"
	historyPrefix = "H#"
	attrLive      = "liveSession" // on a thread item: its live session's id
	attrStatus    = "status"
)

func ownerPK(clientID string) string          { return "OWNER#" + clientID }
func threadPK(id string) string               { return "THREAD#" + id }
func sessionPK(id string) string              { return "SESSION#" + id }
func clientSessionsPK(clientID string) string { return "CSESSIONS#" + clientID }
func statusPK(st hermes.SessionStatus) string { return "STATUS#" + string(st) }
func userThreadsPK(client, project, user string) string {
	return "UTHREADS#" + client + "#" + project + "#" + user
}

var liveStatuses = []hermes.SessionStatus{hermes.SessionInitializing, hermes.SessionActive, hermes.SessionDraining}

// --- threads ---

func threadItem(t *hermes.Thread, ver int64) map[string]types.AttributeValue {
	item := key(threadPK(t.ID), skThread)
	item[attrData], item[attrVer] = encode(t), num(ver)
	item[attrGSI1PK] = str(userThreadsPK(t.ClientID, t.ProjectID, t.UserID))
	item[attrGSI1SK] = str(sortKey(t.UpdatedAt, t.ID))
	item[attrGSI3PK], item[attrGSI3SK] = str(ownerPK(t.ClientID)), str(threadPK(t.ID))
	return item
}

// lookupItem is a token or reference item pointing at a thread.
func lookupItem(pk, sk string, t *hermes.Thread) map[string]types.AttributeValue {
	item := key(pk, sk)
	item["threadId"] = str(t.ID)
	item[attrGSI3PK], item[attrGSI3SK] = str(ownerPK(t.ClientID)), str(pk)
	return item
}

func (s *Store) CreateThread(ctx context.Context, t *hermes.Thread) error {
	const op = "dynamo.CreateThread"
	x := *t
	x.CreatedAt, x.UpdatedAt = norm(t.CreatedAt), norm(t.UpdatedAt)
	w := []types.TransactWriteItem{putNew(s.table, threadItem(&x, 1))}
	if x.Token != "" {
		w = append(w, putNew(s.table, lookupItem("TOKEN#"+x.Token, "TOKEN", &x)))
	}
	reasons, err := s.transact(ctx, op, w)
	switch {
	case err != nil:
		return err
	case failed(reasons, 0):
		return errf(op, hermes.Conflict, "thread %q already exists", t.ID)
	case failed(reasons, 1):
		return errf(op, hermes.Conflict, "another thread holds the token of thread %q", t.ID)
	}
	t.CreatedAt, t.UpdatedAt = x.CreatedAt, x.UpdatedAt
	return nil
}

func (s *Store) GetThread(ctx context.Context, id string) (*hermes.Thread, error) {
	t := new(hermes.Thread)
	if _, err := s.getData(ctx, "dynamo.GetThread", threadPK(id), skThread, t, "thread "+quote(id)+" not found"); err != nil {
		return nil, err
	}
	return t, nil
}

// threadVia returns the thread a lookup item points at.
func (s *Store) threadVia(ctx context.Context, op, pk, sk, notFound string) (*hermes.Thread, error) {
	item, err := s.get(ctx, op, pk, sk)
	if err != nil {
		return nil, err
	}
	if item == nil {
		return nil, errf(op, hermes.NotFound, "%s", notFound)
	}
	t, err := s.GetThread(ctx, getS(item, "threadId"))
	if hermes.IsKind(err, hermes.NotFound) {
		return nil, errf(op, hermes.NotFound, "%s", notFound)
	}
	return t, err
}

func (s *Store) ThreadByToken(ctx context.Context, token string) (*hermes.Thread, error) {
	const op = "dynamo.ThreadByToken"
	if token == "" {
		return nil, errf(op, hermes.NotFound, "no thread has an empty token")
	}
	return s.threadVia(ctx, op, "TOKEN#"+token, "TOKEN", "no thread has token "+quote(token))
}

func (s *Store) AddThreadRefs(ctx context.Context, threadID string, refs ...string) error {
	const op = "dynamo.AddThreadRefs"
	t, err := s.GetThread(ctx, threadID)
	if err != nil {
		return hermes.E(op, hermes.ErrorKind(err), err)
	}
	for _, r := range refs {
		// The first thread keeps a reference: a failed condition is fine.
		if _, err := s.put(ctx, op, lookupItem("REF#"+r, "REF", t), "attribute_not_exists(PK)", nil); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) ThreadByRef(ctx context.Context, ref string) (*hermes.Thread, error) {
	return s.threadVia(ctx, "dynamo.ThreadByRef", "REF#"+ref, "REF", "no thread has reference "+quote(ref))
}

// LatestThread queries the user's threads on the project by UpdatedAt
// (index GSI1; eventually consistent: a touch a moment ago may not count
// yet).
func (s *Store) LatestThread(ctx context.Context, clientID, projectID, userID string) (*hermes.Thread, error) {
	const op = "dynamo.LatestThread"
	var found map[string]types.AttributeValue
	err := s.query(ctx, op, &dynamodb.QueryInput{
		IndexName:                 aws.String(gsi1),
		KeyConditionExpression:    aws.String("GSI1PK = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(userThreadsPK(clientID, projectID, userID))},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(1),
	}, func(items []map[string]types.AttributeValue) bool {
		if len(items) > 0 {
			found = items[0]
		}
		return found == nil
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, errf(op, hermes.NotFound, "user %q has no thread on project %q", userID, projectID)
	}
	t := new(hermes.Thread)
	if err := decode(found, t); err != nil {
		return nil, hermes.E(op, hermes.Internal, err)
	}
	return t, nil
}

func (s *Store) TouchThread(ctx context.Context, id string, now time.Time) error {
	const op = "dynamo.TouchThread"
	for {
		t := new(hermes.Thread)
		item, err := s.getData(ctx, op, threadPK(id), skThread, t, "thread "+quote(id)+" not found")
		if err != nil {
			return err
		}
		t.UpdatedAt = norm(now)
		ver := getN(item, attrVer)
		// An update, not a put: the thread's live-session mark stays.
		err = s.call(ctx, op, func(ctx context.Context) error {
			_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName: &s.table, Key: key(threadPK(id), skThread),
				UpdateExpression:         aws.String("SET #d = :d, GSI1SK = :k, ver = :nv"),
				ConditionExpression:      aws.String("ver = :v"),
				ExpressionAttributeNames: map[string]string{"#d": attrData},
				ExpressionAttributeValues: map[string]types.AttributeValue{
					":d": encode(t), ":k": str(sortKey(t.UpdatedAt, t.ID)), ":nv": num(ver + 1), ":v": num(ver),
				},
			})
			return err
		})
		if isConditionFailed(err) {
			continue
		}
		return awsx.Wrap(op, err)
	}
}

// --- sessions ---

func sessionItem(x *hermes.Session) map[string]types.AttributeValue {
	item := key(sessionPK(x.ID), skSession)
	item[attrData], item[attrVer], item[attrStatus] = encode(x), num(x.Version), str(string(x.Status))
	item[attrGSI1PK], item[attrGSI1SK] = str(clientSessionsPK(x.ClientID)), str(sortKey(x.CreatedAt, x.ID))
	item[attrGSI2PK], item[attrGSI2SK] = str(statusPK(x.Status)), str(sortKey(x.ExpiresAt, x.ID))
	item[attrGSI3PK], item[attrGSI3SK] = str(ownerPK(x.ClientID)), str(sessionPK(x.ID))
	return item
}

// liveMark is the session's item in its client's partition while it is
// live: deletes of the client, project or user look for them.
func liveMark(x *hermes.Session) map[string]types.AttributeValue {
	item := key(clientPK(x.ClientID), liveSK(x.ID))
	item["projectId"], item["userId"], item["threadId"] = str(x.ProjectID), str(x.UserID), str(x.ThreadID)
	return item
}

func historyItem(h *hermes.HistoryEntry) map[string]types.AttributeValue {
	item := key(sessionPK(h.SessionID), historyPrefix+h.ID)
	item[attrData] = encode(h)
	return item
}

func normSession(s *hermes.Session) *hermes.Session {
	x := *s
	x.CreatedAt, x.LastActivity, x.ExpiresAt = norm(s.CreatedAt), norm(s.LastActivity), norm(s.ExpiresAt)
	if s.LastResult != nil {
		r := *s.LastResult
		r.FinishedAt = norm(r.FinishedAt)
		x.LastResult = &r
	}
	return &x
}

func normEntry(h *hermes.HistoryEntry) *hermes.HistoryEntry {
	x := *h
	x.CreatedAt = norm(h.CreatedAt)
	return &x
}

// CreateSession is one transaction: the thread's live-session mark (the
// thread must exist, and have no live session when the new one is live),
// the session, its mark in the client's partition and its first history.
func (s *Store) CreateSession(ctx context.Context, sess *hermes.Session, history ...*hermes.HistoryEntry) error {
	const op = "dynamo.CreateSession"
	x := normSession(sess)
	x.Version = 1
	live := x.Status.Live()
	// The thread must exist; when the session is live, the thread gets
	// its mark unless another live session has it.
	thread := types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName: &s.table, Key: key(threadPK(x.ThreadID), skThread),
		ConditionExpression:                 aws.String("attribute_exists(PK)"),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}}
	if live {
		thread = types.TransactWriteItem{Update: &types.Update{
			TableName: &s.table, Key: key(threadPK(x.ThreadID), skThread),
			ConditionExpression:                 aws.String("attribute_exists(PK) AND attribute_not_exists(#l)"),
			UpdateExpression:                    aws.String("SET #l = :s"),
			ExpressionAttributeNames:            map[string]string{"#l": attrLive},
			ExpressionAttributeValues:           map[string]types.AttributeValue{":s": str(x.ID)},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}}
	}
	w := []types.TransactWriteItem{thread, putNew(s.table, sessionItem(x))}
	if live {
		w = append(w, types.TransactWriteItem{Put: &types.Put{TableName: &s.table, Item: liveMark(x)}})
	}
	seen := map[string]bool{}
	for _, h := range history {
		if !seen[h.ID] {
			seen[h.ID] = true
			w = append(w, types.TransactWriteItem{Put: &types.Put{TableName: &s.table, Item: historyItem(normEntry(h))}})
		}
	}
	reasons, err := s.transact(ctx, op, w)
	switch {
	case err != nil:
		return err
	case failed(reasons, 0) && len(reasons[0].Item) == 0:
		return errf(op, hermes.NotFound, "thread %q not found", x.ThreadID)
	case failed(reasons, 0):
		return errf(op, hermes.Conflict, "thread %q already has a live session", x.ThreadID)
	case failed(reasons, 1):
		return errf(op, hermes.Conflict, "session %q already exists", x.ID)
	case anyFailed(reasons):
		return errf(op, hermes.Conflict, "session %q conflicts with stored data", x.ID)
	}
	return nil
}

func (s *Store) GetSession(ctx context.Context, id string) (*hermes.Session, error) {
	return s.getSession(ctx, "dynamo.GetSession", id)
}

func (s *Store) getSession(ctx context.Context, op, id string) (*hermes.Session, error) {
	x := new(hermes.Session)
	item, err := s.getData(ctx, op, sessionPK(id), skSession, x, "session "+quote(id)+" not found")
	if err != nil {
		return nil, err
	}
	x.Version = getN(item, attrVer)
	return x, nil
}

func (s *Store) LiveSessionForThread(ctx context.Context, threadID string) (*hermes.Session, error) {
	const op = "dynamo.LiveSessionForThread"
	notFound := errf(op, hermes.NotFound, "thread %q has no live session", threadID)
	item, err := s.get(ctx, op, threadPK(threadID), skThread)
	if err != nil {
		return nil, err
	}
	id := getS(item, attrLive)
	if id == "" {
		return nil, notFound
	}
	x, err := s.getSession(ctx, op, id)
	if hermes.IsKind(err, hermes.NotFound) || err == nil && !x.Status.Live() {
		return nil, notFound
	}
	return x, err
}

// UpdateSession is a compare-and-set on the session's version; a session
// that stops (or starts) being live moves its marks in the same
// transaction.
func (s *Store) UpdateSession(ctx context.Context, id string, fn func(*hermes.Session) error) (*hermes.Session, error) {
	const op = "dynamo.UpdateSession"
	for {
		cur, err := s.getSession(ctx, op, id)
		if err != nil {
			return nil, err
		}
		old := *cur
		if err := fn(cur); err != nil {
			return nil, err
		}
		x := normSession(cur)
		x.ID, x.Version = id, old.Version+1
		put := putIfVersion(s.table, sessionItem(x), old.Version)
		var reasons []types.CancellationReason
		switch wasLive, isLive := old.Status.Live(), x.Status.Live(); {
		case wasLive && !isLive:
			reasons, err = s.transact(ctx, op, []types.TransactWriteItem{put,
				{Update: &types.Update{
					TableName: &s.table, Key: key(threadPK(old.ThreadID), skThread),
					UpdateExpression:          aws.String("REMOVE #l"),
					ConditionExpression:       aws.String("attribute_exists(PK) AND (#l = :s OR attribute_not_exists(#l))"),
					ExpressionAttributeNames:  map[string]string{"#l": attrLive},
					ExpressionAttributeValues: map[string]types.AttributeValue{":s": str(id)},
				}},
				{Delete: &types.Delete{TableName: &s.table, Key: key(clientPK(old.ClientID), liveSK(id))}},
			})
		case !wasLive && isLive:
			reasons, err = s.transact(ctx, op, []types.TransactWriteItem{put,
				{Update: &types.Update{
					TableName: &s.table, Key: key(threadPK(x.ThreadID), skThread),
					UpdateExpression:          aws.String("SET #l = :s"),
					ConditionExpression:       aws.String("attribute_exists(PK) AND attribute_not_exists(#l)"),
					ExpressionAttributeNames:  map[string]string{"#l": attrLive},
					ExpressionAttributeValues: map[string]types.AttributeValue{":s": str(id)},
				}},
				{Put: &types.Put{TableName: &s.table, Item: liveMark(x)}},
			})
		default:
			ok, perr := s.put(ctx, op, put.Put.Item, *put.Put.ConditionExpression, put.Put.ExpressionAttributeValues)
			if perr != nil {
				return nil, perr
			}
			if !ok {
				continue
			}
			return x, nil
		}
		switch {
		case err != nil:
			return nil, err
		case failed(reasons, 0):
			continue // changed meanwhile: read again
		case anyFailed(reasons):
			return nil, errf(op, hermes.Conflict, "thread %q already has a live session", x.ThreadID)
		}
		return x, nil
	}
}

// cursor is the position after an item in an index: the item's base-table
// and index keys (an ExclusiveStartKey), encoded as "d1." and base64 of
// its JSON. Decoding checks that it names an item of the expected kind in
// the expected index partition.
func encodeCursor(item map[string]types.AttributeValue, ipk, isk string) string {
	k := map[string]string{attrPK: getS(item, attrPK), attrSK: getS(item, attrSK), ipk: getS(item, ipk), isk: getS(item, isk)}
	b, _ := json.Marshal(k)
	return "d1." + base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(op, c, ipk, isk, partition, pkPrefix, sk string) (map[string]types.AttributeValue, error) {
	bad := errf(op, hermes.Invalid, "the cursor is not one this store issued")
	rest, ok := strings.CutPrefix(c, "d1.")
	if !ok {
		return nil, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return nil, bad
	}
	var k map[string]string
	if json.Unmarshal(b, &k) != nil || len(k) != 4 || k[ipk] != partition || k[attrSK] != sk ||
		!strings.HasPrefix(k[attrPK], pkPrefix) || !strings.HasSuffix(k[isk], "#"+strings.TrimPrefix(k[attrPK], pkPrefix)) {
		return nil, bad
	}
	out := map[string]types.AttributeValue{}
	for n, v := range k {
		out[n] = str(v)
	}
	return out, nil
}

// page queries an index partition newest first (filtered by filter, when
// given) for up to limit items after cursor, returning them with the
// cursor after the last when more follow.
func (s *Store) page(ctx context.Context, op string, q *dynamodb.QueryInput, ipk, isk string, limit int, cursor string,
	decodeStart func(string) (map[string]types.AttributeValue, error)) ([]map[string]types.AttributeValue, string, error) {
	limit = min(max(limit, 1), 1000)
	if cursor != "" {
		start, err := decodeStart(cursor)
		if err != nil {
			return nil, "", err
		}
		q.ExclusiveStartKey = start
	}
	q.ScanIndexForward = aws.Bool(false)
	q.Limit = aws.Int32(int32(limit + 1))
	var got []map[string]types.AttributeValue
	err := s.query(ctx, op, q, func(items []map[string]types.AttributeValue) bool {
		got = append(got, items...)
		return len(got) <= limit
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(got) > limit {
		got = got[:limit]
		next = encodeCursor(got[limit-1], ipk, isk)
	}
	return got, next, nil
}

// ListSessions queries the client's sessions by CreatedAt (index GSI1).
func (s *Store) ListSessions(ctx context.Context, clientID string, statuses []hermes.SessionStatus, limit int, cursor string) ([]*hermes.Session, string, error) {
	const op = "dynamo.ListSessions"
	partition := clientSessionsPK(clientID)
	q := &dynamodb.QueryInput{
		IndexName:                 aws.String(gsi1),
		KeyConditionExpression:    aws.String("GSI1PK = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(partition)},
	}
	if len(statuses) > 0 {
		var names []string
		for i, st := range statuses {
			n := fmt.Sprintf(":s%d", i)
			names = append(names, n)
			q.ExpressionAttributeValues[n] = str(string(st))
		}
		q.FilterExpression = aws.String("#st IN (" + strings.Join(names, ", ") + ")")
		q.ExpressionAttributeNames = map[string]string{"#st": attrStatus}
	}
	items, next, err := s.page(ctx, op, q, attrGSI1PK, attrGSI1SK, limit, cursor, func(c string) (map[string]types.AttributeValue, error) {
		return decodeCursor(op, c, attrGSI1PK, attrGSI1SK, partition, "SESSION#", skSession)
	})
	if err != nil {
		return nil, "", err
	}
	out, err := decodeSessions(op, items)
	return out, next, err
}

func decodeSessions(op string, items []map[string]types.AttributeValue) ([]*hermes.Session, error) {
	out := make([]*hermes.Session, 0, len(items))
	for _, item := range items {
		x := new(hermes.Session)
		if err := decode(item, x); err != nil {
			return nil, hermes.E(op, hermes.Internal, err)
		}
		x.Version = getN(item, attrVer)
		out = append(out, x)
	}
	return out, nil
}

// ListLeaseExpired queries each live status by ExpiresAt (index GSI2).
func (s *Store) ListLeaseExpired(ctx context.Context, now time.Time, limit int) ([]*hermes.Session, error) {
	const op = "dynamo.ListLeaseExpired"
	var all []*hermes.Session
	for _, st := range liveStatuses {
		var items []map[string]types.AttributeValue
		err := s.query(ctx, op, &dynamodb.QueryInput{
			IndexName:                 aws.String(gsi2),
			KeyConditionExpression:    aws.String("GSI2PK = :p AND GSI2SK < :t"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(statusPK(st)), ":t": str(before(norm(now)))},
			Limit:                     aws.Int32(int32(max(limit, 1))),
		}, func(page []map[string]types.AttributeValue) bool {
			items = append(items, page...)
			return len(items) < limit
		})
		if err != nil {
			return nil, err
		}
		ss, err := decodeSessions(op, items)
		if err != nil {
			return nil, err
		}
		all = append(all, ss...)
	}
	slices.SortFunc(all, func(a, b *hermes.Session) int {
		return cmp.Or(a.ExpiresAt.Compare(b.ExpiresAt), strings.Compare(a.ID, b.ID))
	})
	return all[:min(max(limit, 0), len(all))], nil
}

// CountSessions counts each status's entries of index GSI2.
func (s *Store) CountSessions(ctx context.Context, statuses ...hermes.SessionStatus) (int, error) {
	const op = "dynamo.CountSessions"
	if err := ctx.Err(); err != nil {
		return 0, hermes.E(op, hermes.Unavailable, err)
	}
	n := 0
	seen := map[hermes.SessionStatus]bool{}
	for _, st := range statuses {
		if seen[st] {
			continue
		}
		seen[st] = true
		q := &dynamodb.QueryInput{
			TableName:                 &s.table,
			IndexName:                 aws.String(gsi2),
			KeyConditionExpression:    aws.String("GSI2PK = :p"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(statusPK(st))},
			Select:                    types.SelectCount,
		}
		for {
			var out *dynamodb.QueryOutput
			err := s.call(ctx, op, func(ctx context.Context) (err error) {
				out, err = s.db.Query(ctx, q)
				return err
			})
			if err != nil {
				return 0, awsx.Wrap(op, err)
			}
			n += int(out.Count)
			if len(out.LastEvaluatedKey) == 0 {
				break
			}
			q.ExclusiveStartKey = out.LastEvaluatedKey
		}
	}
	return n, nil
}

// --- history ---

func (s *Store) AppendHistory(ctx context.Context, entries ...*hermes.HistoryEntry) error {
	const op = "dynamo.AppendHistory"
	if err := ctx.Err(); err != nil {
		return hermes.E(op, hermes.Unavailable, err)
	}
	checked := map[string]bool{}
	for _, h := range entries {
		if checked[h.SessionID] {
			continue
		}
		item, err := s.get(ctx, op, sessionPK(h.SessionID), skSession)
		if err != nil {
			return err
		}
		if item == nil {
			return errf(op, hermes.NotFound, "session %q not found", h.SessionID)
		}
		checked[h.SessionID] = true
	}
	for _, h := range entries {
		// Unique by id: an entry stored already stays as it is.
		if _, err := s.put(ctx, op, historyItem(normEntry(h)), "attribute_not_exists(PK)", nil); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) ListHistory(ctx context.Context, sessionID string) ([]*hermes.HistoryEntry, error) {
	const op = "dynamo.ListHistory"
	items, err := s.partition(ctx, op, sessionPK(sessionID), historyPrefix)
	if err != nil {
		return nil, err
	}
	out, err := decodeAll[hermes.HistoryEntry](op, items)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b *hermes.HistoryEntry) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}
