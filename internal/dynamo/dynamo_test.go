package dynamo_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
	"github.com/webordinary/hermes/internal/dynamo"
	"github.com/webordinary/hermes/internal/hermestest"
)

// endpoint returns DynamoDB Local's address (.ci/services.sh starts it),
// skipping the test without it unless HERMES_TEST_REQUIRE_EMULATORS=1.
func endpoint(t *testing.T) string {
	t.Helper()
	return hermestest.Emulator(t, "HERMES_TEST_DYNAMODB_ENDPOINT", "DynamoDB Local")
}

var unsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// tableName is unique per test and run, within DynamoDB's 255 characters.
func tableName(t *testing.T) string {
	name := unsafe.ReplaceAllString(t.Name(), "_")
	if len(name) > 200 {
		name = name[len(name)-200:]
	}
	return fmt.Sprintf("hermes-test-%s-%08x", name, rand.Uint32())
}

// newTable sets up a table of its own for t and deletes it afterwards.
func newTable(t *testing.T, client *dynamodb.Client) string {
	t.Helper()
	table := tableName(t)
	if _, err := dynamo.Setup(t.Context(), client, table); err != nil {
		t.Fatalf("Setup %s: %v", table, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)}); err != nil {
			t.Logf("deleting table %s: %v", table, err)
		}
	})
	return table
}

func TestStoreSuite(t *testing.T) {
	ep := endpoint(t)
	hermestest.StoreSuite(t, hermestest.StoreOpener{
		New: func(t *testing.T) hermes.Store {
			client := dynamo.NewClient(awsx.Emulator(ep))
			return dynamo.New(client, newTable(t, client), dynamo.Options{})
		},
		Reopen: func(t *testing.T, s hermes.Store) hermes.Store {
			return dynamo.New(dynamo.NewClient(awsx.Emulator(ep)), s.(*dynamo.Store).Table(), dynamo.Options{})
		},
	})
}

func TestSetupIdempotent(t *testing.T) {
	ep := endpoint(t)
	client := dynamo.NewClient(awsx.Emulator(ep))
	table := newTable(t, client) // the first Setup
	ctx := t.Context()
	s := dynamo.New(client, table, dynamo.Options{})
	if err := s.CreateClient(ctx, &hermes.Client{ID: "acme", Name: "Acme"}, time.Now()); err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
	for i := range 2 {
		created, err := dynamo.Setup(ctx, client, table)
		if err != nil {
			t.Fatalf("Setup again (%d): %v", i, err)
		}
		if len(created) != 0 {
			t.Errorf("Setup again (%d) created %v, want nothing", i, created)
		}
	}
	if _, err := s.GetClient(ctx, "acme"); err != nil {
		t.Errorf("GetClient after Setup again: %v (the data must stay)", err)
	}
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatalf("DescribeTimeToLive: %v", err)
	}
	if d := ttl.TimeToLiveDescription; d == nil || aws.ToString(d.AttributeName) != "ttl" {
		t.Errorf("TTL setting: got %+v, want attribute ttl", d)
	}
}

func TestSetupRefusesAForeignTable(t *testing.T) {
	ep := endpoint(t)
	client := dynamo.NewClient(awsx.Emulator(ep))
	table := tableName(t)
	_, err := client.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: "S"}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: "HASH"}},
		BillingMode:          "PAY_PER_REQUEST",
	})
	if err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	t.Cleanup(func() {
		client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	if _, err := dynamo.Setup(t.Context(), client, table); err == nil {
		t.Error("Setup on a table without Hermes's indexes: got no error")
	}
}

func TestUnavailable(t *testing.T) {
	// Nothing listens on port 1: the call fails as Unavailable.
	cfg := awsx.Emulator("http://127.0.0.1:1")
	s := dynamo.New(dynamo.NewClient(cfg), "none", dynamo.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := s.Ping(ctx); !hermes.IsKind(err, hermes.Unavailable) {
		t.Errorf("Ping without a server: got %v, want Unavailable", err)
	}
}

func TestLeaseSuite(t *testing.T) {
	ep := endpoint(t)
	hermestest.LeaseSuite(t, func(t *testing.T) hermes.Leases {
		client := dynamo.NewClient(awsx.Emulator(ep))
		return dynamo.New(client, newTable(t, client), dynamo.Options{})
	})
}
