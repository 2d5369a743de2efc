package slack_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/slack"
)

func TestClientSend(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		answer string
		want   hermes.Kind
	}{
		{"ok", 200, `{"ok":true,"channel":"C0123","ts":"1700000000.000200"}`, 0},
		{"refused", 200, `{"ok":false,"error":"channel_not_found"}`, hermes.Invalid},
		{"rate limited", 429, ``, hermes.Unavailable},
		{"ratelimited body", 200, `{"ok":false,"error":"ratelimited"}`, hermes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got map[string]string
			var auth string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/chat.postMessage" {
					http.NotFound(w, r)
					return
				}
				auth = r.Header.Get("Authorization")
				json.NewDecoder(r.Body).Decode(&got)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.answer))
			}))
			defer srv.Close()
			c := &slack.Client{BaseURL: srv.URL, BotToken: "xoxb-test"}
			err := c.Send(context.Background(), &hermes.OutboxItem{ID: "x", To: "C0123", Text: "Got it",
				Headers: map[string]string{"thread_ts": "1700000000.000100"}})
			if tc.want == 0 {
				if err != nil {
					t.Fatal(err)
				}
			} else if !hermes.IsKind(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if auth != "Bearer xoxb-test" || got["channel"] != "C0123" || got["thread_ts"] != "1700000000.000100" || got["text"] != "Got it" {
				t.Errorf("request auth %q body %v", auth, got)
			}
		})
	}
}
