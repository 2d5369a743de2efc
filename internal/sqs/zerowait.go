package sqs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	sqssdk "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// zeroWait makes a ReceiveMessage request say "WaitTimeSeconds": 0. The SDK
// leaves a zero WaitTimeSeconds out of the request, and SQS then waits for
// the queue's ReceiveMessageWaitTimeSeconds (20 s on Hermes's queues, and
// whatever infrastructure set on the intake queue) instead of returning at
// once, as Receive with wait 0 must.
func zeroWait(o *sqssdk.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Serialize.Add(middleware.SerializeMiddlewareFunc("HermesZeroWaitTimeSeconds",
			func(ctx context.Context, in middleware.SerializeInput, next middleware.SerializeHandler) (middleware.SerializeOutput, middleware.Metadata, error) {
				req, ok := in.Request.(*smithyhttp.Request)
				if !ok || req.GetStream() == nil {
					return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("sqs: ReceiveMessage request without a body")
				}
				body, err := io.ReadAll(req.GetStream())
				if err != nil {
					return middleware.SerializeOutput{}, middleware.Metadata{}, err
				}
				var fields map[string]json.RawMessage
				if err := json.Unmarshal(body, &fields); err != nil {
					return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("sqs: ReceiveMessage request body: %w", err)
				}
				fields["WaitTimeSeconds"] = json.RawMessage("0")
				if body, err = json.Marshal(fields); err != nil {
					return middleware.SerializeOutput{}, middleware.Metadata{}, err
				}
				if req, err = req.SetStream(bytes.NewReader(body)); err != nil {
					return middleware.SerializeOutput{}, middleware.Metadata{}, err
				}
				in.Request = req
				return next.HandleSerialize(ctx, in)
			}), middleware.After)
	})
}
