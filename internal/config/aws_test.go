package config

import (
	"strings"
	"testing"
	"time"
)

func TestModelAndEMF(t *testing.T) {
	c, err := Load(Getenv(map[string]string{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Model != "keywords" || c.EMF || c.EMFInterval != time.Minute {
		t.Errorf("defaults: model %q, emf %v every %s", c.Model, c.EMF, c.EMFInterval)
	}
	if b := c.Bedrock; b.ModelID != "anthropic.claude-3-haiku-20240307-v1:0" || b.Temperature != 0 || b.TopP != 0.95 || b.MaxTokens != 2048 || b.Timeout != 10*time.Second {
		t.Errorf("bedrock defaults %+v", b)
	}
	c, err = Load(Getenv(map[string]string{"HERMES_ENV": "production"}, nil))
	if err != nil || !c.EMF {
		t.Errorf("production: EMF %v, %v", c.EMF, err)
	}
	c, err = Load(Getenv(map[string]string{
		"HERMES_ENV": "production", "HERMES_METRICS_EMF": "off", "HERMES_MODEL": "bedrock",
		"BEDROCK_MODEL_ID": "us.anthropic.claude-3-5-haiku-20241022-v1:0", "BEDROCK_TEMPERATURE": "0.2",
		"BEDROCK_TOP_P": "0.9", "BEDROCK_MAX_TOKENS": "512", "BEDROCK_TIMEOUT": "3s", "HERMES_METRICS_EMF_INTERVAL": "30s",
	}, nil))
	if err != nil || c.EMF || c.Model != "bedrock" || c.Bedrock.ModelID != "us.anthropic.claude-3-5-haiku-20241022-v1:0" ||
		c.Bedrock.Temperature != 0.2 || c.Bedrock.TopP != 0.9 || c.Bedrock.MaxTokens != 512 || c.Bedrock.Timeout != 3*time.Second || c.EMFInterval != 30*time.Second {
		t.Errorf("%+v %v", c.Bedrock, err)
	}
	_, err = Load(Getenv(map[string]string{"HERMES_MODEL": "gpt", "BEDROCK_TEMPERATURE": "2", "BEDROCK_TOP_P": "x", "HERMES_METRICS_EMF": "maybe"}, nil))
	for _, v := range []string{"HERMES_MODEL", "BEDROCK_TEMPERATURE", "BEDROCK_TOP_P", "HERMES_METRICS_EMF"} {
		if err == nil || !strings.Contains(err.Error(), v+":") {
			t.Errorf("no error for %s: %v", v, err)
		}
	}
}

func TestQueuePrefix(t *testing.T) {
	c, err := Load(Getenv(map[string]string{}, nil))
	if err != nil || c.QueuePrefix != "webordinary-" {
		t.Fatalf("default: %q, %v", c.QueuePrefix, err)
	}
	if MaxQueuePrefixLen != 17 {
		t.Errorf("MaxQueuePrefixLen = %d, want 17 (80 - len(output-) - 56)", MaxQueuePrefixLen)
	}
	c, err = Load(Getenv(map[string]string{"HERMES_QUEUE_PREFIX": "acme-staging_"}, nil))
	if err != nil || c.QueuePrefix != "acme-staging_" {
		t.Errorf("custom: %q, %v", c.QueuePrefix, err)
	}
	for _, bad := range []string{"acme.staging-", "a-prefix-too-long-", "sp ace"} {
		_, err := Load(Getenv(map[string]string{"HERMES_QUEUE_PREFIX": bad}, nil))
		if err == nil || !strings.Contains(err.Error(), "HERMES_QUEUE_PREFIX:") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
