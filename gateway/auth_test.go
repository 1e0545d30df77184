package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func newAuth(t *testing.T) *Authenticator {
	t.Helper()
	a, err := NewAuthenticator(AuthConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claims returns valid claims for alice, changed by f.
func claims(f func(jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"iss": "parley", "aud": "parley", "sub": "alice",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	if f != nil {
		f(c)
	}
	return c
}

func TestVerify(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) int64 { return time.Now().Add(d).Unix() }
	hs256 := func(f func(jwt.MapClaims)) string { return sign(t, jwt.SigningMethodHS256, testSecret, claims(f)) }
	good := hs256(nil)
	parts := strings.Split(good, ".")
	forged := strings.Split(hs256(func(c jwt.MapClaims) { c["sub"] = "mallory" }), ".")

	tests := []struct {
		name    string
		token   string
		wantErr error // nil: accepted as alice
	}{
		{"a good HS256 token is accepted", good, nil},
		{"an audience list that includes parley is accepted", hs256(func(c jwt.MapClaims) { c["aud"] = []string{"other", "parley"} }), nil},
		{"a token without nbf and iat is accepted", hs256(func(c jwt.MapClaims) { delete(c, "nbf"); delete(c, "iat") }), nil},

		{"alg none is rejected", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)), ErrUnauthenticated},
		{"HS384 is rejected", sign(t, jwt.SigningMethodHS384, testSecret, claims(nil)), ErrUnauthenticated},
		{"HS512 is rejected", sign(t, jwt.SigningMethodHS512, testSecret, claims(nil)), ErrUnauthenticated},
		{"RS256 is rejected", sign(t, jwt.SigningMethodRS256, rsaKey, claims(nil)), ErrUnauthenticated},
		{"ES256 is rejected", sign(t, jwt.SigningMethodES256, ecKey, claims(nil)), ErrUnauthenticated},
		{"a token signed with another secret is rejected", sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), claims(nil)), ErrUnauthenticated},
		{"a token whose claims were changed is rejected", forged[0] + "." + forged[1] + "." + parts[2], ErrUnauthenticated},
		{"a token without its signature is rejected", parts[0] + "." + parts[1] + ".", ErrUnauthenticated},
		{"another issuer is rejected", hs256(func(c jwt.MapClaims) { c["iss"] = "evil" }), ErrUnauthenticated},
		{"a missing issuer is rejected", hs256(func(c jwt.MapClaims) { delete(c, "iss") }), ErrUnauthenticated},
		{"another audience is rejected", hs256(func(c jwt.MapClaims) { c["aud"] = "other" }), ErrUnauthenticated},
		{"a missing audience is rejected", hs256(func(c jwt.MapClaims) { delete(c, "aud") }), ErrUnauthenticated},
		{"an expired token is rejected as expired", hs256(func(c jwt.MapClaims) { c["exp"] = at(-time.Hour) }), ErrTokenExpired},
		{"a token not valid before an hour from now is rejected", hs256(func(c jwt.MapClaims) { c["nbf"] = at(time.Hour) }), ErrUnauthenticated},
		{"a token issued in the future is rejected", hs256(func(c jwt.MapClaims) { c["iat"] = at(time.Hour) }), ErrUnauthenticated},
		{"a token without exp is rejected", hs256(func(c jwt.MapClaims) { delete(c, "exp") }), ErrUnauthenticated},
		{"an empty subject is rejected", hs256(func(c jwt.MapClaims) { c["sub"] = "" }), ErrUnauthenticated},
		{"a missing subject is rejected", hs256(func(c jwt.MapClaims) { delete(c, "sub") }), ErrUnauthenticated},
		{"a subject with a space is rejected", hs256(func(c jwt.MapClaims) { c["sub"] = "al ice" }), ErrUnauthenticated},
		{"a subject over 128 characters is rejected", hs256(func(c jwt.MapClaims) { c["sub"] = strings.Repeat("a", 129) }), ErrUnauthenticated},
		{"an empty token is rejected", "", ErrUnauthenticated},
		{"garbage is rejected", "not.a.token", ErrUnauthenticated},
	}
	a := newAuth(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, err := a.Verify(tt.token)
			if tt.wantErr == nil {
				if err != nil || id.UserID != "alice" || id.ExpiresAt.IsZero() {
					t.Errorf("Verify = %+v, %v; want alice", id, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Verify error = %v, want %v", err, tt.wantErr)
			}
			if id != (Identity{}) {
				t.Errorf("Verify returned identity %+v with the error", id)
			}
		})
	}
}

