// Package gatewaytest calls the HTTP API of a running Parley as any user,
// with bearer tokens it signs with the gateway's secret, for tests of
// the whole system.
package gatewaytest

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/gateway"
)

// Client calls the API at one address; it fails the test on a transport
// error, never on an HTTP status.
type Client struct {
	t    testing.TB
	ctx  context.Context
	base string
	auth *gateway.Authenticator
}

// New returns a client of the API at addr (host:port) whose tokens secret
// signs; its requests end with ctx.
func New(ctx context.Context, t testing.TB, addr string, secret []byte) *Client {
	t.Helper()
	auth, err := gateway.NewAuthenticator(gateway.AuthConfig{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	return &Client{t: t, ctx: ctx, base: "http://" + addr, auth: auth}
}

// Call sends method path as user, with body as JSON (no body and no
// Content-Type when it is empty), and returns the status and the answer
// decoded as a JSON object (nil when it is none).
func (c *Client) Call(user, method, path, body string) (int, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.ctx, method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token(user))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// Token is a bearer token of user, valid for an hour.
func (c *Client) Token(user string) string {
	c.t.Helper()
	tok, err := c.auth.Issue(user, time.Hour, time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	return tok
}
