package systemtest_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/oidctest"
)

// TestSignInWithAnIdentityProvider runs Parley with PARLEY_OIDC_ISSUER
// naming an OpenID provider that starts after it: /readyz says so until
// the provider's keys are loaded. A user then signs in at the provider
// (authorization code with PKCE, over HTTP) and uses the ID token over
// HTTP and both WebSocket authentications; the provider rotates its key
// and the next sign-in works without a restart; a dev-secret token is
// refused.
func TestSignInWithAnIdentityProvider(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the system and an OpenID provider (a few seconds); make test runs it")
	}
	p := oidctest.Start(t)
	sys := startSystem(t, t.TempDir(), func(c *app.Config) {
		c.OIDCIssuers, c.OIDCAudience = []string{p.Issuer}, oidctest.ClientID
	})
	defer stopSystem(t, sys)
	addr := sys.HTTPAddr()

	status, body, err := getPublic(t, addr, "/readyz")
	if err != nil || status != http.StatusServiceUnavailable || !strings.Contains(string(body), "oidc") {
		t.Fatalf("/readyz before the provider is up: %d %s %v, want 503 naming oidc", status, body, err)
	}
	p.Up()
	eventually(t, func() bool { status, _, _ := getPublic(t, addr, "/readyz"); return status == http.StatusOK })

	use := func(tok string) {
		t.Helper()
		user := api{t, addr, tok}
		conv := user.createDirect("id1")
		user.send(conv, "c-"+strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", ""))
		for _, firstFrame := range []bool{false, true} {
			ws := dial(t, addr, tok, firstFrame)
			ws.send(map[string]any{"type": "ping", "id": "p1"})
			ws.await(func(f map[string]any) bool { return f["type"] == "pong" && f["id"] == "p1" })
		}
	}
	use(p.SignIn(t, oidctest.User2, oidctest.Password))
	p.Rotate(t, jose.ES256)
	use(p.SignIn(t, oidctest.User2, oidctest.Password))

	if status, out := (api{t, addr, token(t, "alice", time.Hour)}).do("GET", "/v1/conversations", nil); status != http.StatusUnauthorized {
		t.Errorf("a dev-secret token with OIDC configured: %d %v, want 401", status, out)
	}
}
