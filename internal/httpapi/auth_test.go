package httpapi_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/webordinary/hermes/internal/config"
)

const (
	jwtSecret   = "0123456789abcdef0123456789abcdef-hermes-test" // ≥ 32 bytes
	jwtIssuer   = "https://auth.example.com/"
	jwtAudience = "hermes"
)

// claims returns valid claims for scope at the test clock's time, changed
// by the edits (a nil value deletes the claim).
func claims(a *testAPI, scope any, edits map[string]any) jwt.MapClaims {
	now := a.Clock.Now()
	c := jwt.MapClaims{
		"iss": jwtIssuer, "aud": jwtAudience, "sub": "someone",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "scope": scope,
	}
	for k, v := range edits {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func signHS(t *testing.T, c jwt.MapClaims, secret string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func signRS(t *testing.T, c jwt.MapClaims, k *rsa.PrivateKey) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, c).SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func signNone(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rsaKeys are two RSA keys, generated once for the package's tests (2048-bit
// generation is slow under the race detector).
var rsaKeys = sync.OnceValues(func() ([2]*rsa.PrivateKey, error) {
	var ks [2]*rsa.PrivateKey
	for i := range ks {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return ks, err
		}
		ks[i] = k
	}
	return ks, nil
})

// rsaKey returns RSA key i (0 or 1).
func rsaKey(t *testing.T, i int) *rsa.PrivateKey {
	t.Helper()
	ks, err := rsaKeys()
	if err != nil {
		t.Fatal(err)
	}
	return ks[i]
}

// want401 checks a 401 problem that does not echo the credentials.
func want401(t *testing.T, r *response, credential string) {
	t.Helper()
	r.want(t, http.StatusUnauthorized)
	p := r.Problem(t)
	if www := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(www, "Bearer") {
		t.Errorf("WWW-Authenticate %q", www)
	}
	if p.Detail == "" {
		t.Error("401 without detail")
	}
	if credential != "" {
		for _, part := range append(strings.Split(credential, "."), credential) {
			if len(part) >= 8 && strings.Contains(string(r.Body), part) {
				t.Errorf("401 body echoes the credential (%q): %s", part, r.Body)
			}
		}
		for k, vs := range r.Header {
			for _, v := range vs {
				if strings.Contains(v, credential) {
					t.Errorf("header %s echoes the credential", k)
				}
			}
		}
	}
}

func TestAPIKeyAuth(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	cases := []struct {
		name   string
		header string // the Authorization header; "" for none
		status int
	}{
		{"missing header", "", http.StatusUnauthorized},
		{"basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+adminKey)), http.StatusUnauthorized},
		{"key without scheme", adminKey, http.StatusUnauthorized},
		{"bearer without token", "Bearer ", http.StatusUnauthorized},
		{"bearer only spaces", "Bearer    ", http.StatusUnauthorized},
		{"unknown key", "Bearer not-a-configured-key-0123", http.StatusUnauthorized},
		{"key with a suffix", "Bearer " + adminKey + "x", http.StatusUnauthorized},
		{"key prefix", "Bearer " + adminKey[:len(adminKey)-1], http.StatusUnauthorized},
		{"JWT-shaped garbage without JWT configured", "Bearer aaa.bbb.ccc", http.StatusUnauthorized},
		{"admin key", "Bearer " + adminKey, http.StatusOK},
		{"lowercase scheme", "bearer " + adminKey, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hdr := map[string]string{}
			if tc.header != "" {
				hdr["Authorization"] = tc.header
			}
			r := a.do(t, request{Method: "GET", Path: "/api/clients", Header: hdr})
			if tc.status == http.StatusUnauthorized {
				cred := tc.header
				if _, after, ok := strings.Cut(tc.header, " "); ok {
					cred = after
				}
				want401(t, r, strings.TrimSpace(cred))
				return
			}
			r.want(t, tc.status)
		})
	}
}

func TestJWTAuthHS256(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, withJWT(config.JWTConfig{Secret: []byte(jwtSecret), Issuer: jwtIssuer, Audience: jwtAudience, ScopeClaim: "scope"}))
	amelia := a.activate(t, ameliaKey)
	var other struct{ SessionID string }
	a.do(t, request{Method: "POST", Path: activatePath, Key: otherKey,
		Body: map[string]string{"clientId": "other", "projectId": "one", "userId": "ann", "instruction": "x"}}).want(t, http.StatusCreated).JSON(t, &other)
	rsKey := rsaKey(t, 1)
	now := a.Clock.Now()

	type call struct {
		method, path string
		status       int
	}
	adminOK := []call{{"GET", "/api/clients", http.StatusOK}, {"GET", "/api/clients/amelia", http.StatusOK},
		{"GET", "/api/sessions/" + amelia + "/status", http.StatusOK}, {"GET", "/api/sessions/client/other", http.StatusOK}}
	ameliaOnly := []call{{"GET", "/api/sessions/client/amelia", http.StatusOK}, {"GET", "/api/sessions/" + amelia + "/status", http.StatusOK},
		{"GET", "/api/sessions/client/other", http.StatusNotFound}, {"GET", "/api/sessions/" + other.SessionID + "/status", http.StatusNotFound},
		{"GET", "/api/clients", http.StatusForbidden}}
	rejected := []call{{"GET", "/api/clients", http.StatusUnauthorized}, {"GET", "/api/sessions/client/amelia", http.StatusUnauthorized}}

	cases := []struct {
		name  string
		token func() string
		calls []call
	}{
		{"admin", func() string { return signHS(t, claims(a, "admin", nil), jwtSecret) }, adminOK},
		{"client scope", func() string { return signHS(t, claims(a, "client:amelia", nil), jwtSecret) }, ameliaOnly},
		{"scope as an array", func() string {
			return signHS(t, claims(a, []string{"openid", "client:amelia"}, nil), jwtSecret)
		}, ameliaOnly},
		{"space-separated scopes with unknown ones", func() string {
			return signHS(t, claims(a, "openid profile client:amelia", nil), jwtSecret)
		}, ameliaOnly},
		{"audience as an array", func() string {
			return signHS(t, claims(a, "admin", map[string]any{"aud": []string{"other-api", jwtAudience}}), jwtSecret)
		}, adminOK},
		{"expired within the leeway", func() string {
			return signHS(t, claims(a, "admin", map[string]any{"exp": now.Add(-10 * time.Second).Unix()}), jwtSecret)
		}, adminOK},
		{"expired", func() string {
			return signHS(t, claims(a, "admin", map[string]any{"exp": now.Add(-time.Hour).Unix()}), jwtSecret)
		}, rejected},
		{"not yet valid", func() string {
			return signHS(t, claims(a, "admin", map[string]any{"nbf": now.Add(time.Hour).Unix()}), jwtSecret)
		}, rejected},
		{"wrong issuer", func() string {
			return signHS(t, claims(a, "admin", map[string]any{"iss": "https://evil.example.com/"}), jwtSecret)
		}, rejected},
		{"missing issuer", func() string { return signHS(t, claims(a, "admin", map[string]any{"iss": nil}), jwtSecret) }, rejected},
		{"wrong audience", func() string {
			return signHS(t, claims(a, "admin", map[string]any{"aud": "another-service"}), jwtSecret)
		}, rejected},
		{"missing audience", func() string { return signHS(t, claims(a, "admin", map[string]any{"aud": nil}), jwtSecret) }, rejected},
		{"missing exp", func() string { return signHS(t, claims(a, "admin", map[string]any{"exp": nil}), jwtSecret) }, rejected},
		{"alg none", func() string { return signNone(t, claims(a, "admin", nil)) }, rejected},
		{"wrong secret", func() string { return signHS(t, claims(a, "admin", nil), jwtSecret+"x") }, rejected},
		{"RS256 when only HS256 is configured", func() string { return signRS(t, claims(a, "admin", nil), rsKey) }, rejected},
		{"no recognised scope", func() string { return signHS(t, claims(a, "read write client:", nil), jwtSecret) }, rejected},
		{"no scope claim", func() string { return signHS(t, claims(a, nil, map[string]any{"scope": nil}), jwtSecret) }, rejected},
		{"scope of the wrong type", func() string { return signHS(t, claims(a, 42, nil), jwtSecret) }, rejected},
		{"malformed client scope", func() string { return signHS(t, claims(a, "client:Not_A_Slug", nil), jwtSecret) }, rejected},
		{"tampered payload", func() string {
			good := signHS(t, claims(a, "client:amelia", nil), jwtSecret)
			forged := signHS(t, claims(a, "admin", nil), "another secret that is long enough!!")
			p := strings.Split(good, ".")
			p[1] = strings.Split(forged, ".")[1]
			return strings.Join(p, ".")
		}, rejected},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			token := tc.token()
			for _, c := range tc.calls {
				r := a.do(t, request{Method: c.method, Path: c.path, Key: token})
				if c.status == http.StatusUnauthorized {
					want401(t, r, token)
					continue
				}
				r.want(t, c.status)
				if c.status >= 400 {
					r.Problem(t)
				}
			}
		})
	}
}

