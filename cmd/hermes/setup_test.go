package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/webordinary/hermes/internal/awsx"
	"github.com/webordinary/hermes/internal/config"
	"github.com/webordinary/hermes/internal/dynamo"
	"github.com/webordinary/hermes/internal/hermestest"
	"github.com/webordinary/hermes/internal/sqlite"
)

func TestSetupSQLite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for i := range 2 { // idempotent
		var out bytes.Buffer
		if err := run(t.Context(), []string{"setup"}, env(map[string]string{"HERMES_DATA_DIR": dir}), &out, &out); err != nil {
			t.Fatalf("setup (%d): %v\n%s", i, err, &out)
		}
		if !strings.Contains(out.String(), "SQLite: database") || !strings.Contains(out.String(), "setup done") {
			t.Errorf("setup (%d) output: %q", i, &out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "hermes.db")); err != nil {
		t.Errorf("the database: %v", err)
	}
	if err := run(t.Context(), []string{"setup", "extra"}, env(map[string]string{"HERMES_DATA_DIR": dir}), &bytes.Buffer{}, &bytes.Buffer{}); exitCode(err) != 2 {
		t.Errorf("setup with an argument: %v, want a usage error", err)
	}
}

// TestSetupDynamoDB runs `hermes setup` with HERMES_STORE=dynamodb against
// DynamoDB Local, twice, then opens the backends on the table. The SDK
// takes the endpoint and credentials from the process environment, so the
// test sets them there (it is not parallel).
func TestSetupDynamoDB(t *testing.T) {
	ep := hermestest.Emulator(t, "HERMES_TEST_DYNAMODB_ENDPOINT", "DynamoDB Local")
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", ep)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	table := fmt.Sprintf("hermes-test-setup-%08x", rand.Uint32())
	client := dynamo.NewClient(awsx.Emulator(ep)) // same credentials and region: same data
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	vars := map[string]string{
		"HERMES_STORE": "dynamodb", "DYNAMODB_TABLE_NAME": table, "AWS_REGION": "us-east-1",
		"HERMES_DATA_DIR": filepath.Join(t.TempDir(), "data"),
	}
	for i, want := range []string{"DynamoDB: created table " + table, "DynamoDB: table " + table + " is active"} {
		var out bytes.Buffer
		if err := run(t.Context(), []string{"setup"}, env(vars), &out, &out); err != nil {
			t.Fatalf("setup (%d): %v\n%s", i, err, &out)
		}
		if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "SQLite: database") {
			t.Errorf("setup (%d) output %q, want %q and the SQLite queues' database", i, &out, want)
		}
		if i == 1 && strings.Contains(out.String(), "created") {
			t.Errorf("setup again created something: %q", &out)
		}
	}
	if _, err := client.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(table)}); err != nil {
		t.Fatalf("DescribeTable after setup: %v", err)
	}

	cfg, err := config.Load(env(vars))
	if err != nil {
		t.Fatal(err)
	}
	store, queues, err := openBackends(t.Context(), cfg, breakerOptions(cfg, nil))
	if err != nil {
		t.Fatalf("openBackends: %v", err)
	}
	defer store.Close()
	defer queues.(*sqlite.DB).Close()
	if _, ok := store.(*dynamo.Store); !ok {
		t.Errorf("store: got %T, want *dynamo.Store", store)
	}
	if _, ok := queues.(*sqlite.DB); !ok {
		t.Errorf("queues: got %T, want the SQLite queues", queues)
	}
	if err := store.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}

	vars["DYNAMODB_TABLE_NAME"] = table + "-missing"
	cfg, _ = config.Load(env(vars))
	if _, _, err := openBackends(t.Context(), cfg, breakerOptions(cfg, nil)); err == nil || !strings.Contains(err.Error(), "hermes setup") {
		t.Errorf("openBackends on a missing table: %v, want an error naming hermes setup", err)
	}
}
