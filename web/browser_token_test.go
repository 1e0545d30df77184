package web_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/app"
)

// TestBrowserPastedTokenExpires runs the client against an operator's
// secret (PARLEY_JWT_SECRET): no development tokens, so the client asks
// for a token; a pasted one signs in, and when it expires the server
// closes the socket (4501) and the client asks for a new sign-in rather
// than reconnecting for ever.
func TestBrowserPastedTokenExpires(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a browser and a whole system, about 20 s); make test runs it")
	}
	const secret = "an-operator-secret-of-at-least-32-bytes"
	addr := freeAddr(t)
	sys := startSystem(t, t.TempDir(), addr, func(c *app.Config) {
		c.JWTSecret = secret
		c.JWTLeeway = time.Second
	})
	defer stopSystem(t, sys)
	a, err := gateway.NewAuthenticator(gateway.AuthConfig{Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	u := newBrowserUser(t, startBrowser(t), "gina")
	u.do(chromedp.Navigate("http://" + addr + "/"))
	u.waitFor("the token form, and no development sign-in", `!document.querySelector("#token-form").hidden && document.querySelector("#dev-form").hidden`)
	// Issued now, not before the browser started: the client must be
	// seen signed in and online within the token's life, which a loaded
	// machine's browser start would otherwise eat into.
	tok, err := a.Issue("gina", 10*time.Second, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	setValue(u, "#token-input", tok)
	u.click(`#token-form button[type=submit]`)
	u.waitFor("signed in and online", `!document.querySelector("#app").hidden && document.querySelector("#me").textContent === "gina" && document.querySelector("#banner").hidden`)
	u.waitFor("asked to sign in again when the token expires", `!document.querySelector("#signin").hidden && document.querySelector("#signin-status").textContent === "Your session has expired; sign in again." && !document.querySelector("#token-form").hidden && sessionStorage.getItem("parley.token") === null`)
}