func TestLeeway(t *testing.T) {
	t.Parallel()
	// Tokens are made right before they are verified: the leeway is
	// seconds, and a busy machine takes some between a table and its run.
	expiredBy := func(d time.Duration) string {
		return sign(t, jwt.SigningMethodHS256, testSecret, claims(func(c jwt.MapClaims) {
			c["iat"], c["nbf"], c["exp"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-time.Hour).Unix(), time.Now().Add(-d).Unix()
		}))
	}
	notBeforeIn := func(d time.Duration) string {
		return sign(t, jwt.SigningMethodHS256, testSecret, claims(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(d).Unix() }))
	}
	tests := []struct {
		name      string
		leeway    time.Duration
		want      time.Duration
		expiredBy time.Duration
		accepted  bool
	}{
		{"the default is 5s", 0, 5 * time.Second, 2 * time.Second, true},
		{"the default refuses beyond 5s", 0, 5 * time.Second, 8 * time.Second, false},
		{"NoLeeway tolerates none", NoLeeway, 0, 2 * time.Second, false},
		{"a longer leeway is honoured", 30 * time.Second, 30 * time.Second, 20 * time.Second, true},
		{"a longer leeway ends too", 30 * time.Second, 30 * time.Second, 40 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := NewAuthenticator(AuthConfig{Secret: testSecret, Leeway: tt.leeway})
			if err != nil {
				t.Fatal(err)
			}
			if a.Leeway() != tt.want {
				t.Errorf("Leeway() = %v, want %v", a.Leeway(), tt.want)
			}
			_, err = a.Verify(expiredBy(tt.expiredBy))
			if tt.accepted && err != nil {
				t.Errorf("a token expired %v ago: %v, want it accepted", tt.expiredBy, err)
			}
			if !tt.accepted && !errors.Is(err, ErrTokenExpired) {
				t.Errorf("a token expired %v ago: %v, want ErrTokenExpired", tt.expiredBy, err)
			}
			// The same leeway before nbf: a token valid that far from now.
			_, err = a.Verify(notBeforeIn(tt.expiredBy))
			if tt.accepted && err != nil {
				t.Errorf("a token valid in %v: %v, want it accepted", tt.expiredBy, err)
			}
			if !tt.accepted && !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("a token valid in %v: %v, want ErrUnauthenticated", tt.expiredBy, err)
			}
		})
	}
}

func TestIssue(t *testing.T) {
	t.Parallel()
	a := newAuth(t)
	t.Run("an issued token verifies as its user until it expires", func(t *testing.T) {
		t.Parallel()
		now := time.Now()
		tok, err := a.Issue("bob@example.com", time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		id, err := a.Verify(tok)
		if err != nil {
			t.Fatal(err)
		}
		if id.UserID != "bob@example.com" || !id.ExpiresAt.Equal(now.Add(time.Hour).Truncate(time.Second)) {
			t.Errorf("Verify = %+v, want bob@example.com expiring at %v", id, now.Add(time.Hour).Truncate(time.Second))
		}
	})
	t.Run("an issued token past its ttl is expired", func(t *testing.T) {
		t.Parallel()
		tok, err := a.Issue("bob", time.Minute, time.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Verify(tok); !errors.Is(err, ErrTokenExpired) {
			t.Errorf("Verify = %v, want ErrTokenExpired", err)
		}
	})
	t.Run("an invalid user id gets no token", func(t *testing.T) {
		t.Parallel()
		if tok, err := a.Issue("not valid", time.Hour, time.Now()); err == nil {
			t.Errorf("Issue = %q, want an error", tok)
		}
	})
	t.Run("a token from another issuer or secret does not verify", func(t *testing.T) {
		t.Parallel()
		for _, cfg := range []AuthConfig{
			{Secret: testSecret, Issuer: "other"},
			{Secret: testSecret, Audience: "other"},
			{Secret: []byte(strings.Repeat("s", 32))},
		} {
			other, err := NewAuthenticator(cfg)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := other.Issue("bob", time.Hour, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Verify(tok); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("token of %+v: Verify = %v, want ErrUnauthenticated", cfg, err)
			}
		}
	})
}

func TestNewAuthenticatorNeedsALongSecret(t *testing.T) {
	t.Parallel()
	if _, err := NewAuthenticator(AuthConfig{Secret: []byte("short")}); err == nil {
		t.Error("NewAuthenticator accepted a 5-byte secret")
	}
	if _, err := NewAuthenticator(AuthConfig{}); err == nil {
		t.Error("NewAuthenticator accepted no secret")
	}
}
