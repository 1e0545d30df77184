// Package oidctest runs a real OpenID provider for tests: zitadel's
// example provider (github.com/zitadel/oidc/v3 example/server) under
// httptest, with its in-memory users and a native client registered for
// Parley, whose signing key a test can rotate. A Provider is safe for
// concurrent use; it is closed when its test ends.
package oidctest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
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

// The client Parley is registered under: a native (public) client, which
// the example storage lets sign in only with PKCE. ClientID is the
// audience of the ID tokens.
const (
	ClientID    = "parley"
	RedirectURI = "http://localhost/auth/callback"
)

// The example storage's users. User2's sub is "id2".
const (
	User2     = "test-user2"
	User2ID   = "id2"
	Password  = "verysecure"
	User2Mail = "test-user2@zitadel.ch"
)

// Key is one of a provider's signing keys.
type Key struct {
	KID    string
	Alg    jose.SignatureAlgorithm
	Signer crypto.Signer
}

// signingKey is a Key as op.SigningKey.
type signingKey struct{ k Key }

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.k.Alg }
func (k signingKey) Key() any                                    { return k.k.Signer }
func (k signingKey) ID() string                                  { return k.k.KID }

// publishedKey is a Key as the JWKS lists it (op.Key).
type publishedKey struct{ k Key }

func (k publishedKey) ID() string                         { return k.k.KID }
func (k publishedKey) Algorithm() jose.SignatureAlgorithm { return k.k.Alg }
func (k publishedKey) Use() string                        { return "sig" }
func (k publishedKey) Key() any                           { return k.k.Signer.Public() }

// rotatingStorage is the example provider's in-memory storage with keys
// that rotate: it signs with the newest and publishes every key it had.
type rotatingStorage struct {
	*storage.Storage
	mu   sync.Mutex
	keys []Key // newest first
}

func (s *rotatingStorage) current() Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[0]
}

func (s *rotatingStorage) SigningKey(context.Context) (op.SigningKey, error) {
	return signingKey{s.current()}, nil
}

func (s *rotatingStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{s.current().Alg}, nil
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

// Provider is a running OpenID provider. It answers 503 until Up, as an
// identity provider that starts after Parley does.
type Provider struct {
	// Issuer is the provider's issuer URL (http://127.0.0.1:port).
	Issuer string
	store  *rotatingStorage
	up     atomic.Bool
	jwks   atomic.Int64
}

// Start starts a provider with an RS256 key; call Up to let it answer.
func Start(t testing.TB) *Provider {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Provider{Issuer: "http://" + ln.Addr().String()}
	clients := map[string]*storage.Client{ClientID: storage.NativeClient(ClientID, RedirectURI)}
	p.store = &rotatingStorage{Storage: storage.NewStorageWithClients(storage.NewUserStore(p.Issuer), clients)}
	p.Rotate(t, jose.RS256)
	router := exampleop.SetupServer(p.Issuer, p.store, nil, false)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.up.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == jwksPath {
			p.jwks.Add(1)
		}
		router.ServeHTTP(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return p
}

// jwksPath is where the example provider serves its JWKS.
const jwksPath = "/keys"

// JWKSFetches returns how many times the JWKS was fetched.
func (p *Provider) JWKSFetches() int64 { return p.jwks.Load() }

// Up lets the provider answer.
func (p *Provider) Up() { p.up.Store(true) }

// Current returns the key the provider signs with now.
func (p *Provider) Current() Key { return p.store.current() }

// Rotate makes a new key of alg (RS256, PS256, ES256 or EdDSA) the one
// the provider signs with; the JWKS keeps listing the old ones.
func (p *Provider) Rotate(t testing.TB, alg jose.SignatureAlgorithm) Key {
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
	k := Key{KID: fmt.Sprintf("%s-%x", alg, RandomBytes(t, 6)), Alg: alg, Signer: key}
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.keys = append([]Key{k}, p.store.keys...)
	return k
}

// Sign returns a token signed with key (its kid in the header), with
// claims over valid defaults for User2 at p: iss, aud ClientID, sub, iat,
// nbf, and exp in an hour. A nil claim removes the default.
func (p *Provider) Sign(t testing.TB, key Key, claims jwt.MapClaims) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{"iss": p.Issuer, "aud": ClientID, "sub": User2ID, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(string(key.Alg)), c)
	tok.Header["kid"] = key.KID
	s, err := tok.SignedString(key.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// SignIn runs the authorization-code flow with PKCE as a browser would:
// the authorization request, the provider's login form, the redirect
// with the code, and the code exchanged with the verifier. It returns
// the ID token.
func (p *Provider) SignIn(t testing.TB, username, password string) string {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	redirect, _ := url.Parse(RedirectURI)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host == redirect.Host {
			return http.ErrUseLastResponse // the app's callback: keep the code
		}
		return nil
	}}
	verifier := base64.RawURLEncoding.EncodeToString(RandomBytes(t, 32))
	challenge := sha256.Sum256([]byte(verifier))
	state := base64.RawURLEncoding.EncodeToString(RandomBytes(t, 16))
	q := url.Values{
		"client_id": {ClientID}, "redirect_uri": {RedirectURI}, "response_type": {"code"},
		"scope": {"openid profile email"}, "state": {state}, "nonce": {"n-" + state},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(challenge[:])}, "code_challenge_method": {"S256"},
	}
	page := Body(t, must(t)(client.Get(p.Issuer+"/auth?"+q.Encode())), http.StatusOK)
	m := regexp.MustCompile(`name="id" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no login form in %q", page)
	}
	resp := must(t)(client.PostForm(p.Issuer+"/login/username", url.Values{"id": {m[1]}, "username": {username}, "password": {password}}))
	Body(t, resp, http.StatusFound)
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || back.Host != redirect.Host || back.Query().Get("state") != state || back.Query().Get("code") == "" {
		t.Fatalf("redirected to %q, want the callback with a code and state %q", resp.Header.Get("Location"), state)
	}
	resp = must(t)(client.PostForm(p.Issuer+"/oauth/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {RedirectURI},
		"client_id": {ClientID}, "code_verifier": {verifier},
	}))
	var tokens struct {
		IDToken string `json:"id_token"`
	}
	if err := json.Unmarshal([]byte(Body(t, resp, http.StatusOK)), &tokens); err != nil || tokens.IDToken == "" {
		t.Fatalf("token response without an id_token (%v)", err)
	}
	return tokens.IDToken
}

// RandomBytes returns n random bytes.
func RandomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// must returns a function that fails t on a request's error:
// must(t)(client.Get(u)).
func must(t testing.TB) func(*http.Response, error) *http.Response {
	return func(resp *http.Response, err error) *http.Response {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
}

// Body reads and closes resp's body and fails t unless resp has status.
func Body(t testing.TB, resp *http.Response, status int) string {
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
