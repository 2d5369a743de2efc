package dynamo

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/webordinary/hermes"
)

// Keys of approvals (docs/dynamodb.md).
const (
	skApproval      = "APPROVAL"
	skApprovalToken = "APPRTOKEN"
	attrHash        = "tokenHash"
)

func approvalPK(id string) string            { return "APPROVAL#" + id }
func approvalTokenPK(hash string) string     { return "APPRTOKEN#" + hash }
func threadApprovalsPK(thread string) string { return "TAPPROVALS#" + thread }

// approvalItem stores a; owner is the client of its thread.
func approvalItem(a *hermes.Approval, owner string) map[string]types.AttributeValue {
	item := key(approvalPK(a.ID), skApproval)
	item[attrData], item[attrVer], item[attrStatus], item[attrHash] = encode(a), num(a.Version), str(string(a.Status)), str(a.TokenHash)
	item["owner"] = str(owner)
	item[attrGSI1PK], item[attrGSI1SK] = str(threadApprovalsPK(a.ThreadID)), str(sortKey(a.CreatedAt, a.ID))
	item[attrGSI3PK], item[attrGSI3SK] = str(ownerPK(owner)), str(approvalPK(a.ID))
	return item
}

func approvalTokenItem(a *hermes.Approval, owner string) map[string]types.AttributeValue {
	item := key(approvalTokenPK(a.TokenHash), skApprovalToken)
	item["approvalId"] = str(a.ID)
	item[attrGSI3PK], item[attrGSI3SK] = str(ownerPK(owner)), str(approvalTokenPK(a.TokenHash))
	return item
}

func normApproval(a *hermes.Approval) *hermes.Approval {
	x := *a
	x.CreatedAt, x.ExpiresAt = norm(a.CreatedAt), norm(a.ExpiresAt)
	for _, t := range []**time.Time{&x.DecidedAt, &x.DoneAt} {
		if *t != nil {
			v := norm(**t)
			*t = &v
		}
	}
	x.Reply.References = append([]string(nil), a.Reply.References...)
	return &x
}

func decodeApproval(item map[string]types.AttributeValue) (*hermes.Approval, error) {
	a := new(hermes.Approval)
	if err := decode(item, a); err != nil {
		return nil, err
	}
	a.TokenHash, a.Version = getS(item, attrHash), getN(item, attrVer)
	return a, nil
}

// getApproval returns the approval and its item; NotFound when absent.
func (s *Store) getApproval(ctx context.Context, op, id string) (*hermes.Approval, map[string]types.AttributeValue, error) {
	item, err := s.get(ctx, op, approvalPK(id), skApproval)
	if err != nil {
		return nil, nil, err
	}
	if item == nil {
		return nil, nil, errf(op, hermes.NotFound, "approval %q not found", id)
	}
	a, err := decodeApproval(item)
	if err != nil {
		return nil, nil, hermes.E(op, hermes.Internal, err)
	}
	return a, item, nil
}

// PutApproval writes the approval and its token-hash item together: a new
// approval with a check that its thread exists, a rotation with a
// compare-and-set on the version that moves the token-hash item.
func (s *Store) PutApproval(ctx context.Context, a *hermes.Approval) (*hermes.Approval, error) {
	const op = "dynamo.PutApproval"
	for {
		old, item, err := s.getApproval(ctx, op, a.ID)
		switch {
		case hermes.IsKind(err, hermes.NotFound):
			th, err := s.GetThread(ctx, a.ThreadID)
			if err != nil {
				return nil, hermes.E(op, hermes.ErrorKind(err), err)
			}
			x := normApproval(a)
			x.Status, x.Version, x.DecidedAt, x.DecidedVia, x.DoneAt = hermes.ApprovalPending, 1, nil, "", nil
			reasons, err := s.transact(ctx, op, []types.TransactWriteItem{
				putNew(s.table, approvalItem(x, th.ClientID)),
				putNew(s.table, approvalTokenItem(x, th.ClientID)),
				mustExist(s.table, threadPK(x.ThreadID), skThread),
			})
			switch {
			case err != nil:
				return nil, err
			case failed(reasons, 0):
				continue // created meanwhile: read again
			case failed(reasons, 1):
				return nil, errf(op, hermes.Conflict, "another approval holds the token hash")
			case failed(reasons, 2):
				return nil, errf(op, hermes.NotFound, "thread %q not found", a.ThreadID)
			}
			return x, nil
		case err != nil:
			return nil, err
		case old.Status != hermes.ApprovalPending:
			return nil, errf(op, hermes.Conflict, "approval %s is %s already", a.ID, old.Status)
		}
		owner := getS(item, "owner")
		x := *old
		x.TokenHash, x.Plan, x.ExpiresAt = a.TokenHash, a.Plan, norm(a.ExpiresAt)
		x.Version = old.Version + 1
		w := []types.TransactWriteItem{putIfVersion(s.table, approvalItem(&x, owner), old.Version)}
		if x.TokenHash != old.TokenHash {
			w = append(w,
				putNew(s.table, approvalTokenItem(&x, owner)),
				types.TransactWriteItem{Delete: &types.Delete{TableName: &s.table, Key: key(approvalTokenPK(old.TokenHash), skApprovalToken)}})
		}
		reasons, err := s.transact(ctx, op, w)
		switch {
		case err != nil:
			return nil, err
		case failed(reasons, 0):
			continue
		case anyFailed(reasons):
			return nil, errf(op, hermes.Conflict, "another approval holds the token hash")
		}
		return &x, nil
	}
}

