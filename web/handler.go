// Package web is Parley's web client: static files (HTML, CSS and
// JavaScript modules, no build step) embedded in the binary, and the
// http.Handler that serves them with a strict Content-Security-Policy.
// The gateway mounts it at / (see gateway.Config.Client).
//
// The client is also the reference for writing one: static/js/client.js
// holds the protocol (sign-in, resume from per-conversation cursors,
// command ids, acks, retries, receipts); static/js/app.js the screens.
//
// A Handler is safe for concurrent use.
package web

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// Config configures the Handler.
type Config struct {
	// ConnectSources are origins besides this server's the client may
	// fetch from: the OpenID provider's issuer origin, for its discovery
	// document and token endpoint. Default: none.
	ConnectSources []string
	// FileSources are the origins of the file store's presigned URLs:
	// the client uploads files to them (connect-src) and shows images
	// from them (img-src). Default: none.
	FileSources []string
}

// Handler serves the client: index.html at / and at /auth/callback (where
// an identity provider sends the browser back with its code), and the
// files under /static/. Any other path is not found.
type Handler struct {
	files fs.FS
	csp   string
}

// NewHandler returns the client's Handler.
func NewHandler(cfg Config) (*Handler, error) {
	files, err := fs.Sub(static, "static")
	if err != nil {
		return nil, fmt.Errorf("web: the embedded files: %w", err)
	}
	return &Handler{files: files, csp: contentSecurityPolicy(cfg.ConnectSources, cfg.FileSources)}, nil
}

// contentSecurityPolicy allows only the client's own files: no inline
// script or style, no eval, no plugins, no framing; connections to this
// origin (HTTP and its WebSocket), to the identity provider and to the
// file store; images from this origin and the file store; the service
// worker from this origin.
func contentSecurityPolicy(connect, files []string) string {
	src := append(append([]string{"'self'"}, connect...), files...)
	img := append([]string{"'self'", "data:"}, files...)
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src " + strings.Join(img, " "),
		"connect-src " + strings.Join(src, " "),
		"manifest-src 'self'",
		// The service worker that shows push notifications.
		"worker-src 'self'",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
	switch {
	case name == "" || name == "auth/callback":
		name = "index.html"
	case strings.HasPrefix(name, "static/"):
		name = strings.TrimPrefix(name, "static/")
	default:
		notFound(w)
		return
	}
	b, err := fs.ReadFile(h.files, name)
	if err != nil {
		notFound(w)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", contentType(name))
	hd.Set("Content-Security-Policy", h.csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	// The sign-in redirect brings a code in the URL: never pass the URL
	// on to anyone.
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	// The files change with the binary; revalidating them is cheap.
	hd.Set("Cache-Control", "no-cache")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(b)
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json", ".webmanifest":
		return "application/json"
	}
	return "application/octet-stream"
}

// notFound answers as the API does, with a problem.
func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"type":"urn:parley:problem:not_found","title":"Not Found","status":404,"detail":"no such file","code":"not_found","retryable":false}` + "\n"))
}
