// Authentication: verifying and issuing JWTs, and the middleware that puts the
// caller's identity on a request.

package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/schemas"
)

// AuthConfig configures JWT authentication.
type AuthConfig struct {
	// Secret is the HS256 key; at least 32 bytes.
	Secret []byte
	// Issuer every token must carry in "iss". Default: parley.
	Issuer string
	// Audience every token must carry in "aud". Default: parley.
	Audience string
	// Leeway is the clock skew tolerated on exp and nbf, the same on
	// every transport: a token is valid until exp+Leeway, and a socket
	// closes then. Default: DefaultLeeway; NoLeeway (any negative value)
	// tolerates none.
	Leeway time.Duration
}

// DefaultLeeway is the clock skew tolerated by default: hosts kept in time
// by NTP differ by milliseconds, and a token refused a few seconds early
// or late costs a client one refresh.
const DefaultLeeway = 5 * time.Second

// NoLeeway as AuthConfig.Leeway tolerates no clock skew.
const NoLeeway time.Duration = -1

func (c AuthConfig) withDefaults() AuthConfig {
	if c.Issuer == "" {
		c.Issuer = "parley"
	}
	if c.Audience == "" {
		c.Audience = "parley"
	}
	switch {
	case c.Leeway == 0:
		c.Leeway = DefaultLeeway
	case c.Leeway < 0:
		c.Leeway = 0
	}
	return c
}

// Validate reports every problem of c at once.
func (c AuthConfig) Validate() error {
	if len(c.Secret) < 32 {
		return fmt.Errorf("jwt secret must be at least 32 bytes, got %d", len(c.Secret))
	}
	return nil
}

// Errors of authentication. ErrTokenExpired is told apart because a
// client should fetch a new token rather than give up.
var (
	ErrUnauthenticated = errors.New("missing or invalid token")
	ErrTokenExpired    = errors.New("token expired")
)

// Identity is an authenticated user.
type Identity struct {
	UserID    string
	ExpiresAt time.Time
}

// Verifier verifies bearer tokens; the HTTP middleware and the WebSocket
// (header and auth frame) use the same one, so that a token is accepted
// or refused alike on every transport. Implementations are safe for
// concurrent use.
type Verifier interface {
	// Verify returns the identity of a valid token; its errors wrap
	// ErrUnauthenticated or are ErrTokenExpired.
	Verify(token string) (Identity, error)
	// Leeway is the clock skew tolerated on exp: a socket closes at
	// exp+Leeway.
	Leeway() time.Duration
}

var (
	_ Verifier = (*Authenticator)(nil)
	_ Verifier = (*OIDCVerifier)(nil)
)

// Authenticator verifies HS256 bearer tokens. It is safe for concurrent
// use.
type Authenticator struct {
	cfg    AuthConfig
	parser *jwt.Parser
}

// NewAuthenticator returns an Authenticator for cfg.
func NewAuthenticator(cfg AuthConfig) (*Authenticator, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Authenticator{
		cfg: cfg,
		// Only HS256 is accepted: the allow-list is what stops "none" and
		// algorithm-confusion tokens.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithIssuedAt(),
		),
	}, nil
}

// Leeway returns the clock skew a tolerates on exp and nbf.
func (a *Authenticator) Leeway() time.Duration { return a.cfg.Leeway }

// Verify checks a token's signature, algorithm, iss, aud, exp, nbf and
// iat (each with the leeway), and that its subject is a valid user id.
// The identity's ExpiresAt is the token's exp, without the leeway.
func (a *Authenticator) Verify(token string) (Identity, error) {
	var claims jwt.RegisteredClaims
	_, err := a.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return a.cfg.Secret, nil })
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Identity{}, ErrTokenExpired
		}
		return Identity{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	if !schemas.ValidUserID(claims.Subject) {
		return Identity{}, fmt.Errorf("%w: subject %q is not a valid user id", ErrUnauthenticated, claims.Subject)
	}
	return Identity{UserID: claims.Subject, ExpiresAt: claims.ExpiresAt.Time}, nil
}

// Issue returns a signed token for user, valid for ttl. It is what
// `parley token` prints for the embedded default's dev secret.
func (a *Authenticator) Issue(user string, ttl time.Duration, now time.Time) (string, error) {
	if !schemas.ValidUserID(user) {
		return "", fmt.Errorf("invalid user id %q", user)
	}
	claims := jwt.RegisteredClaims{
		Issuer:    a.cfg.Issuer,
		Subject:   user,
		Audience:  jwt.ClaimStrings{a.cfg.Audience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(a.cfg.Secret)
	if err != nil {
		return "", fmt.Errorf("signing token: %w", err)
	}
	return s, nil
}

type ctxKey struct{}

func identity(ctx context.Context) Identity { id, _ := ctx.Value(ctxKey{}).(Identity); return id }

// authenticate requires a valid bearer token.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok {
			writeProblem(w, s.reject("gateway", s.authFailed(r, newError(codeUnauthorized, "an Authorization: Bearer token is required"))))
			return
		}
		id, err := s.cfg.Auth.Verify(token)
		if err != nil {
			writeProblem(w, s.reject("gateway", s.authFailed(r, authError(err))))
			return
		}
		if d := s.userRequests.take(id.UserID); d > 0 {
			writeProblem(w, s.reject("gateway", rateLimited("requests", d)))
			return
		}
		if writes(r.Method) {
			if d := s.userCommands.take(id.UserID); d > 0 {
				writeProblem(w, s.reject("gateway", rateLimited("commands", d)))
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

// authFailed counts a failed authentication against the client address
// of r and returns the answer to it: e, or rate_limited when the address
// has failed too often. A request with a valid token is never refused
// for its address's failures, so that clients sharing an address (a NAT,
// a load balancer not listed in TrustedProxies) are not locked out by
// one of them.
func (s *Server) authFailed(r *http.Request, e *apiError) *apiError {
	ip, limited := s.limitedAddress(r)
	if !limited {
		return e
	}
	if d := s.ipAuthFailures.take(ip); d > 0 {
		return rateLimited("failed authentications from this address", d)
	}
	return e
}

// writes reports whether an HTTP request of method is a command, which
// the user's command rate limit counts.
func writes(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// authError is the answer to a token Verify refused, on either transport.
func authError(err error) *apiError {
	if errors.Is(err, ErrTokenExpired) {
		return newError(codeTokenExpired, err.Error())
	}
	return newError(codeUnauthorized, err.Error())
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:]), true
	}
	return "", false
}
