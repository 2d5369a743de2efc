package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/webordinary/hermes"
)

// Client posts replies with the Web API's chat.postMessage.
type Client struct {
	BaseURL  string // https://slack.com/api, overridable for tests (SLACK_API_URL)
	BotToken string
	HTTP     *http.Client
}

var _ hermes.Sender = (*Client)(nil)

// Send posts the item's text to its channel (To), in the thread named by
// the item's "thread_ts" header. Slack answers 200 with ok:false for
// refusals: those are permanent (Invalid) except rate limits and internal
// errors, which are retried.
func (c *Client) Send(ctx context.Context, it *hermes.OutboxItem) error {
	if it.To == "" || it.Text == "" {
		return hermes.Errorf(hermes.Invalid, "chat reply %s lacks a channel or text", it.ID)
	}
	payload := map[string]string{"channel": it.To, "text": it.Text}
	if ts := it.Headers["thread_ts"]; ts != "" {
		payload["thread_ts"] = ts
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return hermes.E("slack.Send", hermes.Invalid, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+"/chat.postMessage", bytes.NewReader(body))
	if err != nil {
		return hermes.E("slack.Send", hermes.Invalid, err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", "Bearer "+c.BotToken)
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 20 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return hermes.E("slack.Send", hermes.Unavailable, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		return hermes.E("slack.Send", hermes.Unavailable, fmt.Errorf("slack answered %s", resp.Status))
	}
	var out struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return hermes.E("slack.Send", hermes.Unavailable, fmt.Errorf("slack answered %s with no JSON", resp.Status))
	}
	switch {
	case out.OK:
		return nil
	case out.Error == "ratelimited" || out.Error == "internal_error" || out.Error == "service_unavailable" || out.Error == "request_timeout":
		return hermes.E("slack.Send", hermes.Unavailable, fmt.Errorf("chat.postMessage: %s", out.Error))
	}
	return hermes.E("slack.Send", hermes.Invalid, fmt.Errorf("chat.postMessage: %s", out.Error))
}
