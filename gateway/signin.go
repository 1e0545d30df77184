// Browser sign-in: what the web client learns about signing in
// (GET /auth/config), and development tokens for the embedded default
// (POST /auth/dev-token).

package gateway

import (
	"net/http"
	"time"

	"github.com/parley-chat/parley/schemas"
)

// SignIn says how browsers sign in to this gateway. The zero value
// offers neither development tokens nor an identity provider: the web
// client then asks for a token (one `parley token` prints).
type SignIn struct {
	// DevTokens, when set, lets POST /auth/dev-token issue a token for
	// any user id, with no password. Set it only for the embedded
	// default's public development secret: anyone can sign tokens with
	// that secret anyway, and Parley listens on loopback only with it.
	DevTokens *Authenticator
	// DevTokenTTL is how long a development token is valid. Default: 24h.
	DevTokenTTL time.Duration
	// OIDC, when set, is the provider browsers sign in at with the
	// authorization-code flow and PKCE.
	OIDC *OIDCClient
	// Now is the clock of development tokens. Default: time.Now.
	Now func() time.Time
}

// OIDCClient is how a browser signs in at an OpenID provider: the
// issuer and the client id the web client is registered under (a
// public client with PKCE; its ID tokens' aud, which Parley requires).
type OIDCClient struct {
	Issuer   string
	ClientID string
	// Scopes are requested at sign-in. Default: openid profile email.
	Scopes string
}

// signInConfig is the answer of GET /auth/config.
type signInConfig struct {
	// Method is "dev" (POST /auth/dev-token), "oidc" (the redirect to
	// Issuer) or "token" (paste a token).
	Method   string `json:"method"`
	Issuer   string `json:"issuer,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	Scopes   string `json:"scopes,omitempty"`
}

// serveSignInConfig answers GET /auth/config: how the web client signs
// in. It needs no token, since it is what a client asks before it has one.
func (s *Server) serveSignInConfig(w http.ResponseWriter, _ *http.Request) {
	si := s.cfg.SignIn
	out := signInConfig{Method: "token"}
	switch {
	case si.OIDC != nil:
		scopes := si.OIDC.Scopes
		if scopes == "" {
			scopes = "openid profile email"
		}
		out = signInConfig{Method: "oidc", Issuer: si.OIDC.Issuer, ClientID: si.OIDC.ClientID, Scopes: scopes}
	case si.DevTokens != nil:
		out.Method = "dev"
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

// devTokenRequest is the body of POST /auth/dev-token.
type devTokenRequest struct {
	UserID string `json:"user_id"`
}

// devToken is the answer of POST /auth/dev-token.
type devToken struct {
	Token     string    `json:"token"`
	UserID    string    `json:"user_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// serveDevToken answers POST /auth/dev-token with a token for the user
// id asked for, when development tokens are on (SignIn.DevTokens), and
// 404 otherwise: with a real secret or an identity provider, nobody
// signs in by naming themselves.
func (s *Server) serveDevToken(w http.ResponseWriter, r *http.Request) {
	si := s.cfg.SignIn
	if si.DevTokens == nil {
		writeProblem(w, newError(codeNotFound, "development tokens are offered only on the embedded default's development secret"))
		return
	}
	var req devTokenRequest
	if e := s.decodeBody(w, r, &req); e != nil {
		writeProblem(w, e)
		return
	}
	if !schemas.ValidUserID(req.UserID) {
		writeProblem(w, newError(codeInvalidRequest, "user_id must be 1 to 128 letters, digits or ._@+-"))
		return
	}
	ttl := si.DevTokenTTL
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	now := time.Now
	if si.Now != nil {
		now = si.Now
	}
	at := now()
	tok, err := si.DevTokens.Issue(req.UserID, ttl, at)
	if err != nil {
		s.log.Error("issuing a development token", "err", err)
		writeProblem(w, newError(codeInternal, "could not sign the token"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, devToken{Token: tok, UserID: req.UserID, ExpiresAt: at.Add(ttl).UTC().Truncate(time.Second)})
}
