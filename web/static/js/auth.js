// Signing in. The server says how (GET /auth/config):
//
//   - "dev": the embedded default's development secret; POST
//     /auth/dev-token {"user_id"} returns a token, no password (anyone can
//     sign tokens with that public secret anyway).
//   - "oidc": an OpenID provider. The browser is sent there with the
//     authorization-code flow and PKCE (RFC 7636), comes back to
//     /auth/callback with a code, and exchanges it at the provider's
//     token endpoint for an ID token, which Parley verifies.
//   - "token": paste a token (`parley token USER` prints one).
//
// The token is kept in sessionStorage: this tab only, gone when it
// closes; it is never put in a URL.

const TOKEN_KEY = "parley.token";
const OIDC_KEY = "parley.oidc";

export async function signInConfig() {
  const resp = await fetch("/auth/config");
  if (!resp.ok) throw new Error(`GET /auth/config: ${resp.status}`);
  return resp.json();
}

export async function devToken(userId) {
  const resp = await fetch("/auth/dev-token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user_id: userId }),
  });
  const out = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(out.detail || `sign-in refused (${resp.status})`);
  return out.token;
}

// claims decodes a JWT's payload without checking it (the server does):
// only to know when to ask for a new token.
export function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))));
  } catch {
    return {};
  }
}

export function savedToken() {
  const t = sessionStorage.getItem(TOKEN_KEY);
  if (!t) return "";
  const { exp } = claims(t);
  if (exp && exp * 1000 < Date.now()) {
    sessionStorage.removeItem(TOKEN_KEY);
    return "";
  }
  return t;
}

export function saveToken(t) {
  sessionStorage.setItem(TOKEN_KEY, t);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

function base64url(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(n) {
  return base64url(crypto.getRandomValues(new Uint8Array(n)));
}

async function discover(issuer) {
  const resp = await fetch(issuer.replace(/\/$/, "") + "/.well-known/openid-configuration");
  if (!resp.ok) throw new Error(`the identity provider's discovery answered ${resp.status}`);
  const doc = await resp.json();
  if (doc.issuer !== issuer) throw new Error("the identity provider's discovery names another issuer");
  return doc;
}

export function redirectURI() {
  return `${location.origin}/auth/callback`;
}

// beginOIDC sends the browser to the provider's authorization endpoint.
export async function beginOIDC(cfg) {
  const doc = await discover(cfg.issuer);
  const verifier = random(32);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const state = random(16);
  const nonce = random(16);
  sessionStorage.setItem(
    OIDC_KEY,
    JSON.stringify({ verifier, state, nonce, client_id: cfg.client_id, token_endpoint: doc.token_endpoint }),
  );
  const q = new URLSearchParams({
    response_type: "code",
    client_id: cfg.client_id,
    redirect_uri: redirectURI(),
    scope: cfg.scopes,
    state,
    nonce,
    code_challenge: base64url(digest),
    code_challenge_method: "S256",
  });
  location.assign(`${doc.authorization_endpoint}?${q}`);
}

// completeOIDC finishes a sign-in on /auth/callback: it checks the
// state, exchanges the code for tokens and returns the ID token. The
// code leaves the address bar at once.
export async function completeOIDC() {
  const params = new URLSearchParams(location.search);
  history.replaceState(null, "", "/");
  const saved = JSON.parse(sessionStorage.getItem(OIDC_KEY) || "null");
  sessionStorage.removeItem(OIDC_KEY);
  if (params.get("error")) throw new Error(`the identity provider said: ${params.get("error_description") || params.get("error")}`);
  if (!saved || params.get("state") !== saved.state) throw new Error("this sign-in was not started here (state mismatch); sign in again");
  const resp = await fetch(saved.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: params.get("code") || "",
      redirect_uri: redirectURI(),
      client_id: saved.client_id,
      code_verifier: saved.verifier,
    }),
  });
  const out = await resp.json().catch(() => ({}));
  if (!resp.ok || !out.id_token) throw new Error(out.error_description || out.error || `the token exchange answered ${resp.status}`);
  if (claims(out.id_token).nonce !== saved.nonce) throw new Error("the ID token is not for this sign-in (nonce mismatch)");
  return out.id_token;
}
