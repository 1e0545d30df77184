package esindex_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func startHTTP(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