func (s *Store) GetApproval(ctx context.Context, id string) (*hermes.Approval, error) {
	a, _, err := s.getApproval(ctx, "dynamo.GetApproval", id)
	return a, err
}

func (s *Store) ApprovalByTokenHash(ctx context.Context, hash string) (*hermes.Approval, error) {
	const op = "dynamo.ApprovalByTokenHash"
	notFound := errf(op, hermes.NotFound, "no approval has that token")
	item, err := s.get(ctx, op, approvalTokenPK(hash), skApprovalToken)
	if err != nil {
		return nil, err
	}
	if item == nil {
		return nil, notFound
	}
	a, _, err := s.getApproval(ctx, op, getS(item, "approvalId"))
	if hermes.IsKind(err, hermes.NotFound) || err == nil && a.TokenHash != hash {
		return nil, notFound
	}
	return a, err
}

// LatestApproval queries the thread's approvals by CreatedAt (GSI1).
func (s *Store) LatestApproval(ctx context.Context, threadID string) (*hermes.Approval, error) {
	const op = "dynamo.LatestApproval"
	var found map[string]types.AttributeValue
	err := s.query(ctx, op, &dynamodb.QueryInput{
		IndexName:                 aws.String(gsi1),
		KeyConditionExpression:    aws.String("GSI1PK = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(threadApprovalsPK(threadID))},
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
		return nil, errf(op, hermes.NotFound, "thread %q has no approval", threadID)
	}
	a, err := decodeApproval(found)
	if err != nil {
		return nil, hermes.E(op, hermes.Internal, err)
	}
	return a, nil
}

func (s *Store) DecideApproval(ctx context.Context, id string, status hermes.ApprovalStatus, via string, now time.Time) (*hermes.Approval, error) {
	const op = "dynamo.DecideApproval"
	now = norm(now)
	return s.updateApproval(ctx, op, id, func(a *hermes.Approval) (bool, error) {
		switch status {
		case hermes.ApprovalApproved, hermes.ApprovalRejected, hermes.ApprovalExpired:
		default:
			return false, errf(op, hermes.Invalid, "an approval cannot be decided as %q", status)
		}
		if a.Status != hermes.ApprovalPending {
			return false, errf(op, hermes.Conflict, "the approval is %s already", a.Status)
		}
		expired := !now.Before(a.ExpiresAt)
		if status == hermes.ApprovalExpired && !expired {
			return false, errf(op, hermes.Invalid, "the approval has not expired yet")
		}
		if status != hermes.ApprovalExpired && expired {
			return false, errf(op, hermes.Conflict, "the approval has expired")
		}
		a.Status, a.DecidedAt, a.DecidedVia = status, &now, via
		return true, nil
	})
}

func (s *Store) CompleteApproval(ctx context.Context, id string, now time.Time) error {
	const op = "dynamo.CompleteApproval"
	now = norm(now)
	_, err := s.updateApproval(ctx, op, id, func(a *hermes.Approval) (bool, error) {
		if !a.Decided() {
			return false, errf(op, hermes.Conflict, "the approval is %s, not decided", a.Status)
		}
		if a.DoneAt != nil {
			return false, nil
		}
		a.DoneAt = &now
		return true, nil
	})
	return err
}

// updateApproval is a compare-and-set: fn changes the approval (true) or
// leaves it (false), and decides on the latest stored state.
func (s *Store) updateApproval(ctx context.Context, op, id string, fn func(*hermes.Approval) (bool, error)) (*hermes.Approval, error) {
	for {
		a, item, err := s.getApproval(ctx, op, id)
		if err != nil {
			return nil, err
		}
		old := a.Version
		changed, err := fn(a)
		if err != nil || !changed {
			return a, err
		}
		a.Version = old + 1
		ok, err := s.put(ctx, op, approvalItem(a, getS(item, "owner")), "ver = :v", map[string]types.AttributeValue{":v": num(old)})
		if err != nil {
			return nil, err
		}
		if ok {
			return a, nil
		}
	}
}
