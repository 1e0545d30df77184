package gateway

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/internal/oidctest"
)

// startVerifier runs an OIDCVerifier for cfg until the test ends.
func startVerifier(t *testing.T, cfg OIDCConfig) *OIDCVerifier {
	t.Helper()
	v, err := NewOIDCVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = v.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return v
}

func waitReady(t *testing.T, v *OIDCVerifier) {
	t.Helper()
	select {
	case <-v.Ready():
	case <-time.After(10 * time.Second):
		t.Fatalf("keys not loaded: %v", v.ReadyCheck(context.Background()))
	}
}

// TestOIDCWithARealProvider signs in at zitadel's example OpenID provider
// over HTTP and uses the ID token against the gateway's HTTP API and
// WebSocket; the provider rotates its key through every accepted
// algorithm and sign-in keeps working without a restart.
func TestOIDCWithARealProvider(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an OpenID provider and signs in over HTTP; skipped under -short")
	}
	t.Parallel()
	p := oidctest.Start(t)
	v := startVerifier(t, OIDCConfig{Issuers: []string{p.Issuer}, Audience: oidctest.ClientID, UnknownKIDRefresh: time.Millisecond})

	// The provider is not up yet: Parley waits for it and says so.
	if err := v.ReadyCheck(context.Background()); err == nil {
		t.Fatal("ready before the provider answered")
	}
	if _, err := v.Verify(p.Sign(t, p.Current(), nil)); !errors.Is(err, ErrKeysNotLoaded) {
		t.Fatalf("before discovery Verify said %v, want %v", err, ErrKeysNotLoaded)
	}
	p.Up()
	waitReady(t, v)
	if err := v.ReadyCheck(context.Background()); err != nil {
		t.Fatalf("ready check after loading: %v", err)
	}

	e := newWSEnv(t, Config{Auth: v})
	base := "http" + strings.TrimSuffix(strings.TrimPrefix(e.url, "ws"), "/v1/ws")
	use := func(t *testing.T, tok string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/conversations", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		oidctest.Body(t, resp, http.StatusOK)

		c := e.dial(tok)
		write(t, c, `{"type":"ping","id":"p1"}`)
		if f := mustRead(t, c); f["type"] != "pong" || f["id"] != "p1" {
			t.Fatalf("answered %v to a ping on a socket with the token in the header", f)
		}
		c = e.dial("")
		b, _ := json.Marshal(map[string]string{"type": "auth", "id": "a1", "token": tok})
		write(t, c, string(b))
		if f := mustRead(t, c); f["type"] != "auth_ok" || f["user_id"] != oidctest.User2ID {
			t.Fatalf("answered %v to an auth frame", f)
		}
	}

	use(t, p.SignIn(t, oidctest.User2, oidctest.Password))
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.PS256, jose.EdDSA} {
		t.Run("after rotating to "+string(alg), func(t *testing.T) {
			p.Rotate(t, alg)
			tok := p.SignIn(t, oidctest.User2, oidctest.Password)
			if h := header(t, tok); h["kid"] != p.Current().KID || h["alg"] != string(alg) {
				t.Fatalf("the provider signed with %v, want the new %s key", h, alg)
			}
			use(t, tok)
		})
	}
}

