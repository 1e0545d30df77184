package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSignInConfig: GET /auth/config names the one way browsers sign in,
// without a token: the identity provider when there is one, development
// tokens on the dev secret, a pasted token otherwise.
func TestSignInConfig(t *testing.T) {
	t.Parallel()
	auth, err := NewAuthenticator(AuthConfig{Secret: wsSecret})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		signIn SignIn
		want   string
	}{
		{"an identity provider", SignIn{OIDC: &OIDCClient{Issuer: "https://idp.example.org/realms/acme", ClientID: "parley"}},
			`{"method":"oidc","issuer":"https://idp.example.org/realms/acme","client_id":"parley","scopes":"openid profile email"}`},
		{"the dev secret", SignIn{DevTokens: auth}, `{"method":"dev"}`},
		{"an operator's secret", SignIn{}, `{"method":"token"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := signInServer(t, tc.signIn)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest("GET", "/auth/config", nil))
			if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != tc.want {
				t.Errorf("GET /auth/config: %d %s, want 200 %s", rec.Code, rec.Body, tc.want)
			}
		})
	}
}

// TestDevToken: POST /auth/dev-token signs a token the gateway accepts,
// only with development tokens on; bad input is a problem.
func TestDevToken(t *testing.T) {
	t.Parallel()
	auth, err := NewAuthenticator(AuthConfig{Secret: wsSecret})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s := signInServer(t, SignIn{DevTokens: auth, DevTokenTTL: time.Hour, Now: func() time.Time { return now }})
	post := func(s http.Handler, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/auth/dev-token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		s.ServeHTTP(rec, req)
		return rec
	}

	rec := post(s, `{"user_id":"alice"}`)
	var out devToken
	if err := json.Unmarshal(rec.Body.Bytes(), &out); rec.Code != http.StatusOK || err != nil {
		t.Fatalf("POST /auth/dev-token: %d %s (%v)", rec.Code, rec.Body, err)
	}
	id, err := auth.Verify(out.Token)
	if err != nil || id.UserID != "alice" || out.UserID != "alice" {
		t.Errorf("the token is %+v (%v), want alice's", id, err)
	}
	if want := now.Add(time.Hour).UTC().Truncate(time.Second); !out.ExpiresAt.Equal(want) || !id.ExpiresAt.Equal(want) {
		t.Errorf("expires at %v (token %v), want %v", out.ExpiresAt, id.ExpiresAt, want)
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", rec.Header().Get("Cache-Control"))
	}

	for _, tc := range []struct{ body, code string }{
		{`{"user_id":"not a user"}`, codeInvalidRequest},
		{`{"user_id":""}`, codeInvalidRequest},
		{`{"user":"alice"}`, codeBadRequest},
		{`not json`, codeBadRequest},
	} {
		rec := post(s, tc.body)
		var p problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Code != tc.code || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("POST %s: %d %s, want a %s problem", tc.body, rec.Code, rec.Body, tc.code)
		}
	}

	off := signInServer(t, SignIn{OIDC: &OIDCClient{Issuer: "https://idp.example.org", ClientID: "parley"}})
	if rec := post(off, `{"user_id":"alice"}`); rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `"code":"not_found"`) {
		t.Errorf("with an identity provider: %d %s, want 404 not_found", rec.Code, rec.Body)
	}
}

// TestClientRoutes: the web client is served where its handler is set,
// and nowhere without one.
func TestClientRoutes(t *testing.T) {
	t.Parallel()
	client := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("client " + r.URL.Path)) })
	s := signInServer(t, SignIn{}, func(c *Config) { c.Client = client })
	for _, path := range []string{"/", "/auth/callback", "/static/js/app.js"} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusOK || rec.Body.String() != "client "+path {
			t.Errorf("GET %s: %d %q, want the client's answer", path, rec.Code, rec.Body)
		}
	}
	none := signInServer(t, SignIn{})
	rec := httptest.NewRecorder()
	none.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET / without a client: %d, want 404", rec.Code)
	}
}

func signInServer(t *testing.T, si SignIn, tweak ...func(*Config)) *Server {
	t.Helper()
	auth, err := NewAuthenticator(AuthConfig{Secret: wsSecret})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Auth: auth, Commands: saturatedLog{}, Hub: memberHub{searchHub{}}, History: &searchHistory{}, SignIn: si}
	for _, f := range tweak {
		f(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
