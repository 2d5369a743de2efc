package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
)

// SetupTimeout bounds how long Setup waits for the table to become active.
const SetupTimeout = 5 * time.Minute

// Setup creates the store's table, named baseName, with its indexes and
// TTL setting, when it does not exist yet, and waits until it is active.
// It is idempotent: an existing table is left as it is, except that its
// TTL setting is enabled when it is off; an existing table without the
// indexes fails (it is not one of Hermes's). It returns the names of what it
// created (empty when everything existed).
func Setup(ctx context.Context, client *dynamodb.Client, baseName string) ([]string, error) {
	const op = "dynamo.Setup"
	var created []string
	desc, err := describe(ctx, client, baseName)
	if err != nil {
		return nil, awsx.Wrap(op, err)
	}
	if desc != nil {
		have := map[string]bool{}
		for _, g := range desc.GlobalSecondaryIndexes {
			have[aws.ToString(g.IndexName)] = true
		}
		for _, g := range []string{gsi1, gsi2, gsi3} {
			if !have[g] {
				return nil, errf(op, hermes.Internal, "table %s exists without the index %s: not a Hermes table (choose another DYNAMODB_TABLE_NAME)", baseName, g)
			}
		}
	} else {
		if _, err := client.CreateTable(ctx, tableInput(baseName)); err != nil {
			var inUse *types.ResourceInUseException
			if !errors.As(err, &inUse) { // another setup is creating it
				return nil, awsx.Wrap(op, fmt.Errorf("create table %s: %w", baseName, err))
			}
		} else {
			created = append(created, "table "+baseName)
		}
	}
	w := dynamodb.NewTableExistsWaiter(client)
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: &baseName}, SetupTimeout); err != nil {
		return nil, awsx.Wrap(op, fmt.Errorf("table %s did not become active: %w", baseName, err))
	}
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &baseName})
	if err != nil {
		return nil, awsx.Wrap(op, fmt.Errorf("describe the TTL of %s: %w", baseName, err))
	}
	if d := ttl.TimeToLiveDescription; d == nil || d.TimeToLiveStatus == types.TimeToLiveStatusDisabled || d.TimeToLiveStatus == "" {
		_, err := client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName:               &baseName,
			TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(attrTTL), Enabled: aws.Bool(true)},
		})
		if err != nil {
			return nil, awsx.Wrap(op, fmt.Errorf("enable the TTL of %s: %w", baseName, err))
		}
		created = append(created, "TTL attribute "+attrTTL+" of "+baseName)
	}
	return created, nil
}

// describe returns the table's description, nil when there is none.
func describe(ctx context.Context, client *dynamodb.Client, table string) (*types.TableDescription, error) {
	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table})
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return out.Table, nil
}

// tableInput is the table's definition: string keys PK/SK and three
// overloaded indexes projecting every attribute, on demand capacity.
func tableInput(name string) *dynamodb.CreateTableInput {
	attrs := []types.AttributeDefinition{}
	for _, a := range []string{attrPK, attrSK, attrGSI1PK, attrGSI1SK, attrGSI2PK, attrGSI2SK, attrGSI3PK, attrGSI3SK} {
		attrs = append(attrs, types.AttributeDefinition{AttributeName: aws.String(a), AttributeType: types.ScalarAttributeTypeS})
	}
	index := func(name, pk, sk string) types.GlobalSecondaryIndex {
		return types.GlobalSecondaryIndex{
			IndexName: aws.String(name),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(pk), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(sk), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}
	}
	return &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: attrs,
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrSK), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{
			index(gsi1, attrGSI1PK, attrGSI1SK),
			index(gsi2, attrGSI2PK, attrGSI2SK),
			index(gsi3, attrGSI3PK, attrGSI3SK),
		},
		BillingMode: types.BillingModePayPerRequest,
		Tags:        []types.Tag{{Key: aws.String("app"), Value: aws.String("hermes")}},
	}
}
