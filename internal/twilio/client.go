package twilio

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/webordinary/hermes"
)

// Client sends SMS through Twilio's REST API (Messages resource).
type Client struct {
	BaseURL    string // https://api.twilio.com, overridable for tests (TWILIO_API_URL)
	AccountSID string
	AuthToken  string
	HTTP       *http.Client
}

var _ hermes.Sender = (*Client)(nil)

// Send posts the item as an SMS from its From number to its To number.
// 4xx answers (bad numbers, unverified senders) are permanent (Invalid);
// 429, 5xx and network failures are retried.
func (c *Client) Send(ctx context.Context, it *hermes.OutboxItem) error {
	if it.To == "" || it.From == "" || it.Text == "" {
		return hermes.Errorf(hermes.Invalid, "SMS %s lacks a number or text", it.ID)
	}
	form := url.Values{"To": {it.To}, "From": {it.From}, "Body": {it.Text}}
	u := strings.TrimRight(c.BaseURL, "/") + "/2010-04-01/Accounts/" + url.PathEscape(c.AccountSID) + "/Messages.json"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return hermes.E("twilio.Send", hermes.Invalid, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(c.AccountSID, c.AuthToken)
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 20 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return hermes.E("twilio.Send", hermes.Unavailable, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	var apiErr struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &apiErr)
	err = fmt.Errorf("twilio answered %s: %d %s", resp.Status, apiErr.Code, apiErr.Message)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		return hermes.E("twilio.Send", hermes.Unavailable, err)
	}
	return hermes.E("twilio.Send", hermes.Invalid, err)
}
