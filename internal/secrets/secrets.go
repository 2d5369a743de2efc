// Package secrets resolves configuration values kept in AWS Secrets
// Manager. A value is a reference when it is
//
//	secretsmanager:NAME          the secret's name (or its ARN after the colon)
//	arn:aws:secretsmanager:…     the secret's full ARN
//
// optionally followed by #KEY, which reads the secret as a JSON object and
// takes its field KEY (a string, or a number or boolean as written):
// secretsmanager:prod/hermes#SLACK_BOT_TOKEN. Secret names and ARNs never
// contain '#', so the suffix is unambiguous. Anything else is a plain value
// and is returned unchanged.
//
// Env wraps a getenv function so that every variable may be a reference;
// values are fetched once (GetSecretValue, the AWSCURRENT version's
// SecretString) and cached per secret for the life of the Env. Secret
// values are never logged or put in errors; errors name the variable and
// the secret.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
)

// Prefix marks a reference by name.
const Prefix = "secretsmanager:"

const arnPrefix = "arn:aws:secretsmanager:"

// IsRef reports whether v refers to a secret.
func IsRef(v string) bool {
	v = strings.TrimSpace(v)
	return strings.HasPrefix(v, Prefix) || strings.HasPrefix(v, arnPrefix)
}

// Ref is a parsed reference: the secret id (a name or an ARN) and the JSON
// key, "" for the whole SecretString.
type Ref struct{ SecretID, Key string }

// ParseRef reads a reference; ok is false for a plain value.
func ParseRef(v string) (r Ref, ok bool, err error) {
	v = strings.TrimSpace(v)
	if !IsRef(v) {
		return Ref{}, false, nil
	}
	id := strings.TrimPrefix(v, Prefix)
	id, key, hasKey := strings.Cut(id, "#")
	if id == "" || (hasKey && key == "") {
		return Ref{}, true, hermes.Errorf(hermes.Invalid, "a secret reference must look like secretsmanager:NAME, an arn:aws:secretsmanager:… ARN, either with an optional #KEY")
	}
	return Ref{SecretID: id, Key: key}, true, nil
}

// API is the part of the Secrets Manager client Resolver uses.
type API interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Resolver fetches secrets.
type Resolver struct {
	API     API
	Timeout time.Duration // per call; default 15 s

	mu    sync.Mutex
	cache map[string]string // SecretString by secret id
}

// NewResolver returns a resolver using cfg.
func NewResolver(cfg aws.Config) *Resolver {
	return &Resolver{API: secretsmanager.NewFromConfig(cfg)}
}

// Resolve returns v itself when it is not a reference, else the secret's
// value (or its JSON field). Errors: Invalid for a malformed reference or
// a missing JSON key, NotFound for an unknown secret, Unavailable when
// Secrets Manager cannot be reached, Internal otherwise (denied access).
func (r *Resolver) Resolve(ctx context.Context, v string) (string, error) {
	ref, ok, err := ParseRef(v)
	if err != nil || !ok {
		return v, err
	}
	s, err := r.secretString(ctx, ref.SecretID)
	if err != nil {
		return "", err
	}
	if ref.Key == "" {
		return s, nil
	}
	return field(s, ref)
}

func (r *Resolver) secretString(ctx context.Context, id string) (string, error) {
	const op = "secrets.Resolve"
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.cache[id]; ok {
		return s, nil
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := r.API.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	switch code := awsx.Code(err); {
	case err == nil:
	case code == "ResourceNotFoundException":
		return "", &hermes.Error{Op: op, Kind: hermes.NotFound, Message: fmt.Sprintf("secret %s does not exist (or is scheduled for deletion)", id), Err: err}
	case code == "AccessDeniedException":
		return "", &hermes.Error{Op: op, Kind: hermes.Internal, Message: fmt.Sprintf("reading secret %s was denied: allow secretsmanager:GetSecretValue (and kms:Decrypt for its key) to this role", id), Err: err}
	case code == "DecryptionFailure":
		return "", &hermes.Error{Op: op, Kind: hermes.Internal, Message: fmt.Sprintf("secret %s could not be decrypted with its KMS key", id), Err: err}
	default:
		return "", awsx.Wrap(op+" "+id, err)
	}
	if out.SecretString == nil {
		return "", hermes.Errorf(hermes.Invalid, "secret %s has no SecretString (binary secrets are not supported)", id)
	}
	if r.cache == nil {
		r.cache = map[string]string{}
	}
	r.cache[id] = *out.SecretString
	return *out.SecretString, nil
}

// field takes ref.Key from the JSON object s. The messages never include
// the secret's text.
func field(s string, ref Ref) (string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &obj); err != nil || obj == nil {
		return "", hermes.Errorf(hermes.Invalid, "secret %s is not a JSON object, so #%s selects nothing", ref.SecretID, ref.Key)
	}
	raw, ok := obj[ref.Key]
	if !ok {
		return "", hermes.Errorf(hermes.Invalid, "secret %s has no key %q", ref.SecretID, ref.Key)
	}
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		return str, nil
	}
	var num json.Number
	if err := json.Unmarshal(raw, &num); err == nil {
		return num.String(), nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		return strconv.FormatBool(b), nil
	}
	return "", hermes.Errorf(hermes.Invalid, "secret %s: key %q is not a string, number or boolean", ref.SecretID, ref.Key)
}

// Env is a getenv whose values may be secret references.
type Env struct {
	ctx    context.Context
	getenv func(string) string
	open   func() (*Resolver, error)

	mu       sync.Mutex
	resolver *Resolver
	values   map[string]string
	errs     map[string]error
}

// NewEnv wraps getenv. open makes the resolver, called only when a first
// reference is met, so that a configuration without references never
// touches AWS.
func NewEnv(ctx context.Context, getenv func(string) string, open func() (*Resolver, error)) *Env {
	return &Env{ctx: ctx, getenv: getenv, open: open, values: map[string]string{}, errs: map[string]error{}}
}

// Getenv returns the variable's value, resolved when it is a reference.
// A reference that cannot be resolved reads as "" and its error is kept
// for Err.
func (e *Env) Getenv(name string) string {
	v := e.getenv(name)
	if !IsRef(v) {
		return v
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if s, ok := e.values[name]; ok {
		return s
	}
	if _, failed := e.errs[name]; failed {
		return ""
	}
	s, err := e.resolve(v)
	if err != nil {
		e.errs[name] = fmt.Errorf("%s: %w", name, err)
		return ""
	}
	e.values[name] = s
	return s
}

func (e *Env) resolve(v string) (string, error) {
	if e.resolver == nil {
		if _, _, err := ParseRef(v); err != nil {
			return "", err
		}
		r, err := e.open()
		if err != nil {
			return "", fmt.Errorf("secrets manager: %w", err)
		}
		e.resolver = r
	}
	return e.resolver.Resolve(e.ctx, v)
}

// Err returns the errors of the references read so far, one per variable
// (nil when all resolved).
func (e *Env) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for _, n := range slices.Sorted(maps.Keys(e.errs)) {
		errs = append(errs, e.errs[n])
	}
	return errors.Join(errs...)
}

// Resolved returns the names of the variables that were references and
// resolved, for a start-up log line (names only, never values).
func (e *Env) Resolved() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Sorted(maps.Keys(e.values))
}
