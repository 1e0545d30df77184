// OpenID Connect: verifying tokens an organisation's identity provider
// signs, with keys found by discovery and fetched from its JWKS.

package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/internal/retry"
	"github.com/parley-chat/parley/schemas"
)

// OIDCConfig configures verification of tokens from OpenID providers.
type OIDCConfig struct {
	// Issuers are the accepted issuer URLs, exactly as the providers
	// write them in "iss"; each one's keys are found through
	// <issuer>/.well-known/openid-configuration. At least one.
	Issuers []string
	// Audience every token must carry in "aud" (usually the client id
	// Parley is registered under at the provider). Required.
	Audience string
	// UserClaim is the claim holding the Parley user id: "sub",
	// "preferred_username" or "email". Default: sub.
	UserClaim string
	// Leeway is the clock skew tolerated on exp, nbf and iat.
	// Default: DefaultLeeway; NoLeeway tolerates none.
	Leeway time.Duration
	// Client makes discovery and JWKS requests. Default: a client with a
	// 10s timeout.
	Client *http.Client
	// RefreshInterval is how often each JWKS is fetched again, so that
	// keys a provider adds are known before its tokens arrive and keys it
	// removes stop being accepted. Default: 15m.
	RefreshInterval time.Duration
	// UnknownKIDRefresh is the least time between two fetches of a JWKS
	// caused by a token whose kid is not known (a provider rotated its
	// key); tokens with unknown kids in between are refused at once.
	// Default: 10s.
	UnknownKIDRefresh time.Duration
	// RetryMax bounds the backoff between discovery attempts at start.
	// Default: 30s.
	RetryMax time.Duration
	// Logger logs discovery and refresh failures. Default: discards.
	Logger *slog.Logger
}

// UserClaims are the claims OIDCConfig.UserClaim may name.
var UserClaims = []string{"sub", "preferred_username", "email"}

// OIDCAlgorithms are the signature algorithms accepted from providers.
// Which one applies to a token is decided by the key its kid names, not
// by the token's header (RFC 8725 section 3.1): HS256 and "none" are
// never accepted, so a public key can never serve as an HMAC secret.
var OIDCAlgorithms = []string{"RS256", "PS256", "ES256", "EdDSA"}

func (c OIDCConfig) withDefaults() OIDCConfig {
	if c.UserClaim == "" {
		c.UserClaim = "sub"
	}
	switch {
	case c.Leeway == 0:
		c.Leeway = DefaultLeeway
	case c.Leeway < 0:
		c.Leeway = 0
	}
	if c.Client == nil {
		c.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = 15 * time.Minute
	}
	if c.UnknownKIDRefresh <= 0 {
		c.UnknownKIDRefresh = 10 * time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem of c at once.
func (c OIDCConfig) Validate() error {
	var errs []error
	if len(c.Issuers) == 0 {
		errs = append(errs, errors.New("oidc: at least one issuer is required"))
	}
	for _, iss := range c.Issuers {
		if !strings.HasPrefix(iss, "https://") && !strings.HasPrefix(iss, "http://") {
			errs = append(errs, fmt.Errorf("oidc: issuer %q is not an http(s) URL", iss))
		}
	}
	if c.Audience == "" {
		errs = append(errs, errors.New("oidc: an audience is required"))
	}
	if c.UserClaim != "" && !slices.Contains(UserClaims, c.UserClaim) {
		errs = append(errs, fmt.Errorf("oidc: user claim %q is not one of %s", c.UserClaim, strings.Join(UserClaims, ", ")))
	}
	return errors.Join(errs...)
}

// ErrKeysNotLoaded is wrapped by Verify's error for a token of an issuer
// whose discovery document or JWKS has not been fetched yet.
var ErrKeysNotLoaded = errors.New("the identity provider's keys are not loaded yet")

// OIDCVerifier verifies tokens signed by OpenID providers. Create it
// with NewOIDCVerifier and start it with Run, which discovers each
// issuer's JWKS (retrying until the provider answers) and keeps the keys
// fresh until its context is done. It is safe for concurrent use.
type OIDCVerifier struct {
	cfg     OIDCConfig
	parsers map[string]*jwt.Parser
	// unverified reads "iss" to choose the issuer's keys before the
	// signature is checked; nothing else from it is trusted.
	unverified *jwt.Parser

	mu    sync.RWMutex
	keys  map[string]issuerKeys // by issuer
	errs  map[string]error      // the last discovery failure, by issuer
	ready chan struct{}
}

// NewOIDCVerifier returns a verifier for cfg; it fetches nothing until
// Run.
func NewOIDCVerifier(cfg OIDCConfig) (*OIDCVerifier, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// An issuer listed twice is one issuer: Ready counts them.
	cfg.Issuers = slices.Compact(slices.Sorted(slices.Values(cfg.Issuers)))
	v := &OIDCVerifier{
		cfg: cfg, parsers: make(map[string]*jwt.Parser), unverified: jwt.NewParser(),
		keys: make(map[string]issuerKeys), errs: make(map[string]error), ready: make(chan struct{}),
	}
	for _, iss := range cfg.Issuers {
		v.parsers[iss] = jwt.NewParser(
			jwt.WithValidMethods(OIDCAlgorithms),
			jwt.WithIssuer(iss),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithIssuedAt(),
		)
		v.errs[iss] = errors.New("discovery not attempted yet")
	}
	return v, nil
}

// Leeway returns the clock skew v tolerates on exp, nbf and iat.
func (v *OIDCVerifier) Leeway() time.Duration { return v.cfg.Leeway }

// Ready is closed once the keys of every issuer are loaded.
func (v *OIDCVerifier) Ready() <-chan struct{} { return v.ready }

// ReadyCheck is the /readyz check: nil once every issuer's keys are
// loaded, else which are missing and why.
func (v *OIDCVerifier) ReadyCheck(context.Context) error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var errs []error
	for _, iss := range v.cfg.Issuers {
		if _, ok := v.keys[iss]; !ok {
			errs = append(errs, fmt.Errorf("keys of %s not loaded: %w", iss, v.errs[iss]))
		}
	}
	return errors.Join(errs...)
}

// Run discovers every issuer's JWKS, retrying each with backoff until it
// is loaded, and then keeps the keys fresh until ctx is done; it returns
// when ctx is done.
func (v *OIDCVerifier) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, iss := range v.cfg.Issuers {
		wg.Go(func() { v.load(ctx, iss) })
	}
	wg.Wait()
	<-ctx.Done()
	return nil
}

