// Request metrics of the HTTP API: what each route answers, and how fast.

package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
)

// instrument counts every request next answers in
// parley_http_requests_total{route, method, code} and times it in
// parley_http_request_duration_seconds{route, method}. The route is chi's
// pattern (/v1/conversations/{id}/history), never the path, so there are
// as many series as routes. A request whose handler panics is counted as
// the 500 the recoverer answers.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		record := func(status int) {
			route := chi.RouteContext(r.Context()).RoutePattern()
			s.cfg.Metrics.HTTPRequests.WithLabelValues(route, r.Method, strconv.Itoa(status)).Inc()
			s.cfg.Metrics.HTTPDuration.WithLabelValues(route, r.Method).Observe(time.Since(start).Seconds())
		}
		defer func() {
			if v := recover(); v != nil {
				if v != http.ErrAbortHandler {
					record(http.StatusInternalServerError)
				}
				panic(v)
			}
		}()
		next.ServeHTTP(sw, r)
		record(sw.status)
	})
}

// statusWriter remembers the status code of the answer written through
// it: 200 unless WriteHeader says otherwise first.
type statusWriter struct {
	http.ResponseWriter
	status  int
	written bool
}

func (w *statusWriter) WriteHeader(status int) {
	if !w.written {
		w.status, w.written = status, true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.written = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
