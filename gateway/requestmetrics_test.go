package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/parley-chat/parley/internal/telemetry"
)

// TestRequestsAreCountedByRoute: every answer of the HTTP API is counted
// under its route pattern, method and status — a refusal by the
// authenticator too — and timed; the socket is a connection, not a
// request, and is not.
func TestRequestsAreCountedByRoute(t *testing.T) {
	t.Parallel()
	e := newLimitEnv(t, Config{})
	const route = "/v1/conversations/{id}"
	for _, tc := range []struct {
		tok    string
		path   string
		status int
	}{
		{e.token("alice"), "/v1/conversations/g_ab", http.StatusOK},
		{e.token("bob"), "/v1/conversations/g_ab", http.StatusOK},
		{"", "/v1/conversations/g_ab", http.StatusUnauthorized},
		{e.token("carol"), "/v1/conversations/g_ab", http.StatusForbidden},
	} {
		if status, _, body := e.do(http.MethodGet, tc.path, tc.tok, "", nil); status != tc.status {
			t.Fatalf("GET %s: %d %s, want %d", tc.path, status, body, tc.status)
		}
	}
	if status, _, _ := e.do(http.MethodGet, "/auth/config", "", "", nil); status != http.StatusOK {
		t.Fatalf("GET /auth/config: %d", status)
	}
	c, _, err := e.dial(bearerHeader(e.token("alice")))
	if err != nil {
		t.Fatal(err)
	}
	c.CloseNow()

	m := e.s.cfg.Metrics
	for _, want := range []struct {
		route, code string
		n           float64
	}{
		{route, "200", 2}, {route, "401", 1}, {route, "403", 1}, {"/auth/config", "200", 1},
	} {
		if n := testutil.ToFloat64(m.HTTPRequests.WithLabelValues(want.route, http.MethodGet, want.code)); n != want.n {
			t.Errorf("GET %s answered %s: counted %v, want %v", want.route, want.code, n, want.n)
		}
	}
	if n := samples(t, m, route, http.MethodGet); n != 4 {
		t.Errorf("GET %s timed %d times, want 4", route, n)
	}
	if n := testutil.CollectAndCount(m.HTTPRequests); n != 4 {
		t.Errorf("%d series of parley_http_requests_total, want 4: the socket is not a request", n)
	}
}

// TestAPanicIsCountedAsA500: the recoverer answers a handler's panic
// with 500, and that is what is counted.
func TestAPanicIsCountedAsA500(t *testing.T) {
	t.Parallel()
	e := newLimitEnv(t, Config{})
	r := chi.NewRouter()
	r.Use(e.s.recoverer)
	r.With(e.s.instrument).Get("/boom/{n}", func(http.ResponseWriter, *http.Request) { panic("boom") })
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/boom/1", nil))
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("a panicking handler answered %d, want 500", w.Code)
	}
	if n := testutil.ToFloat64(e.s.cfg.Metrics.HTTPRequests.WithLabelValues("/boom/{n}", http.MethodGet, "500")); n != 1 {
		t.Errorf("counted %v 500s, want 1", n)
	}
}

// samples is how many requests of route and method were timed.
func samples(t *testing.T, m *telemetry.Metrics, route, method string) uint64 {
	t.Helper()
	var d dto.Metric
	h, err := m.HTTPDuration.GetMetricWithLabelValues(route, method)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.(interface{ Write(*dto.Metric) error }).Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetHistogram().GetSampleCount()
}
