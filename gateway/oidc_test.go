package gateway

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The client Parley is registered under at the test provider: a native
// (public) client, which the example storage only lets sign in with PKCE.
const (
	oidcClientID    = "parley"
	oidcRedirectURI = "http://localhost/auth/callback"
)

// signingKey is one of the provider's keys.
type signingKey struct {
	id  string
	alg jose.SignatureAlgorithm
	key crypto.Signer
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.alg }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

// publishedKey is a signingKey as the JWKS lists it.
type publishedKey struct{ signingKey }

func (k publishedKey) Algorithm() jose.SignatureAlgorithm { return k.alg }
func (k publishedKey) Use() string                        { return "sig" }
func (k publishedKey) Key() any                           { return k.key.Public() }

// rotatingStorage is the example provider's in-memory storage with keys
// that rotate: it signs with the newest and publishes every key it had.
type rotatingStorage struct {
	*storage.Storage
	mu   sync.Mutex
	keys []signingKey // newest first
}

func (s *rotatingStorage) rotate(t *testing.T, alg jose.SignatureAlgorithm) signingKey {
	t.Helper()
	var key crypto.Signer
	var err error
	switch alg {
	case jose.RS256, jose.PS256:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	k := signingKey{id: fmt.Sprintf("%s-%d", alg, time.Now().UnixNano()), alg: alg, key: key}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append([]signingKey{k}, s.keys...)
	return k
}

func (s *rotatingStorage) current() signingKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[0]
}

func (s *rotatingStorage) SigningKey(context.Context) (op.SigningKey, error) {
	return s.current(), nil
}

func (s *rotatingStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{s.current().alg}, nil
}

func (s *rotatingStorage) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]op.Key, len(s.keys))
	for i, k := range s.keys {
		keys[i] = publishedKey{k}
	}
	return keys, nil
}

// provider is zitadel's example OpenID provider under httptest. It
// answers 503 until up is called, as an identity provider that starts
// after Parley does.
type provider struct {
	issuer string
	store  *rotatingStorage
	up     atomic.Bool
}