// load discovers iss's keys, retrying until it succeeds or ctx is done.
func (v *OIDCVerifier) load(ctx context.Context, iss string) {
	var kf issuerKeys
	err := retry.Backoff{Max: v.cfg.RetryMax, OnRetry: func(err error, wait time.Duration) {
		v.mu.Lock()
		v.errs[iss] = err
		v.mu.Unlock()
		v.cfg.Logger.Warn("oidc discovery failed; retrying", "issuer", iss, "err", err, "backoff", wait)
	}}.Do(ctx, func(ctx context.Context) (err error) {
		kf, err = v.discover(ctx, iss)
		return err
	})
	if err != nil {
		return // ctx is done
	}
	v.mu.Lock()
	v.keys[iss] = kf
	delete(v.errs, iss)
	if len(v.keys) == len(v.cfg.Issuers) {
		close(v.ready)
	}
	v.mu.Unlock()
	v.cfg.Logger.Info("oidc keys loaded", "issuer", iss)
}

// discover reads iss's discovery document and fetches the JWKS it
// names; the returned keys refresh themselves until ctx is done.
func (v *OIDCVerifier) discover(ctx context.Context, iss string) (issuerKeys, error) {
	u := strings.TrimSuffix(iss, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return issuerKeys{}, err
	}
	resp, err := v.cfg.Client.Do(req)
	if err != nil {
		return issuerKeys{}, fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return issuerKeys{}, fmt.Errorf("discovery: %s answered %s", u, resp.Status)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return issuerKeys{}, fmt.Errorf("discovery: decoding %s: %w", u, err)
	}
	// OpenID Connect Discovery 1.0 section 4.3: the document's issuer
	// must be the one asked for, or a provider could speak for another.
	if doc.Issuer != iss {
		return issuerKeys{}, fmt.Errorf("discovery: %s names issuer %q, not %q", u, doc.Issuer, iss)
	}
	if doc.JWKSURI == "" {
		return issuerKeys{}, fmt.Errorf("discovery: %s has no jwks_uri", u)
	}
	// jwkset starts its refresh goroutine before the first fetch and
	// leaves it running when that fails: a context of its own ends it then.
	storeCtx, stop := context.WithCancel(ctx)
	store, err := jwkset.NewStorageFromHTTP(doc.JWKSURI, jwkset.HTTPClientStorageOptions{
		Client:          v.cfg.Client,
		Ctx:             storeCtx,
		RefreshInterval: v.cfg.RefreshInterval,
		RefreshErrorHandler: func(_ context.Context, err error) {
			v.cfg.Logger.Warn("oidc jwks refresh failed", "issuer", iss, "url", doc.JWKSURI, "err", err)
		},
	})
	if err != nil {
		stop()
		return issuerKeys{}, fmt.Errorf("jwks %s: %w", doc.JWKSURI, err)
	}
	// refreshing fetches the JWKS again whenever a kid is unknown;
	// issuerKeys.key calls it only as often as its limiter allows.
	refreshing, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{doc.JWKSURI: store},
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
	})
	if err != nil {
		stop()
		return issuerKeys{}, fmt.Errorf("jwks %s: %w", doc.JWKSURI, err)
	}
	cached, err := keyfunc.New(keyfunc.Options{Ctx: storeCtx, Storage: store})
	if err != nil {
		stop()
		return issuerKeys{}, err
	}
	fresh, err := keyfunc.New(keyfunc.Options{Ctx: storeCtx, Storage: refreshing})
	if err != nil {
		stop()
		return issuerKeys{}, err
	}
	return issuerKeys{cached: cached, fresh: fresh, refreshes: rate.NewLimiter(rate.Every(v.cfg.UnknownKIDRefresh), 1), stop: stop}, nil
}

