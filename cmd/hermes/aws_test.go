package main

import (
	"context"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
	"github.com/webordinary/hermes/internal/bedrock"
	"github.com/webordinary/hermes/internal/config"
	"github.com/webordinary/hermes/internal/s3mail"
	"github.com/webordinary/hermes/internal/sesout"
)

// TestAWSAdapters: HERMES_MAILER=ses and HERMES_MODEL=bedrock choose the
// AWS adapters, configured from the environment.
func TestAWSAdapters(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	ctx := context.Background()
	cfg, err := config.Load(config.Getenv(map[string]string{
		"HERMES_MAILER": "ses", "HERMES_MODEL": "bedrock", "BEDROCK_MODEL_ID": "amazon.nova-micro-v1:0", "BEDROCK_TIMEOUT": "2s",
	}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkBackends(cfg); err != nil {
		t.Fatal(err)
	}
	senders, err := openSenders(ctx, cfg, awsx.BreakerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := senders[hermes.ChannelEmail].(*sesout.Sender); !ok {
		t.Errorf("email sender %T", senders[hermes.ChannelEmail])
	}
	model, err := openModel(ctx, cfg, awsx.BreakerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bm, ok := model.(*bedrock.Model)
	if !ok {
		t.Fatalf("model %T", model)
	}
	if o := bm.Options(); o.ModelID != "amazon.nova-micro-v1:0" || o.SummaryModelID != o.ModelID || o.TopP < 0.94 || o.MaxTokens != 2048 || o.Timeout != 2*time.Second {
		t.Errorf("options %+v", o)
	}
	if f, err := openMailFetcher(ctx, cfg, awsx.BreakerOptions{}); err != nil || f != nil {
		t.Errorf("embedded queues without an intake queue: %v %v", f, err)
	}
	cfg.EmailQueueURL = "ses-intake"
	if f, err := openMailFetcher(ctx, cfg, awsx.BreakerOptions{}); err != nil {
		t.Error(err)
	} else if _, ok := f.(*s3mail.Fetcher); !ok {
		t.Errorf("with an intake queue: %T", f)
	}
	cfg.Model = "keywords"
	if model, err := openModel(ctx, cfg, awsx.BreakerOptions{}); err != nil || model != nil {
		t.Errorf("keywords: %v %v", model, err)
	}
}
