package httpapi

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/emailin"
	"github.com/webordinary/hermes/internal/mail"
	"github.com/webordinary/hermes/internal/router"
	"github.com/webordinary/hermes/internal/slack"
	"github.com/webordinary/hermes/internal/twilio"
)

// Inbound configures the webhook channels; a channel whose secret is empty
// is not served (404), so that nothing unverified can reach the router.
type Inbound struct {
	Email            *emailin.Intake
	TwilioAuthToken  string
	TwilioAccountSID string
	SlackSecret      string
	PublicURL        string // the public base URL (with the base path) Twilio signs requests against
	MaxEmailBytes    int64
	Rejected         func(channel, reason string)
}

const (
	defaultMaxEmailBytes = 10 << 20
	maxWebhookBytes      = 256 << 10
)

func (s *Server) rejected(channel, reason string) {
	if s.Inbound != nil && s.Inbound.Rejected != nil {
		s.Inbound.Rejected(channel, reason)
	}
}

type inboundResponse struct {
	Outcomes []*router.Outcome `json:"outcomes"`
}

// handleInboundEmail takes one email: raw message/rfc822, or an SES
// receipt notification (bare or SNS-wrapped) as JSON.
func (s *Server) handleInboundEmail(w http.ResponseWriter, r *http.Request) error {
	if s.Inbound == nil || s.Inbound.Email == nil {
		return hermes.Errorf(hermes.NotFound, "email intake is not configured")
	}
	limit := s.Inbound.MaxEmailBytes
	if limit <= 0 {
		limit = defaultMaxEmailBytes
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.rejected(hermes.ChannelEmail, "too-large")
			return hermes.Errorf(hermes.TooLarge, "the message is larger than %d bytes", limit)
		}
		return hermes.Errorf(hermes.Invalid, "reading the body: %v", err)
	}
	if len(body) == 0 {
		return hermes.Errorf(hermes.Invalid, "the body is empty")
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var outs []*router.Outcome
	if mt == "text/plain" && body[0] == '{' {
		mt = "application/json" // SNS HTTP(S) subscriptions post their JSON as text/plain
	}
	switch mt {
	case "message/rfc822", "text/plain", "application/octet-stream":
		outs, err = s.Inbound.Email.HandleRaw(r.Context(), nil, "", body)
	case "application/json", "text/json":
		// SNS posts its notifications as text/plain too; JSON is recognised
		// by its first byte there.
		outs, err = s.Inbound.Email.HandleSES(r.Context(), body)
	default:
		return &httpError{status: http.StatusUnsupportedMediaType, msg: "Content-Type must be message/rfc822 or application/json (SES notification)"}
	}
	if err != nil {
		return err
	}
	if outs == nil {
		outs = []*router.Outcome{}
	}
	writeJSON(w, http.StatusAccepted, inboundResponse{Outcomes: outs})
	return nil
}

// handleTwilio is Twilio's SMS webhook: the signature is checked against
// the public URL, the message routed, and an empty TwiML answer returned
// (the acknowledgement goes out through the outbox).
func (s *Server) handleTwilio(w http.ResponseWriter, r *http.Request) error {
	if s.Inbound == nil || s.Inbound.TwilioAuthToken == "" {
		return hermes.Errorf(hermes.NotFound, "the SMS channel is not configured")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxWebhookBytes)
	if err := r.ParseForm(); err != nil {
		s.rejected(hermes.ChannelSMS, "malformed")
		return hermes.Errorf(hermes.Invalid, "the body must be a form: %v", err)
	}
	u := s.Inbound.PublicURL + "/inbound/sms/twilio"
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	if !twilio.ValidSignature(s.Inbound.TwilioAuthToken, u, r.PostForm, r.Header.Get(twilio.SignatureHeader)) {
		s.rejected(hermes.ChannelSMS, "bad-signature")
		return hermes.Errorf(hermes.Unauthorized, "invalid Twilio signature")
	}
	in, err := twilio.ParseInbound(r.PostForm)
	if err != nil {
		s.rejected(hermes.ChannelSMS, "malformed")
		return err
	}
	if s.Inbound.TwilioAccountSID != "" && in.AccountSid != "" && in.AccountSid != s.Inbound.TwilioAccountSID {
		s.rejected(hermes.ChannelSMS, "wrong-account")
		return hermes.Errorf(hermes.Forbidden, "the message is for another Twilio account")
	}
	text := strings.TrimSpace(in.Body)
	hints := hermes.ThreadHints{}
	if tok, ok := mail.FindToken(text); ok {
		hints.Token = tok
	}
	if first, rest, _ := strings.Cut(text, " "); strings.EqualFold(strings.Trim(first, ".:!,"), "new") {
		hints.NewThread, text = true, strings.TrimSpace(rest)
	}
	if _, err := s.Router.Route(r.Context(), &hermes.Message{
		Channel: hermes.ChannelSMS, ChannelID: "twilio:" + in.MessageSid, From: in.From, To: in.To,
		Text: text, Thread: hints,
	}); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = w.Write(twilio.TwiML(""))
	return nil
}

// handleSlack is the Slack Events API endpoint.
func (s *Server) handleSlack(w http.ResponseWriter, r *http.Request) error {
	if s.Inbound == nil || s.Inbound.SlackSecret == "" {
		return hermes.Errorf(hermes.NotFound, "the chat channel is not configured")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBytes))
	if err != nil {
		return hermes.Errorf(hermes.TooLarge, "the body is larger than %d bytes", maxWebhookBytes)
	}
	if err := slack.Verify(s.Inbound.SlackSecret, r.Header, body, s.Clock.Now()); err != nil {
		s.rejected(hermes.ChannelChat, "bad-signature")
		return err
	}
	env, err := slack.ParseEnvelope(body)
	if err != nil {
		s.rejected(hermes.ChannelChat, "malformed")
		return err
	}
	switch {
	case env.Type == slack.URLVerification:
		writeJSON(w, http.StatusOK, map[string]string{"challenge": env.Challenge})
		return nil
	case env.Event == nil || !env.Event.IsUserMessage():
		w.WriteHeader(http.StatusOK) // not an instruction: acknowledged, ignored
		return nil
	}
	e := env.Event
	text := slack.PlainText(e.Text, e.Type == "app_mention")
	hints := hermes.ThreadHints{ChatThread: e.ThreadKey()}
	if tok, ok := mail.FindToken(text); ok {
		hints.Token = tok
	}
	// One user message can arrive as two events (message and app_mention):
	// channel and ts identify it.
	if _, err := s.Router.Route(r.Context(), &hermes.Message{
		Channel: hermes.ChannelChat, ChannelID: "slack:" + e.Channel + ":" + e.TS, From: e.User, To: e.Channel,
		Text: text, Thread: hints,
	}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
