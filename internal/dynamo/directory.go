package dynamo

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/webordinary/hermes"
)

// Keys of the directory (docs/dynamodb.md).
const (
	clientsPK = "CLIENTS" // SK: the client id
	skAddr    = "ADDR"
)

func clientPK(id string) string               { return "CLIENT#" + id }
func projectSK(id string) string              { return "PROJECT#" + id }
func userSK(id string) string                 { return "USER#" + id }
func identitySK(kind, identity string) string { return "IDENT#" + kind + "#" + identity }
func addrPK(kind, address string) string      { return "ADDR#" + kind + "#" + address }
func liveSK(sessionID string) string          { return "LIVE#" + sessionID }

// ukey is the key of a uniqueness item (an address or an identity).
type ukey struct{ pk, sk string }

func projectAddrKeys(p *hermes.Project) []ukey {
	var out []ukey
	for _, kind := range []string{hermes.AddressEmail, hermes.AddressSMS, hermes.AddressChat} {
		for _, a := range p.Addresses()[kind] {
			if k := (ukey{addrPK(kind, a), skAddr}); !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

func userIdentityKeys(u *hermes.User) []ukey {
	var out []ukey
	for _, kind := range []string{hermes.AddressEmail, hermes.AddressSMS, hermes.AddressChat} {
		for _, id := range u.Identities()[kind] {
			if k := (ukey{clientPK(u.ClientID), identitySK(kind, id)}); !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

// uniqueWrites are the writes that move uniqueness items from old to new
// keys: the keys only in old are deleted, those only in new are put with
// the owner's attributes, failing when another owner holds one (ownerCond
// says who the owner is).
func (s *Store) uniqueWrites(old, new []ukey, attrs map[string]types.AttributeValue, ownerCond string, ownerVals map[string]types.AttributeValue) []types.TransactWriteItem {
	var w []types.TransactWriteItem
	for _, k := range old {
		if !slices.Contains(new, k) {
			w = append(w, types.TransactWriteItem{Delete: &types.Delete{TableName: &s.table, Key: key(k.pk, k.sk)}})
		}
	}
	for _, k := range new {
		if slices.Contains(old, k) {
			continue
		}
		item := key(k.pk, k.sk)
		for n, v := range attrs {
			item[n] = v
		}
		w = append(w, types.TransactWriteItem{Put: &types.Put{
			TableName: &s.table, Item: item,
			ConditionExpression:       aws.String("attribute_not_exists(PK) OR (" + ownerCond + ")"),
			ExpressionAttributeValues: ownerVals,
		}})
	}
	return w
}

func putNew(table string, item map[string]types.AttributeValue) types.TransactWriteItem {
	return types.TransactWriteItem{Put: &types.Put{TableName: &table, Item: item, ConditionExpression: aws.String("attribute_not_exists(PK)")}}
}

func putIfVersion(table string, item map[string]types.AttributeValue, ver int64) types.TransactWriteItem {
	return types.TransactWriteItem{Put: &types.Put{
		TableName: &table, Item: item, ConditionExpression: aws.String("ver = :v"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(ver)},
	}}
}

func mustExist(table, pk, sk string) types.TransactWriteItem {
	return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName: &table, Key: key(pk, sk), ConditionExpression: aws.String("attribute_exists(PK)"),
	}}
}

// --- clients ---

func clientItem(c *hermes.Client, ver int64) map[string]types.AttributeValue {
	item := key(clientsPK, c.ID)
	item[attrData], item[attrVer] = encode(c), num(ver)
	return item
}

func (s *Store) CreateClient(ctx context.Context, c *hermes.Client, now time.Time) error {
	const op = "dynamo.CreateClient"
	x := *c
	x.CreatedAt, x.UpdatedAt = norm(now), norm(now)
	ok, err := s.put(ctx, op, clientItem(&x, 1), "attribute_not_exists(PK)", nil)
	if err != nil {
		return err
	}
	if !ok {
		return errf(op, hermes.Conflict, "client %q already exists", c.ID)
	}
	c.CreatedAt, c.UpdatedAt = x.CreatedAt, x.UpdatedAt
	return nil
}

func (s *Store) GetClient(ctx context.Context, id string) (*hermes.Client, error) {
	c := new(hermes.Client)
	if _, err := s.getData(ctx, "dynamo.GetClient", clientsPK, id, c, "client "+quote(id)+" not found"); err != nil {
		return nil, err
	}
	return c, nil
}

func (s *Store) ListClients(ctx context.Context) ([]*hermes.Client, error) {
	const op = "dynamo.ListClients"
	items, err := s.partition(ctx, op, clientsPK, "")
	if err != nil {
		return nil, err
	}
	return decodeAll[hermes.Client](op, items)
}

func (s *Store) UpdateClient(ctx context.Context, c *hermes.Client, now time.Time) error {
	const op = "dynamo.UpdateClient"
	for {
		var old hermes.Client
		item, err := s.getData(ctx, op, clientsPK, c.ID, &old, "client "+quote(c.ID)+" not found")
		if err != nil {
			return err
		}
		x := *c
		x.CreatedAt, x.UpdatedAt = old.CreatedAt, norm(now)
		ver := getN(item, attrVer)
		ok, err := s.put(ctx, op, clientItem(&x, ver+1), "ver = :v", map[string]types.AttributeValue{":v": num(ver)})
		if err != nil {
			return err
		}
		if ok {
			c.CreatedAt, c.UpdatedAt = x.CreatedAt, x.UpdatedAt
			return nil
		}
	}
}

// DeleteClient removes the client's items: its partition (projects,
// users, identities), the addresses of its projects, and what its index
// entry OWNER#id lists (threads with their lookups, sessions with their
// history, approvals), the client item last so that a retry after a
// failure finishes the job. A session created while it runs (the live
// check is a read before the deletes) is the one race it leaves open.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	const op = "dynamo.DeleteClient"
	if item, err := s.get(ctx, op, clientsPK, id); err != nil {
		return err
	} else if item == nil {
		return errf(op, hermes.NotFound, "client %q not found", id)
	}
	own, err := s.partition(ctx, op, clientPK(id), "")
	if err != nil {
		return err
	}
	var keys []map[string]types.AttributeValue
	for _, item := range own {
		sk := getS(item, attrSK)
		switch {
		case strings.HasPrefix(sk, "LIVE#"):
			return errf(op, hermes.Conflict, "client %q has live sessions; deactivate them first", id)
		case strings.HasPrefix(sk, "PROJECT#"):
			var p hermes.Project
			if err := decode(item, &p); err != nil {
				return hermes.E(op, hermes.Internal, err)
			}
			for _, k := range projectAddrKeys(&p) {
				keys = append(keys, key(k.pk, k.sk))
			}
		}
		keys = append(keys, keyOf(item))
	}
	owned, err := s.queryAll(ctx, op, &dynamodb.QueryInput{
		IndexName:                 aws.String(gsi3),
		KeyConditionExpression:    aws.String("GSI3PK = :o"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":o": str(ownerPK(id))},
	})
	if err != nil {
		return err
	}
	for _, item := range owned {
		keys = append(keys, keyOf(item))
		if getS(item, attrSK) == skSession {
			hist, err := s.partition(ctx, op, getS(item, attrPK), historyPrefix)
			if err != nil {
				return err
			}
			for _, h := range hist {
				keys = append(keys, keyOf(h))
			}
		}
	}
	if err := s.deleteAll(ctx, op, keys); err != nil {
		return err
	}
	return s.deleteAll(ctx, op, []map[string]types.AttributeValue{key(clientsPK, id)})
}

// liveOf fails with Conflict when one of the client's live sessions
// matches.
func (s *Store) liveOf(ctx context.Context, op, clientID, what string, match func(item map[string]types.AttributeValue) bool) error {
	items, err := s.partition(ctx, op, clientPK(clientID), "LIVE#")
	if err != nil {
		return err
	}
	for _, item := range items {
		if match(item) {
			return errf(op, hermes.Conflict, "%s has live sessions; deactivate them first", what)
		}
	}
	return nil
}

// --- projects ---

func projectItem(p *hermes.Project, ver int64) map[string]types.AttributeValue {
	item := key(clientPK(p.ClientID), projectSK(p.ID))
	item[attrData], item[attrVer] = encode(p), num(ver)
	return item
}

func projectOwner(p *hermes.Project) (map[string]types.AttributeValue, string, map[string]types.AttributeValue) {
	return map[string]types.AttributeValue{"clientId": str(p.ClientID), "projectId": str(p.ID)},
		"clientId = :c AND projectId = :p",
		map[string]types.AttributeValue{":c": str(p.ClientID), ":p": str(p.ID)}
}

func (s *Store) CreateProject(ctx context.Context, p *hermes.Project, now time.Time) error {
	const op = "dynamo.CreateProject"
	x := *p
	x.CreatedAt, x.UpdatedAt = norm(now), norm(now)
	attrs, cond, vals := projectOwner(&x)
	w := []types.TransactWriteItem{mustExist(s.table, clientsPK, x.ClientID), putNew(s.table, projectItem(&x, 1))}
	w = append(w, s.uniqueWrites(nil, projectAddrKeys(&x), attrs, cond, vals)...)
	codes, err := s.transact(ctx, op, w)
	switch {
	case err != nil:
		return err
	case failed(codes, 0):
		return errf(op, hermes.NotFound, "client %q not found", p.ClientID)
	case failed(codes, 1):
		return errf(op, hermes.Conflict, "project %q of client %q already exists", p.ID, p.ClientID)
	case anyFailed(codes):
		return errf(op, hermes.Conflict, "an address of project %q belongs to another project", p.ID)
	}
	p.CreatedAt, p.UpdatedAt = x.CreatedAt, x.UpdatedAt
	return nil
}

func (s *Store) GetProject(ctx context.Context, clientID, projectID string) (*hermes.Project, error) {
	p := new(hermes.Project)
	_, err := s.getData(ctx, "dynamo.GetProject", clientPK(clientID), projectSK(projectID), p,
		"project "+quote(projectID)+" of client "+quote(clientID)+" not found")
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (s *Store) ListProjects(ctx context.Context, clientID string) ([]*hermes.Project, error) {
	const op = "dynamo.ListProjects"
	items, err := s.partition(ctx, op, clientPK(clientID), "PROJECT#")
	if err != nil {
		return nil, err
	}
	return decodeAll[hermes.Project](op, items)
}

func (s *Store) UpdateProject(ctx context.Context, p *hermes.Project, now time.Time) error {
	const op = "dynamo.UpdateProject"
	for {
		var old hermes.Project
		item, err := s.getData(ctx, op, clientPK(p.ClientID), projectSK(p.ID), &old,
			"project "+quote(p.ID)+" of client "+quote(p.ClientID)+" not found")
		if err != nil {
			return err
		}
		x := *p
		x.CreatedAt, x.UpdatedAt = old.CreatedAt, norm(now)
		ver := getN(item, attrVer)
		attrs, cond, vals := projectOwner(&x)
		w := []types.TransactWriteItem{putIfVersion(s.table, projectItem(&x, ver+1), ver)}
		w = append(w, s.uniqueWrites(projectAddrKeys(&old), projectAddrKeys(&x), attrs, cond, vals)...)
		codes, err := s.transact(ctx, op, w)
		switch {
		case err != nil:
			return err
		case failed(codes, 0):
			continue // changed meanwhile: read again
		case anyFailed(codes):
			return errf(op, hermes.Conflict, "an address of project %q belongs to another project", p.ID)
		}
		p.CreatedAt, p.UpdatedAt = x.CreatedAt, x.UpdatedAt
		return nil
	}
}

func (s *Store) DeleteProject(ctx context.Context, clientID, projectID string) error {
	const op = "dynamo.DeleteProject"
	what := "project " + quote(projectID) + " of client " + quote(clientID)
	for {
		var old hermes.Project
		item, err := s.getData(ctx, op, clientPK(clientID), projectSK(projectID), &old, what+" not found")
		if err != nil {
			return err
		}
		if err := s.liveOf(ctx, op, clientID, what, func(m map[string]types.AttributeValue) bool {
			return getS(m, "projectId") == projectID
		}); err != nil {
			return err
		}
		w := []types.TransactWriteItem{{Delete: &types.Delete{
			TableName: &s.table, Key: keyOf(item), ConditionExpression: aws.String("ver = :v"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(getN(item, attrVer))},
		}}}
		w = append(w, s.uniqueWrites(projectAddrKeys(&old), nil, nil, "", nil)...)
		codes, err := s.transact(ctx, op, w)
		if err != nil {
			return err
		}
		if !anyFailed(codes) {
			return nil
		}
	}
}

func (s *Store) ProjectByAddress(ctx context.Context, kind, address string) (*hermes.Project, error) {
	const op = "dynamo.ProjectByAddress"
	if kind == hermes.AddressEmail {
		address = strings.ToLower(address)
	}
	notFound := errf(op, hermes.NotFound, "no project has %s address %s", kind, quote(address))
	item, err := s.get(ctx, op, addrPK(kind, address), skAddr)
	if err != nil {
		return nil, err
	}
	if item == nil {
		return nil, notFound
	}
	p, err := s.GetProject(ctx, getS(item, "clientId"), getS(item, "projectId"))
	if hermes.IsKind(err, hermes.NotFound) {
		return nil, notFound
	}
	return p, err
}

// --- users ---

func userItem(u *hermes.User, ver int64) map[string]types.AttributeValue {
	item := key(clientPK(u.ClientID), userSK(u.ID))
	item[attrData], item[attrVer] = encode(u), num(ver)
	return item
}

func userOwner(u *hermes.User) (map[string]types.AttributeValue, string, map[string]types.AttributeValue) {
	return map[string]types.AttributeValue{"userId": str(u.ID)}, "userId = :u", map[string]types.AttributeValue{":u": str(u.ID)}
}

func (s *Store) CreateUser(ctx context.Context, u *hermes.User, now time.Time) error {
	const op = "dynamo.CreateUser"
	x := *u
	x.CreatedAt, x.UpdatedAt = norm(now), norm(now)
	attrs, cond, vals := userOwner(&x)
	w := []types.TransactWriteItem{mustExist(s.table, clientsPK, x.ClientID), putNew(s.table, userItem(&x, 1))}
	w = append(w, s.uniqueWrites(nil, userIdentityKeys(&x), attrs, cond, vals)...)
	codes, err := s.transact(ctx, op, w)
	switch {
	case err != nil:
		return err
	case failed(codes, 0):
		return errf(op, hermes.NotFound, "client %q not found", u.ClientID)
	case failed(codes, 1):
		return errf(op, hermes.Conflict, "user %q of client %q already exists", u.ID, u.ClientID)
	case anyFailed(codes):
		return errf(op, hermes.Conflict, "an identity of user %q belongs to another user", u.ID)
	}
	u.CreatedAt, u.UpdatedAt = x.CreatedAt, x.UpdatedAt
	return nil
}

func (s *Store) GetUser(ctx context.Context, clientID, userID string) (*hermes.User, error) {
	u := new(hermes.User)
	_, err := s.getData(ctx, "dynamo.GetUser", clientPK(clientID), userSK(userID), u,
		"user "+quote(userID)+" of client "+quote(clientID)+" not found")
	if err != nil {
		return nil, err
	}
	return u, nil
}

func (s *Store) ListUsers(ctx context.Context, clientID string) ([]*hermes.User, error) {
	const op = "dynamo.ListUsers"
	items, err := s.partition(ctx, op, clientPK(clientID), "USER#")
	if err != nil {
		return nil, err
	}
	return decodeAll[hermes.User](op, items)
}

func (s *Store) UpdateUser(ctx context.Context, u *hermes.User, now time.Time) error {
	const op = "dynamo.UpdateUser"
	for {
		var old hermes.User
		item, err := s.getData(ctx, op, clientPK(u.ClientID), userSK(u.ID), &old,
			"user "+quote(u.ID)+" of client "+quote(u.ClientID)+" not found")
		if err != nil {
			return err
		}
		x := *u
		x.CreatedAt, x.UpdatedAt = old.CreatedAt, norm(now)
		ver := getN(item, attrVer)
		attrs, cond, vals := userOwner(&x)
		w := []types.TransactWriteItem{putIfVersion(s.table, userItem(&x, ver+1), ver)}
		w = append(w, s.uniqueWrites(userIdentityKeys(&old), userIdentityKeys(&x), attrs, cond, vals)...)
		codes, err := s.transact(ctx, op, w)
		switch {
		case err != nil:
			return err
		case failed(codes, 0):
			continue
		case anyFailed(codes):
			return errf(op, hermes.Conflict, "an identity of user %q belongs to another user", u.ID)
		}
		u.CreatedAt, u.UpdatedAt = x.CreatedAt, x.UpdatedAt
		return nil
	}
}

func (s *Store) DeleteUser(ctx context.Context, clientID, userID string) error {
	const op = "dynamo.DeleteUser"
	what := "user " + quote(userID) + " of client " + quote(clientID)
	for {
		var old hermes.User
		item, err := s.getData(ctx, op, clientPK(clientID), userSK(userID), &old, what+" not found")
		if err != nil {
			return err
		}
		if err := s.liveOf(ctx, op, clientID, what, func(m map[string]types.AttributeValue) bool {
			return getS(m, "userId") == userID
		}); err != nil {
			return err
		}
		w := []types.TransactWriteItem{{Delete: &types.Delete{
			TableName: &s.table, Key: keyOf(item), ConditionExpression: aws.String("ver = :v"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(getN(item, attrVer))},
		}}}
		w = append(w, s.uniqueWrites(userIdentityKeys(&old), nil, nil, "", nil)...)
		codes, err := s.transact(ctx, op, w)
		if err != nil {
			return err
		}
		if !anyFailed(codes) {
			return nil
		}
	}
}

func (s *Store) UserByIdentity(ctx context.Context, clientID, kind, identity string) (*hermes.User, error) {
	const op = "dynamo.UserByIdentity"
	if kind == hermes.AddressEmail {
		identity = strings.ToLower(identity)
	}
	notFound := errf(op, hermes.NotFound, "no user of client %s has %s identity %s", quote(clientID), kind, quote(identity))
	item, err := s.get(ctx, op, clientPK(clientID), identitySK(kind, identity))
	if err != nil {
		return nil, err
	}
	if item == nil {
		return nil, notFound
	}
	u, err := s.GetUser(ctx, clientID, getS(item, "userId"))
	if hermes.IsKind(err, hermes.NotFound) {
		return nil, notFound
	}
	return u, err
}

// decodeAll decodes the data of every item.
func decodeAll[T any](op string, items []map[string]types.AttributeValue) ([]*T, error) {
	out := make([]*T, 0, len(items))
	for _, item := range items {
		v := new(T)
		if err := decode(item, v); err != nil {
			return nil, hermes.E(op, hermes.Internal, err)
		}
		out = append(out, v)
	}
	return out, nil
}