func header(t *testing.T, tok string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestOIDCRefusals checks what a token must be: from an accepted issuer,
// for Parley's audience, within its lifetime, signed by a key in the
// issuer's JWKS with that key's algorithm, and naming a valid user.
func TestOIDCRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two OpenID providers and signs in over HTTP; skipped under -short")
	}
	t.Parallel()
	p, other := oidctest.Start(t), oidctest.Start(t)
	p.Up()
	other.Up()
	v := startVerifier(t, OIDCConfig{Issuers: []string{p.Issuer}, Audience: oidctest.ClientID, Leeway: NoLeeway})
	byName := startVerifier(t, OIDCConfig{Issuers: []string{p.Issuer}, Audience: oidctest.ClientID, UserClaim: "preferred_username"})
	waitReady(t, v)
	waitReady(t, byName)
	rs := p.Current()
	now := time.Now()

	if id, err := v.Verify(p.Sign(t, rs, nil)); err != nil || id.UserID != oidctest.User2ID {
		t.Fatalf("a valid self-signed token: %v, %v", id, err)
	}
	if id, err := byName.Verify(p.Sign(t, rs, jwt.MapClaims{"preferred_username": oidctest.User2})); err != nil || id.UserID != oidctest.User2 {
		t.Fatalf("preferred_username as the user id: %v, %v", id, err)
	}

	both := startVerifier(t, OIDCConfig{Issuers: []string{p.Issuer, other.Issuer, p.Issuer}, Audience: oidctest.ClientID})
	waitReady(t, both) // an issuer listed twice is waited for once
	for _, tok := range []string{p.SignIn(t, oidctest.User2, oidctest.Password), other.SignIn(t, oidctest.User2, oidctest.Password)} {
		if id, err := both.Verify(tok); err != nil || id.UserID != oidctest.User2ID {
			t.Errorf("with two issuers, a token of %v: %v, %v", header(t, tok)["kid"], id, err)
		}
	}

	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(rs.Signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	hsConfusion := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": p.Issuer, "aud": oidctest.ClientID, "sub": oidctest.User2ID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	hsConfusion.Header["kid"] = rs.KID
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": p.Issuer, "aud": oidctest.ClientID, "sub": oidctest.User2ID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	none.Header["kid"] = rs.KID
	noKid := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": p.Issuer, "aud": oidctest.ClientID, "sub": oidctest.User2ID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})

	tests := []struct {
		name, token, want string
		v                 *OIDCVerifier
	}{
		{"a token another provider issued", other.SignIn(t, oidctest.User2, oidctest.Password), "is not accepted", v},
		{"our issuer's name signed with another provider's key", p.Sign(t, other.Current(), nil), "key", v},
		{"a token for another audience", p.Sign(t, rs, jwt.MapClaims{"aud": "someone-else"}), "audience", v},
		{"an expired token", p.Sign(t, rs, jwt.MapClaims{"iat": now.Add(-2 * time.Hour).Unix(), "nbf": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()}), "expired", v},
		{"a token issued in the future", p.Sign(t, rs, jwt.MapClaims{"iat": now.Add(time.Hour).Unix()}), "before issued", v},
		{"a token not valid yet", p.Sign(t, rs, jwt.MapClaims{"nbf": now.Add(time.Hour).Unix()}), "not valid yet", v},
		{"a token without exp", p.Sign(t, rs, jwt.MapClaims{"exp": nil}), "exp", v},
		{"a token re-signed with a key not in the JWKS under the provider's kid", p.Sign(t, oidctest.Key{KID: rs.KID, Alg: jose.RS256, Signer: foreign}, nil), "verification error", v},
		{"a token signed with an unknown kid", p.Sign(t, oidctest.Key{KID: "not-published", Alg: jose.RS256, Signer: foreign}, nil), "not-published", v},
		{"alg none", mustSign(t, none, jwt.UnsafeAllowNoneSignatureType), "signing method", v},
		{"HS256 signed with the provider's public key", mustSign(t, hsConfusion, pubPEM), "signing method", v},
		{"a token without kid", mustSign(t, noKid, rs.Signer), "kid", v},
		{"PS256 claimed for a key the JWKS publishes as RS256", p.Sign(t, oidctest.Key{KID: rs.KID, Alg: jose.PS256, Signer: rs.Signer}, nil), "alg", v},
		{"a subject that is not a user id", p.Sign(t, rs, jwt.MapClaims{"sub": "not a user id"}), "not a valid user id", v},
		{"no preferred_username", p.Sign(t, rs, nil), "claim preferred_username", byName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := tt.v.Verify(tt.token)
			if err == nil {
				t.Fatalf("accepted as %v", id)
			}
			if !errors.Is(err, ErrUnauthenticated) && !errors.Is(err, ErrTokenExpired) {
				t.Errorf("error %v is neither %v nor %v", err, ErrUnauthenticated, ErrTokenExpired)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func mustSign(t *testing.T, tok *jwt.Token, key any) string {
	t.Helper()
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOIDCConfigValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	err := OIDCConfig{Issuers: []string{"idp.example.org"}, UserClaim: "name"}.Validate()
	for _, want := range []string{"not an http(s) URL", "audience is required", `user claim "name"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to say %q", err, want)
		}
	}
	if err := (OIDCConfig{}).Validate(); err == nil || !strings.Contains(err.Error(), "at least one issuer") {
		t.Errorf("Validate() of nothing = %v", err)
	}
}

// TestOIDCKeyRefreshes checks the two ways new keys are learnt: a token
// with an unknown kid fetches the JWKS at once, but only as often as the
// limit allows (beyond it the token is refused without a fetch), and the
// scheduled refresh learns keys without any token asking.
func TestOIDCKeyRefreshes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an OpenID provider; skipped under -short")
	}
	t.Parallel()
	p := oidctest.Start(t)
	p.Up()
	v := startVerifier(t, OIDCConfig{Issuers: []string{p.Issuer}, Audience: oidctest.ClientID, UnknownKIDRefresh: time.Hour, RefreshInterval: time.Hour})
	waitReady(t, v)
	fetches := p.JWKSFetches()

	if _, err := v.Verify(p.Sign(t, p.Rotate(t, jose.ES256), nil)); err != nil {
		t.Fatalf("a token of a new key: %v", err)
	}
	if got := p.JWKSFetches(); got != fetches+1 {
		t.Fatalf("the unknown kid caused %d fetches, want 1", got-fetches)
	}
	if _, err := v.Verify(p.Sign(t, p.Rotate(t, jose.EdDSA), nil)); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("a second new key within the limit: %v, want refused as not found", err)
	}
	if got := p.JWKSFetches(); got != fetches+1 {
		t.Fatalf("a second unknown kid within the limit fetched the JWKS (%d fetches)", got-fetches)
	}

	// A verifier whose unknown-kid refresh is spent learns the new key
	// from its schedule.
	scheduled := startVerifier(t, OIDCConfig{Issuers: []string{p.Issuer}, Audience: oidctest.ClientID, UnknownKIDRefresh: time.Hour, RefreshInterval: 20 * time.Millisecond})
	waitReady(t, scheduled)
	if _, err := scheduled.Verify(p.Sign(t, oidctest.Key{KID: "made-up", Alg: jose.EdDSA, Signer: p.Current().Signer}, nil)); err == nil {
		t.Fatal("a made-up kid was accepted")
	}
	tok := p.Sign(t, p.Rotate(t, jose.PS256), nil)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		_, err := scheduled.Verify(tok)
		if err == nil {
			break
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("the scheduled refresh did not learn the new key: %v", err)
		}
	}
}

// FuzzOIDCVerify feeds Verify mutations of a valid token and of junk: it
// never panics, and whatever it accepts is signed by the provider for its
// user.
func FuzzOIDCVerify(f *testing.F) {
	p := oidctest.Start(f)
	p.Up()
	v, err := NewOIDCVerifier(OIDCConfig{Issuers: []string{p.Issuer}, Audience: oidctest.ClientID})
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = v.Run(ctx) }()
	f.Cleanup(func() { cancel(); <-done })
	select {
	case <-v.Ready():
	case <-time.After(10 * time.Second):
		f.Fatal("keys not loaded")
	}
	valid := p.Sign(f, p.Current(), nil)
	f.Add(valid)
	f.Add(valid[:len(valid)-2])
	f.Add("")
	f.Add("a.b.c")
	f.Add(`eyJhbGciOiJub25lIn0.e30.`)
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := v.Verify(tok)
		if err == nil && id.UserID != oidctest.User2ID {
			t.Fatalf("accepted %q as %v", tok, id)
		}
	})
}

// TestOIDCDiscoveryMustNameTheIssuer configures an issuer with a trailing
// slash the provider does not write: the discovery document names another
// issuer, so its keys are never loaded and /readyz says why.
func TestOIDCDiscoveryMustNameTheIssuer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an OpenID provider; skipped under -short")
	}
	t.Parallel()
	p := oidctest.Start(t)
	p.Up()
	v := startVerifier(t, OIDCConfig{Issuers: []string{p.Issuer + "/"}, Audience: oidctest.ClientID, RetryMax: 20 * time.Millisecond})
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		err := v.ReadyCheck(context.Background())
		if err == nil {
			t.Fatal("ready with a discovery document naming another issuer")
		}
		if strings.Contains(err.Error(), "names issuer") {
			break
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("ready check %v, want it to say the document names another issuer", err)
		}
	}
	if _, err := v.Verify(p.Sign(t, p.Current(), jwt.MapClaims{"iss": p.Issuer + "/"})); !errors.Is(err, ErrKeysNotLoaded) {
		t.Errorf("Verify = %v, want %v", err, ErrKeysNotLoaded)
	}
}
