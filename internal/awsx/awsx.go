// Package awsx is what every AWS adapter of Hermes shares: the SDK
// configuration (the default credential chain — task roles work — with
// endpoint overrides for emulators), retries with jittered backoff for
// throttling and 5xx answers, a circuit breaker per outside service, and
// the mapping of AWS errors to hermes.Error kinds.
package awsx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"
	"github.com/sony/gobreaker/v2"

	"github.com/webordinary/hermes"
)

// MaxAttempts is how often a call is tried (the first try included) when
// AWS answers with throttling, a 5xx or a network error.
const MaxAttempts = 5

// Options configure Load.
type Options struct {
	Region string
	// Endpoint, when set, is the base endpoint of every service (an
	// emulator); the SDK's own AWS_ENDPOINT_URL and
	// AWS_ENDPOINT_URL_<SERVICE> variables work too.
	Endpoint string
	// Static credentials, for emulators only; empty uses the default
	// credential chain (environment, shared files, the ECS task role…).
	// Never pass empty strings here to mean "none".
	AccessKeyID, SecretAccessKey string
}

// Load returns the SDK configuration: the default chain, the region,
// standard retries (jittered exponential backoff up to 20 s, MaxAttempts
// tries) and, when given, an endpoint and static credentials.
func Load(ctx context.Context, o Options) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = MaxAttempts
				so.MaxBackoff = 20 * time.Second
			})
		}),
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Endpoint != "" {
		opts = append(opts, config.WithBaseEndpoint(o.Endpoint))
	}
	if o.AccessKeyID != "" && o.SecretAccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("aws configuration: %w", err)
	}
	return cfg, nil
}

// Emulator returns the configuration for an emulator at endpoint: region
// us-east-1, the test/test credentials the emulators expect, quick retries.
func Emulator(endpoint string) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = 3
				so.MaxBackoff = 200 * time.Millisecond
			})
		},
		HTTPClient: &http.Client{Timeout: 30 * time.Second},
	}
}

// Breaker is a circuit breaker around one outside service: after repeated
// failures it opens and calls fail fast with Unavailable (the caller's job
// stays queued, the reply stays in the outbox) until a trial call after
// the cool-down succeeds.
type Breaker struct {
	cb *gobreaker.CircuitBreaker[any]
}

// BreakerOptions tune a Breaker; zero values take the defaults.
type BreakerOptions struct {
	// Failures in a row that open the breaker (default 5).
	Failures uint32
	// Cooldown is how long it stays open before a trial call (default 30 s).
	Cooldown time.Duration
	// OnState learns every state change ("closed", "open", "half-open"),
	// for metrics and logs.
	OnState func(service, state string)
}

// NewBreaker returns the breaker of the named service.
func NewBreaker(service string, o BreakerOptions) *Breaker {
	failures := o.Failures
	if failures == 0 {
		failures = 5
	}
	cooldown := o.Cooldown
	if cooldown <= 0 {
		cooldown = 30 * time.Second
	}
	st := gobreaker.Settings{
		Name:        service,
		MaxRequests: 1,
		Timeout:     cooldown,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		// Answers that say the call itself was wrong (not found, a failed
		// condition, bad input) are the service working: they do not count.
		IsSuccessful: func(err error) bool { return err == nil || !Transient(err) },
		IsExcluded:   func(err error) bool { return errors.Is(err, context.Canceled) },
	}
	if o.OnState != nil {
		st.OnStateChange = func(name string, _, to gobreaker.State) { o.OnState(name, to.String()) }
	}
	return &Breaker{cb: gobreaker.NewCircuitBreaker[any](st)}
}

// Do runs fn through the breaker. An open breaker answers Unavailable
// without calling fn.
func (b *Breaker) Do(fn func() error) error {
	if b == nil {
		return fn()
	}
	_, err := b.cb.Execute(func() (any, error) { return nil, fn() })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return hermes.Errorf(hermes.Unavailable, "%s is unavailable (circuit open); try again later", b.cb.Name())
	}
	return err
}

// State is the breaker's state: closed, open or half-open.
func (b *Breaker) State() string { return b.cb.State().String() }

// Transient reports whether err is worth retrying later: throttling, a 5xx,
// a timeout or a network failure — not a refused or malformed call.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	if hermes.IsKind(err, hermes.Unavailable) {
		return true
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		if c := re.HTTPStatusCode(); c >= 500 || c == http.StatusTooManyRequests {
			return true
		}
		if c := re.HTTPStatusCode(); c >= 400 && c < 500 {
			return isThrottle(err)
		}
	}
	if isThrottle(err) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorFault() == smithy.FaultServer
	}
	return true // network errors, timeouts: no answer at all
}

func isThrottle(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	code := ae.ErrorCode()
	return strings.Contains(code, "Throttl") || code == "ProvisionedThroughputExceededException" ||
		code == "RequestLimitExceeded" || code == "TooManyRequestsException" || code == "LimitExceededException" ||
		code == "SlowDown" || code == "RequestThrottled"
}

// Code returns the AWS error code of err ("" when it has none).
func Code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// Wrap turns an AWS error into a hermes.Error for op: Unavailable when a
// retry may succeed later, Internal otherwise; nil stays nil. Adapters map
// the codes that mean something to them (not found, a failed condition)
// before calling it.
func Wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var he *hermes.Error
	if errors.As(err, &he) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return hermes.E(op, hermes.Unavailable, err)
	}
	if Transient(err) {
		return hermes.E(op, hermes.Unavailable, err)
	}
	return hermes.E(op, hermes.Internal, err)
}