func TestJWTAuthRS256(t *testing.T) {
	t.Parallel()
	key := rsaKey(t, 0)
	a := newTestAPI(t, withJWT(config.JWTConfig{PublicKey: &key.PublicKey, Issuer: jwtIssuer, Audience: jwtAudience, ScopeClaim: "scope"}))
	id := a.activate(t, ameliaKey)
	other := rsaKey(t, 1)

	cases := []struct {
		name   string
		token  string
		path   string
		status int
	}{
		{"admin", signRS(t, claims(a, "admin", nil), key), "/api/clients", http.StatusOK},
		{"client scope", signRS(t, claims(a, "client:amelia", nil), key), "/api/sessions/" + id + "/status", http.StatusOK},
		{"client scope on another client", signRS(t, claims(a, "client:other", nil), key), "/api/sessions/" + id + "/status", http.StatusNotFound},
		{"signed by another key", signRS(t, claims(a, "admin", nil), other), "/api/clients", http.StatusUnauthorized},
		{"HS256 when only RS256 is configured", signHS(t, claims(a, "admin", nil), jwtSecret), "/api/clients", http.StatusUnauthorized},
		// Algorithm confusion: the public key used as an HMAC secret.
		{"HS256 keyed with the public key", signHS(t, claims(a, "admin", nil), string(key.PublicKey.N.Bytes())), "/api/clients", http.StatusUnauthorized},
		{"alg none", signNone(t, claims(a, "admin", nil)), "/api/clients", http.StatusUnauthorized},
		{"expired", signRS(t, claims(a, "admin", map[string]any{"exp": a.Clock.Now().Add(-time.Hour).Unix()}), key), "/api/clients", http.StatusUnauthorized},
		{"API keys still work", adminKey, "/api/clients", http.StatusOK},
	}
	t.Run("tokens", func(t *testing.T) { // returns when its parallel subtests are done
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				r := a.do(t, request{Method: "GET", Path: tc.path, Key: tc.token})
				if tc.status == http.StatusUnauthorized {
					want401(t, r, tc.token)
					return
				}
				r.want(t, tc.status)
			})
		}
	})

	// The clock the tokens are checked against is Hermes's: advancing it
	// past exp makes a valid token expire.
	t.Run("expires with the clock", func(t *testing.T) {
		tok := signRS(t, claims(a, "admin", nil), key)
		a.do(t, request{Method: "GET", Path: "/api/clients", Key: tok}).want(t, http.StatusOK)
		a.Clock.Advance(2 * time.Hour)
		want401(t, a.do(t, request{Method: "GET", Path: "/api/clients", Key: tok}), tok)
	})
}
