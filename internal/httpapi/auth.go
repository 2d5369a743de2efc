package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/config"
)

// Principal is the authenticated caller.
type Principal struct {
	Subject string // "api-key" or the JWT subject
	Scopes  []config.Scope
}

// Admin reports whether the caller has the admin scope.
func (p *Principal) Admin() bool {
	for _, s := range p.Scopes {
		if s.Admin {
			return true
		}
	}
	return false
}

// CanSeeClient reports whether the caller may see the client's data.
func (p *Principal) CanSeeClient(clientID string) bool {
	for _, s := range p.Scopes {
		if s.Admin || s.ClientID == clientID {
			return true
		}
	}
	return false
}

// Authenticator checks bearer credentials: API keys (kept as SHA-256
// hashes, compared in constant time) and JWTs (HS256 with a shared secret,
// RS256 with a public key; issuer, audience and expiry required).
type Authenticator struct {
	keys   []config.APIKey
	jwt    config.JWTConfig
	parser *jwt.Parser
}

// NewAuthenticator returns an authenticator for the configured keys and JWT
// settings. now is the clock JWT expiry is checked against.
func NewAuthenticator(keys []config.APIKey, j config.JWTConfig, now func() time.Time) *Authenticator {
	a := &Authenticator{keys: keys, jwt: j}
	if j.Enabled() {
		var methods []string
		if len(j.Secret) > 0 {
			methods = append(methods, jwt.SigningMethodHS256.Alg())
		}
		if j.PublicKey != nil {
			methods = append(methods, jwt.SigningMethodRS256.Alg())
		}
		opts := []jwt.ParserOption{
			jwt.WithValidMethods(methods), jwt.WithIssuer(j.Issuer), jwt.WithAudience(j.Audience),
			jwt.WithExpirationRequired(), jwt.WithLeeway(30 * time.Second),
		}
		if now != nil {
			opts = append(opts, jwt.WithTimeFunc(now))
		}
		a.parser = jwt.NewParser(opts...)
	}
	return a
}

// Authenticate returns the caller of r. Unauthorized when the credentials
// are missing or wrong; the message never says which part was wrong beyond
// what helps an honest caller.
func (a *Authenticator) Authenticate(r *http.Request) (*Principal, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" {
		return nil, hermes.Errorf(hermes.Unauthorized, "missing Authorization: Bearer credentials")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, hermes.Errorf(hermes.Unauthorized, "the Authorization header must be \"Bearer <token>\"")
	}
	token = strings.TrimSpace(token)
	if strings.Count(token, ".") == 2 && a.parser != nil {
		return a.fromJWT(token)
	}
	sum := sha256.Sum256([]byte(token))
	var found *config.APIKey
	for i := range a.keys { // every key is compared: timing does not tell which matched
		if subtle.ConstantTimeCompare(sum[:], a.keys[i].Hash[:]) == 1 {
			found = &a.keys[i]
		}
	}
	if found == nil {
		return nil, hermes.Errorf(hermes.Unauthorized, "invalid credentials")
	}
	return &Principal{Subject: "api-key", Scopes: []config.Scope{found.Scope}}, nil
}

func (a *Authenticator) fromJWT(token string) (*Principal, error) {
	claims := jwt.MapClaims{}
	_, err := a.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		switch t.Method.Alg() {
		case jwt.SigningMethodHS256.Alg():
			return a.jwt.Secret, nil
		case jwt.SigningMethodRS256.Alg():
			return a.jwt.PublicKey, nil
		}
		return nil, fmt.Errorf("unexpected signing method %s", t.Method.Alg())
	})
	if err != nil {
		return nil, &hermes.Error{Kind: hermes.Unauthorized, Message: "invalid token", Err: err}
	}
	scopes, err := scopesFromClaim(claims[a.jwt.ScopeClaim])
	if err != nil {
		return nil, &hermes.Error{Kind: hermes.Unauthorized, Message: "token has no usable " + a.jwt.ScopeClaim + " claim", Err: err}
	}
	sub, _ := claims.GetSubject()
	return &Principal{Subject: sub, Scopes: scopes}, nil
}

// scopesFromClaim reads a scope claim: a space-separated string (OAuth
// style) or an array of strings. Unknown scopes are ignored; at least one
// Hermes scope is required.
func scopesFromClaim(v any) ([]config.Scope, error) {
	var raw []string
	switch x := v.(type) {
	case string:
		raw = strings.Fields(x)
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok {
				raw = append(raw, s)
			}
		}
	}
	var out []config.Scope
	for _, s := range raw {
		if sc, err := config.ParseScope(s); err == nil {
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no admin or client:ID scope")
	}
	return out, nil
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

func principalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