// issuerKeys are the keys of one issuer.
type issuerKeys struct {
	cached, fresh keyfunc.Keyfunc
	// refreshes limits the fetches unknown kids cause, so that tokens
	// with made-up kids cannot make Parley hammer the provider.
	refreshes *rate.Limiter
	// stop ends the scheduled refresh (so does the end of Run's context).
	stop context.CancelFunc
}

// key returns the key t's kid names, fetching the JWKS again if the kid
// is unknown and the limiter allows; beyond the limit the token is
// refused at once rather than held.
func (k issuerKeys) key(t *jwt.Token) (any, error) {
	key, err := k.cached.Keyfunc(t)
	if errors.Is(err, jwkset.ErrKeyNotFound) && k.refreshes.Allow() {
		key, err = k.fresh.Keyfunc(t)
	}
	return key, err
}

// Verify checks a token's signature with its issuer's key, the key's
// algorithm, iss, aud, exp, nbf and iat (each with the leeway), and that
// the configured user claim holds a valid user id.
func (v *OIDCVerifier) Verify(token string) (Identity, error) {
	var peek jwt.RegisteredClaims
	if _, _, err := v.unverified.ParseUnverified(token, &peek); err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	parser, ok := v.parsers[peek.Issuer]
	if !ok {
		return Identity{}, fmt.Errorf("%w: issuer %q is not accepted", ErrUnauthenticated, peek.Issuer)
	}
	v.mu.RLock()
	kf, ok := v.keys[peek.Issuer]
	v.mu.RUnlock()
	if !ok {
		return Identity{}, fmt.Errorf("%w: %w (%s)", ErrUnauthenticated, ErrKeysNotLoaded, peek.Issuer)
	}
	claims := jwt.MapClaims{}
	_, err := parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, ok := t.Header["kid"].(string)
		if !ok {
			return nil, errors.New("token has no kid")
		}
		key, err := kf.key(t)
		if err != nil {
			return nil, fmt.Errorf("no usable key %q in the JWKS of %s: %w", kid, peek.Issuer, err)
		}
		if err := keyAllows(key, t.Method.Alg()); err != nil {
			return nil, err
		}
		return key, nil
	})
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Identity{}, ErrTokenExpired
		}
		return Identity{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	user, _ := claims[v.cfg.UserClaim].(string)
	if !schemas.ValidUserID(user) {
		return Identity{}, fmt.Errorf("%w: claim %s %q is not a valid user id", ErrUnauthenticated, v.cfg.UserClaim, user)
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return Identity{}, fmt.Errorf("%w: no exp", ErrUnauthenticated)
	}
	return Identity{UserID: user, ExpiresAt: exp.Time}, nil
}

// keyAllows reports whether key may verify a signature by alg: the
// algorithm is the key's, RSA keys allowing RS256 and PS256, P-256 keys
// ES256 and Ed25519 keys EdDSA. Anything else is refused.
func keyAllows(key any, alg string) error {
	ok := false
	switch k := key.(type) {
	case *rsa.PublicKey:
		ok = (alg == "RS256" || alg == "PS256") && k.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		ok = alg == "ES256" && k.Curve == elliptic.P256()
	case ed25519.PublicKey:
		ok = alg == "EdDSA"
	}
	if !ok {
		return fmt.Errorf("key of type %T does not sign with %s", key, alg)
	}
	return nil
}
