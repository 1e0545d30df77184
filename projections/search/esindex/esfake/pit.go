// Points in time: POST /<index>/_pit, searches with a pit, DELETE /_pit.

package esfake

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"time"
)

// pit is an open point in time: the searchable state of its indices when
// it was opened (what they had at their last refresh), kept whatever
// happens to them since, refreshes, writes and deletion included.
type pit struct {
	views []view
}

// view is what a search reads of one index: the index (for its name and
// mapping) and its documents.
type view struct {
	idx  *index
	docs map[string]*doc
}

// openPIT is POST /<index>/_pit?keep_alive=…: keep_alive is required, as
// in Elasticsearch; routing, preference and index_filter are not modeled.
// The point in time lives until it is closed or the server is (keep_alive
// is checked, not enforced: nothing here expires on the wall clock).
func (s *Server) openPIT(expr string, params url.Values) (int, any) {
	for k := range params {
		switch k {
		case "keep_alive", "pretty", "human", "error_trace", "filter_path":
		default:
			return fail(badRequest("request [/%s/_pit] contains unrecognized parameter: [%s]", expr, k))
		}
	}
	ka := params.Get("keep_alive")
	if ka == "" {
		return fail(errorf(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: [keep_alive] is not specified;"))
	}
	if _, e := parseKeepAlive(ka); e != nil {
		return fail(e)
	}
	idxs, e := s.resolve(expr)
	if e != nil {
		return fail(e)
	}
	p := &pit{}
	for _, idx := range idxs {
		p.views = append(p.views, view{idx: idx, docs: maps.Clone(idx.visible)})
	}
	id := base64.URLEncoding.EncodeToString(fmt.Appendf(nil, "esfake-pit-%d", s.nextSeq()))
	s.pits[id] = p
	n := len(idxs)
	return ok(map[string]any{"id": id, "_shards": map[string]any{"total": n, "successful": n, "skipped": 0, "failed": 0}})
}

// closePIT is DELETE /_pit with {"id": …}: 200 {"succeeded":true,
// "num_freed":1}, or num_freed 0 for an id that is not open, still 200
// (ClosePointInTimeResponse answers 404 only when closing failed).
func (s *Server) closePIT(body []byte) (int, any) {
	req, e := decode(body)
	if e != nil {
		return fail(e)
	}
	id, _ := req["id"].(string)
	for k := range req {
		if k != "id" {
			return fail(parseError("[clear_point_in_time] unknown field [%s]", k))
		}
	}
	if id == "" {
		return fail(errorf(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: no id specified;"))
	}
	if _, open := s.pits[id]; !open {
		return ok(map[string]any{"succeeded": true, "num_freed": 0})
	}
	delete(s.pits, id)
	return ok(map[string]any{"succeeded": true, "num_freed": 1})
}

// pitOf returns the point in time of a search's pit object ({"id",
// "keep_alive"}).
func (s *Server) pitOf(v any) (string, *pit, *esError) {
	obj, isObj := v.(map[string]any)
	if !isObj {
		return "", nil, parseError("[pit] must be an object")
	}
	id, _ := obj["id"].(string)
	for k, x := range obj {
		switch k {
		case "id":
		case "keep_alive":
			ka, _ := x.(string)
			if _, e := parseKeepAlive(ka); e != nil {
				return "", nil, e
			}
		default:
			return "", nil, parseError("[pit] unknown field [%s]", k)
		}
	}
	p, open := s.pits[id]
	if id == "" || !open {
		return "", nil, errorf(http.StatusNotFound, "search_context_missing_exception", "No search context found for id [%s]", id)
	}
	return id, p, nil
}

// parseKeepAlive parses a time value such as 1m or 30s.
func parseKeepAlive(v string) (time.Duration, *esError) {
	units := map[string]time.Duration{"d": 24 * time.Hour, "h": time.Hour, "m": time.Minute, "s": time.Second, "ms": time.Millisecond}
	for _, u := range []string{"ms", "d", "h", "m", "s"} {
		if n, found := cutSuffix(v, u); found {
			var x int64
			if _, err := fmt.Sscanf(n, "%d", &x); err == nil && x > 0 && fmt.Sprint(x) == n {
				return time.Duration(x) * units[u], nil
			}
		}
	}
	return 0, errorf(http.StatusBadRequest, "illegal_argument_exception", "failed to parse setting [keep_alive] with value [%s] as a time value: unit is missing or unrecognized", v)
}

func cutSuffix(s, suffix string) (string, bool) {
	if len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
		return s[:len(s)-len(suffix)], true
	}
	return "", false
}
