package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestHandler: the client's pages and files, each with the strict
// Content-Security-Policy and the headers that go with it; any other
// path is a problem.
func TestHandler(t *testing.T) {
	t.Parallel()
	h, err := NewHandler(Config{ConnectSources: []string{"https://idp.example.org"}, FileSources: []string{"https://files.example.org"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, ctype, has string }{
		{"/", "text/html; charset=utf-8", `<script type="module" src="/static/js/app.js">`},
		{"/auth/callback", "text/html; charset=utf-8", "<title>Parley</title>"},
		{"/static/js/client.js", "text/javascript; charset=utf-8", "export class Connection"},
		{"/static/app.css", "text/css; charset=utf-8", ":root"},
		{"/static/icon.svg", "image/svg+xml", "<svg"},
		{"/static/sw.js", "text/javascript; charset=utf-8", `addEventListener("push"`},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != tc.ctype || !strings.Contains(rec.Body.String(), tc.has) {
			t.Errorf("GET %s: %d %s, want 200 %s with %q", tc.path, rec.Code, rec.Header().Get("Content-Type"), tc.ctype, tc.has)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self' https://idp.example.org https://files.example.org;", "img-src 'self' data: https://files.example.org;", "frame-ancestors 'none'", "base-uri 'none'", "worker-src 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: Content-Security-Policy %q lacks %q", tc.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: Content-Security-Policy %q allows something unsafe", tc.path, csp)
		}
		for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
			if got := rec.Header().Get(k); got != v {
				t.Errorf("GET %s: %s %q, want %q", tc.path, k, got, v)
			}
		}
	}
	for _, path := range []string{"/index.html", "/static/", "/static/nothing.js", "/static/../handler.go", "/v1/whatever", "/static/js"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s: %d %s, want a 404 problem", path, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
}

// TestNoInlineCode: the Content-Security-Policy allows no inline script
// or style, so the files must have none: no <script> without src, no
// style attributes or <style>, no on* handler attributes, and no
// innerHTML anywhere in the JavaScript (text from users goes into text
// nodes only).
func TestNoInlineCode(t *testing.T) {
	t.Parallel()
	inline := regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle=|\son[a-z]+=`)
	err := fs.WalkDir(static, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, path)
		if err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(path, ".html"):
			if m := inline.Find(b); m != nil {
				t.Errorf("%s has inline code: %q", path, m)
			}
		case strings.HasSuffix(path, ".js"):
			for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
				if strings.Contains(string(b), bad) {
					t.Errorf("%s uses %s", path, bad)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