func startProvider(t *testing.T) *provider {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &provider{issuer: "http://" + ln.Addr().String()}
	clients := map[string]*storage.Client{oidcClientID: storage.NativeClient(oidcClientID, oidcRedirectURI)}
	p.store = &rotatingStorage{Storage: storage.NewStorageWithClients(storage.NewUserStore(p.issuer), clients)}
	p.store.rotate(t, jose.RS256)
	router := exampleop.SetupServer(p.issuer, p.store, nil, false)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.up.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		router.ServeHTTP(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return p
}

// signIn runs the authorization-code flow with PKCE as a browser would:
// the authorization request, the provider's login form, the redirect
// with the code, and the code exchanged with the verifier. It returns
// the ID token.
func (p *provider) signIn(t *testing.T, username, password string) string {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	redirect, _ := url.Parse(oidcRedirectURI)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host == redirect.Host {
			return http.ErrUseLastResponse // the app's callback: keep the code
		}
		return nil
	}}
	verifier := base64.RawURLEncoding.EncodeToString(randomBytes(t, 32))
	challenge := sha256.Sum256([]byte(verifier))
	state := base64.RawURLEncoding.EncodeToString(randomBytes(t, 16))
	q := url.Values{
		"client_id": {oidcClientID}, "redirect_uri": {oidcRedirectURI}, "response_type": {"code"},
		"scope": {"openid profile email"}, "state": {state}, "nonce": {"n-" + state},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(challenge[:])}, "code_challenge_method": {"S256"},
	}
	page := body(t, mustDo(t)(client.Get(p.issuer+"/auth?"+q.Encode())), http.StatusOK)
	m := regexp.MustCompile(`name="id" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no login form in %q", page)
	}
	resp := mustDo(t)(client.PostForm(p.issuer+"/login/username", url.Values{"id": {m[1]}, "username": {username}, "password": {password}}))
	body(t, resp, http.StatusFound)
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || back.Host != redirect.Host || back.Query().Get("state") != state || back.Query().Get("code") == "" {
		t.Fatalf("redirected to %q, want the callback with a code and state %q", resp.Header.Get("Location"), state)
	}
	resp = mustDo(t)(client.PostForm(p.issuer+"/oauth/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {oidcRedirectURI},
		"client_id": {oidcClientID}, "code_verifier": {verifier},
	}))
	var tokens struct {
		IDToken string `json:"id_token"`
	}
	if err := json.Unmarshal([]byte(body(t, resp, http.StatusOK)), &tokens); err != nil || tokens.IDToken == "" {
		t.Fatalf("token response without an id_token (%v)", err)
	}
	return tokens.IDToken
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// mustDo returns a function that fails t on a request's error:
// mustDo(t)(client.Get(u)).
func mustDo(t *testing.T) func(*http.Response, error) *http.Response {
	return func(resp *http.Response, err error) *http.Response {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
}

func body(t *testing.T, resp *http.Response, status int) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != status {
		t.Fatalf("%s %s: %s %s, want %d", resp.Request.Method, resp.Request.URL, resp.Status, b, status)
	}
	return string(b)
}

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
	p := startProvider(t)
	v := startVerifier(t, OIDCConfig{Issuers: []string{p.issuer}, Audience: oidcClientID, UnknownKIDRefresh: time.Millisecond})

	// The provider is not up yet: Parley waits for it and says so.
	if err := v.ReadyCheck(context.Background()); err == nil {
		t.Fatal("ready before the provider answered")
	}
	if _, err := v.Verify(selfSigned(t, p, p.store.current(), jwt.MapClaims{})); !errors.Is(err, ErrKeysNotLoaded) {
		t.Fatalf("before discovery Verify said %v, want %v", err, ErrKeysNotLoaded)
	}
	p.up.Store(true)
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
		body(t, mustDo(t)(http.DefaultClient.Do(req)), http.StatusOK)

		c := e.dial(tok)
		write(t, c, `{"type":"ping","id":"p1"}`)
		if f := mustRead(t, c); f["type"] != "pong" || f["id"] != "p1" {
			t.Fatalf("answered %v to a ping on a socket with the token in the header", f)
		}
		c = e.dial("")
		b, _ := json.Marshal(map[string]string{"type": "auth", "id": "a1", "token": tok})
		write(t, c, string(b))
		if f := mustRead(t, c); f["type"] != "auth_ok" || f["user_id"] != "id2" {
			t.Fatalf("answered %v to an auth frame", f)
		}
	}

	use(t, p.signIn(t, "test-user2", "verysecure"))
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.PS256, jose.EdDSA} {
		t.Run("after rotating to "+string(alg), func(t *testing.T) {
			p.store.rotate(t, alg)
			tok := p.signIn(t, "test-user2", "verysecure")
			if h := header(t, tok); h["kid"] != p.store.current().id || h["alg"] != string(alg) {
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

// selfSigned returns a token signed with key of p's, with claims over
// valid defaults for user id2; a nil claim removes the default.
func selfSigned(t *testing.T, p *provider, key signingKey, claims jwt.MapClaims) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{"iss": p.issuer, "aud": oidcClientID, "sub": "id2", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(string(key.alg)), c)
	tok.Header["kid"] = key.id
	s, err := tok.SignedString(key.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOIDCRefusals checks what a token must be: from an accepted issuer,
// for Parley's audience, within its lifetime, signed by a key in the
// issuer's JWKS with that key's algorithm, and naming a valid user.
func TestOIDCRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two OpenID providers and signs in over HTTP; skipped under -short")
	}
	t.Parallel()
	p, other := startProvider(t), startProvider(t)
	p.up.Store(true)
	other.up.Store(true)
	v := startVerifier(t, OIDCConfig{Issuers: []string{p.issuer}, Audience: oidcClientID, Leeway: NoLeeway})
	byName := startVerifier(t, OIDCConfig{Issuers: []string{p.issuer}, Audience: oidcClientID, UserClaim: "preferred_username"})
	waitReady(t, v)
	waitReady(t, byName)
	rs := p.store.current()
	now := time.Now()

	if id, err := v.Verify(selfSigned(t, p, rs, nil)); err != nil || id.UserID != "id2" {
		t.Fatalf("a valid self-signed token: %v, %v", id, err)
	}
	if id, err := byName.Verify(selfSigned(t, p, rs, jwt.MapClaims{"preferred_username": "test-user2"})); err != nil || id.UserID != "test-user2" {
		t.Fatalf("preferred_username as the user id: %v, %v", id, err)
	}

	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(rs.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	hsConfusion := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": p.issuer, "aud": oidcClientID, "sub": "id2", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	hsConfusion.Header["kid"] = rs.id
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": p.issuer, "aud": oidcClientID, "sub": "id2", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	none.Header["kid"] = rs.id
	noKid := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": p.issuer, "aud": oidcClientID, "sub": "id2", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})

	tests := []struct {
		name, token, want string
		v                 *OIDCVerifier
	}{
		{"a token another provider issued", other.signIn(t, "test-user2", "verysecure"), "is not accepted", v},
		{"our issuer's name signed with another provider's key", selfSigned(t, p, other.store.current(), nil), "key", v},
		{"a token for another audience", selfSigned(t, p, rs, jwt.MapClaims{"aud": "someone-else"}), "audience", v},
		{"an expired token", selfSigned(t, p, rs, jwt.MapClaims{"iat": now.Add(-2 * time.Hour).Unix(), "nbf": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()}), "expired", v},
		{"a token not valid yet", selfSigned(t, p, rs, jwt.MapClaims{"nbf": now.Add(time.Hour).Unix()}), "not valid yet", v},
		{"a token without exp", selfSigned(t, p, rs, jwt.MapClaims{"exp": nil}), "exp", v},
		{"a token re-signed with a key not in the JWKS under the provider's kid", selfSigned(t, p, signingKey{id: rs.id, alg: jose.RS256, key: foreign}, nil), "verification error", v},
		{"a token signed with an unknown kid", selfSigned(t, p, signingKey{id: "not-published", alg: jose.RS256, key: foreign}, nil), "not-published", v},
		{"alg none", mustSign(t, none, jwt.UnsafeAllowNoneSignatureType), "signing method", v},
		{"HS256 signed with the provider's public key", mustSign(t, hsConfusion, pubPEM), "signing method", v},
		{"a token without kid", mustSign(t, noKid, rs.key), "kid", v},
		{"RS256 claimed for a key published as PS256", selfSigned(t, p, signingKey{id: rs.id, alg: jose.PS256, key: rs.key}, nil), "alg", v},
		{"a subject that is not a user id", selfSigned(t, p, rs, jwt.MapClaims{"sub": "not a user id"}), "not a valid user id", v},
		{"no preferred_username", selfSigned(t, p, rs, nil), "claim preferred_username", byName},
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
