package twilio_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/twilio"
)

// fakeTwilio speaks the Messages resource: form POST with basic auth,
// JSON answers shaped like Twilio's.
func fakeTwilio(t *testing.T, status int, got *http.Request) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/AC123/Messages.json" {
			http.Error(w, "not found", 404)
			return
		}
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		*got = *r
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if status == 201 {
			w.Write([]byte(`{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued"}`))
		} else {
			w.Write([]byte(`{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestClientSend(t *testing.T) {
	it := &hermes.OutboxItem{ID: "x", Channel: "sms", From: "+15550100001", To: "+15550100002", Text: "Got it"}
	for _, tc := range []struct {
		status int
		want   hermes.Kind
		ok     bool
	}{{201, 0, true}, {400, hermes.Invalid, false}, {429, hermes.Unavailable, false}, {503, hermes.Unavailable, false}} {
		var got http.Request
		srv := fakeTwilio(t, tc.status, &got)
		c := &twilio.Client{BaseURL: srv.URL, AccountSID: "AC123", AuthToken: "secret"}
		err := c.Send(context.Background(), it)
		if tc.ok {
			if err != nil {
				t.Fatalf("status %d: %v", tc.status, err)
			}
			user, pass, _ := got.BasicAuth()
			if user != "AC123" || pass != "secret" || got.PostForm.Get("To") != it.To || got.PostForm.Get("From") != it.From || got.PostForm.Get("Body") != "Got it" {
				t.Errorf("request: auth %s/%s form %v", user, pass, got.PostForm)
			}
			continue
		}
		if !hermes.IsKind(err, tc.want) {
			t.Errorf("status %d: err %v, want kind %v", tc.status, err, tc.want)
		}
	}
}
