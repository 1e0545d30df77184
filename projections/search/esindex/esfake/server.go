// The stand-in's HTTP server: the Elasticsearch REST endpoints Parley
// uses, with their shapes, errors and injected failures.

package esfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the Elasticsearch version the server reports.
const Version = "8.19.7"

// Server is an in-memory Elasticsearch stand-in.
type Server struct {
	srvMu sync.Mutex // guards srv across Stop and Restart
	srv   *httptest.Server
	url   string

	mu        sync.Mutex
	templates map[string]*template
	indices   map[string]*index
	seq       int64 // for uuids and seq_no
	fail      []int // statuses of the next requests to fail
	requests  map[string]int
	pits      map[string]*pit // open points in time by id
}

type template struct {
	patterns []string
	priority int64
	settings map[string]any
	mappings map[string]any
}

// Start starts a server on 127.0.0.1 that is closed when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := New()
	t.Cleanup(s.Close)
	return s
}

// New starts a server on 127.0.0.1; Close stops it.
func New() *Server {
	s := &Server{templates: map[string]*template{}, indices: map[string]*index{}, requests: map[string]int{}, pits: map[string]*pit{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.url = s.srv.URL
	return s
}

// URL is the server's base URL, http://127.0.0.1:port.
func (s *Server) URL() string { return s.url }

// Close stops the server; everything it held is lost.
func (s *Server) Close() {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv != nil {
		s.srv.Close()
	}
}

// Stop stops the server as a cluster going down does: the port is closed
// and open connections are dropped, but its indices are kept for
// Restart.
func (s *Server) Stop() {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv != nil {
		s.srv.CloseClientConnections()
		s.srv.Close()
		s.srv = nil
	}
}

// Restart serves again, on the same address, what the server held when
// it stopped.
func (s *Server) Restart() error {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv != nil {
		return nil
	}
	l, err := net.Listen("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		return fmt.Errorf("esfake: listening again on %s: %w", s.url, err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	s.srv = srv
	return nil
}

// FailNext makes the next n requests fail with status, answered with an
// Elasticsearch error body, before they change anything.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.fail = append(s.fail, status)
	}
}

// Requests returns how many requests of each "METHOD /path-shape" the
// server answered, e.g. "POST /_bulk"; index names become {index}.
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.requests))
	for k, v := range s.requests {
		out[k] = v
	}
	return out
}

// Indices returns the names of the indices the server holds, sorted.
func (s *Server) Indices() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.indices))
	for n := range s.indices {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// esError is an error answered in Elasticsearch's shape.
type esError struct {
	status int
	typ    string
	reason string
	index  string
}

func (e *esError) Error() string { return e.typ + ": " + e.reason }

func errorf(status int, typ, format string, args ...any) *esError {
	return &esError{status: status, typ: typ, reason: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *esError {
	return errorf(http.StatusBadRequest, "illegal_argument_exception", format, args...)
}

func parseError(format string, args ...any) *esError {
	return errorf(http.StatusBadRequest, "parsing_exception", format, args...)
}

func (e *esError) body() map[string]any {
	cause := map[string]any{"type": e.typ, "reason": e.reason}
	if e.index != "" {
		cause["index"] = e.index
		cause["index_uuid"] = "_na_"
	}
	outer := map[string]any{"root_cause": []any{cause}}
	for k, v := range cause {
		outer[k] = v
	}
	return map[string]any{"error": outer, "status": e.status}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	w.Header().Set("Content-Type", "application/json")
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, badRequest("reading body: %v", err).body())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.fail) > 0 {
		status := s.fail[0]
		s.fail = s.fail[1:]
		writeJSON(w, status, errorf(status, "esfake_injected_failure", "injected failure").body())
		return
	}
	status, out, shape := s.route(r, body)
	s.requests[r.Method+" "+shape]++
	if e, ok := out.(*esError); ok {
		writeJSON(w, e.status, e.body())
		return
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"type":"esfake","reason":"encoding response"},"status":500}`)
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// route dispatches a request; it returns the status, the body (an
// *esError for an error) and the request's path shape for Requests.
func (s *Server) route(r *http.Request, body []byte) (int, any, string) {
	p := strings.Trim(path.Clean("/"+r.URL.Path), "/")
	parts := []string{}
	if p != "" {
		parts = strings.Split(p, "/")
	}
	m := r.Method
	q := r.URL.Query()
	switch {
	case len(parts) == 0 && (m == http.MethodGet || m == http.MethodHead):
		return http.StatusOK, s.info(), "/"
	case len(parts) == 2 && parts[0] == "_index_template":
		switch m {
		case http.MethodPut, http.MethodPost:
			return with("/_index_template/{name}")(s.putTemplate(parts[1], body))
		case http.MethodDelete:
			return with("/_index_template/{name}")(s.deleteTemplate(parts[1]))
		}
	case len(parts) == 1 && parts[0] == "_bulk" && (m == http.MethodPost || m == http.MethodPut):
		return with("/_bulk")(s.bulk("", body, q))
	case len(parts) == 2 && parts[1] == "_bulk" && (m == http.MethodPost || m == http.MethodPut):
		return with("/{index}/_bulk")(s.bulk(parts[0], body, q))
	case len(parts) == 1 && parts[0] == "_aliases" && m == http.MethodPost:
		return with("/_aliases")(s.updateAliases(body))
	case len(parts) == 2 && parts[0] == "_alias" && m == http.MethodGet:
		return with("/_alias/{name}")(s.getAlias(parts[1]))
	case len(parts) == 2 && parts[1] == "_alias" && m == http.MethodGet:
		return with("/{index}/_alias")(s.getIndexAliases(parts[0]))
	case len(parts) == 2 && parts[1] == "_refresh" && (m == http.MethodPost || m == http.MethodGet):
		return with("/{index}/_refresh")(s.refresh(parts[0]))
	case len(parts) == 2 && parts[1] == "_search" && (m == http.MethodPost || m == http.MethodGet):
		return with("/{index}/_search")(s.search(parts[0], body, q))
	case len(parts) == 1 && parts[0] == "_search" && (m == http.MethodPost || m == http.MethodGet):
		return with("/_search")(s.search("", body, q))
	case len(parts) == 2 && parts[1] == "_pit" && m == http.MethodPost:
		return with("/{index}/_pit")(s.openPIT(parts[0], q))
	case len(parts) == 1 && parts[0] == "_pit" && m == http.MethodDelete:
		return with("/_pit")(s.closePIT(body))
	case len(parts) == 2 && parts[1] == "_mget" && (m == http.MethodPost || m == http.MethodGet):
		return with("/{index}/_mget")(s.mget(parts[0], body, q))
	case len(parts) == 2 && parts[1] == "_mapping" && (m == http.MethodPut || m == http.MethodPost):
		return with("/{index}/_mapping")(s.putMapping(parts[0], body))
	case len(parts) == 1 && !strings.HasPrefix(parts[0], "_"):
		switch m {
		case http.MethodPut:
			return with("/{index}")(s.createIndex(parts[0], body))
		case http.MethodDelete:
			return with("/{index}")(s.deleteIndex(parts[0]))
		}
	}
	return http.StatusBadRequest, badRequest("esfake: %s %s is not modeled", m, r.URL.Path), m + " " + r.URL.Path
}

// with adds the path shape to a handler's result.
func with(shape string) func(int, any) (int, any, string) {
	return func(status int, out any) (int, any, string) { return status, out, shape }
}

// ok and fail make a handler's result.
func ok(v any) (int, any) { return http.StatusOK, v }

func fail(e *esError) (int, any) { return e.status, e }

func (s *Server) info() map[string]any {
	return map[string]any{
		"name":         "esfake",
		"cluster_name": "esfake",
		"cluster_uuid": "esfake-cluster-uuid",
		"version": map[string]any{
			"number":                              Version,
			"build_flavor":                        "default",
			"build_type":                          "docker",
			"build_hash":                          "esfake",
			"build_date":                          "2025-01-01T00:00:00.000Z",
			"build_snapshot":                      false,
			"lucene_version":                      "9.12.2",
			"minimum_wire_compatibility_version":  "7.17.0",
			"minimum_index_compatibility_version": "7.0.0",
		},
		"tagline": "You Know, for Search",
	}
}

// decode decodes a JSON object body strictly enough: numbers stay
// json.Number.
func decode(body []byte) (map[string]any, *esError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return nil, errorf(http.StatusBadRequest, "x_content_parse_exception", "failed to parse request body: %v", err)
	}
	if dec.More() {
		return nil, errorf(http.StatusBadRequest, "x_content_parse_exception", "trailing data after the request body")
	}
	return v, nil
}

func (s *Server) nextSeq() int64 { s.seq++; return s.seq }

func (s *Server) putTemplate(name string, body []byte) (int, any) {
	v, e := decode(body)
	if e != nil {
		return fail(e)
	}
	t := &template{}
	for k, val := range v {
		switch k {
		case "index_patterns":
			switch p := val.(type) {
			case string:
				t.patterns = []string{p}
			case []any:
				for _, x := range p {
					str, isStr := x.(string)
					if !isStr {
						return fail(parseError("index_patterns must be strings"))
					}
					t.patterns = append(t.patterns, str)
				}
			default:
				return fail(parseError("index_patterns must be a string or an array"))
			}
		case "priority":
			n, err := toInt(val)
			if err != nil || n < 0 {
				return fail(parseError("priority must be a non-negative integer"))
			}
			t.priority = n
		case "template":
			tm, isMap := val.(map[string]any)
			if !isMap {
				return fail(parseError("template must be an object"))
			}
			for tk, tv := range tm {
				obj, isObj := tv.(map[string]any)
				if !isObj {
					return fail(parseError("template.%s must be an object", tk))
				}
				switch tk {
				case "settings":
					t.settings = obj
				case "mappings":
					t.mappings = obj
				case "aliases":
					if len(obj) > 0 {
						return fail(badRequest("esfake: aliases in templates are not modeled"))
					}
				default:
					return fail(parseError("[index_template] unknown field [%s]", tk))
				}
			}
		case "_meta", "version":
		case "composed_of":
			if arr, _ := val.([]any); len(arr) > 0 {
				return fail(badRequest("esfake: component templates are not modeled"))
			}
		default:
			return fail(parseError("[index_template] unknown field [%s]", k))
		}
	}
	if len(t.patterns) == 0 {
		return fail(errorf(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: index patterns are missing;"))
	}
	if t.mappings != nil {
		if _, e := parseMapping(t.mappings, analyzersOf(t.settings)); e != nil {
			return fail(e)
		}
	}
	for other, ot := range s.templates {
		if other == name || ot.priority != t.priority {
			continue
		}
		for _, a := range t.patterns {
			for _, b := range ot.patterns {
				if patternsOverlap(a, b) {
					return fail(badRequest("index template [%s] has index patterns %v matching patterns from existing templates [%s] with patterns (%s => %v) that have the same priority [%d], multiple index templates may not match during index creation, please use a different priority", name, t.patterns, other, other, ot.patterns, t.priority))
				}
			}
		}
	}
	s.templates[name] = t
	return ok(map[string]any{"acknowledged": true})
}

// patternsOverlap reports whether two simple patterns (a trailing * at
// most, as index templates use) can match one name.
func patternsOverlap(a, b string) bool {
	pa, sa := strings.CutSuffix(a, "*")
	pb, sb := strings.CutSuffix(b, "*")
	switch {
	case sa && sb:
		return strings.HasPrefix(pa, pb) || strings.HasPrefix(pb, pa)
	case sa:
		return strings.HasPrefix(b, pa)
	case sb:
		return strings.HasPrefix(a, pb)
	}
	return a == b
}

func (s *Server) deleteTemplate(name string) (int, any) {
	if _, found := s.templates[name]; !found {
		return fail(errorf(http.StatusNotFound, "resource_not_found_exception", "index_template matching [%s] not found", name))
	}
	delete(s.templates, name)
	return ok(map[string]any{"acknowledged": true})
}

func validIndexName(name string) *esError {
	bad := func(why string) *esError {
		e := errorf(http.StatusBadRequest, "invalid_index_name_exception", "Invalid index name [%s], %s", name, why)
		e.index = name
		return e
	}
	switch {
	case name == "" || name == "." || name == "..":
		return bad("must not be '.' or '..'")
	case strings.ToLower(name) != name:
		return bad("must be lowercase")
	case strings.ContainsAny(name, `\/*?"<>| ,#:`):
		return bad(`must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?, #, :]`)
	case strings.IndexAny(name[:1], "-_+") == 0:
		return bad("must not start with '_', '-', or '+'")
	case len(name) > 255:
		return bad("index name is too long")
	}
	return nil
}

// createIndexLocked creates name from the matching template and body.
func (s *Server) createIndexLocked(name string, settings, mappings map[string]any) (*index, *esError) {
	if e := validIndexName(name); e != nil {
		return nil, e
	}
	if _, exists := s.indices[name]; exists {
		e := errorf(http.StatusBadRequest, "resource_already_exists_exception", "index [%s/esfake-uuid] already exists", name)
		e.index = name
		return nil, e
	}
	if s.isAlias(name) {
		e := errorf(http.StatusBadRequest, "invalid_index_name_exception", "Invalid index name [%s], already exists as alias", name)
		e.index = name
		return nil, e
	}
	var best *template
	for _, t := range s.templates {
		for _, p := range t.patterns {
			if matchPattern(p, name) && (best == nil || t.priority > best.priority) {
				best = t
			}
		}
	}
	merged := map[string]any{}
	mergedSettings := map[string]any{}
	if best != nil {
		mergeInto(merged, best.mappings)
		mergeInto(mergedSettings, best.settings)
	}
	mergeInto(merged, mappings)
	mergeInto(mergedSettings, settings)
	m, e := parseMapping(merged, analyzersOf(mergedSettings))
	if e != nil {
		return nil, e
	}
	idx := &index{name: name, uuid: fmt.Sprintf("esfake-%d", s.nextSeq()), mapping: m, docs: map[string]*doc{}, visible: map[string]*doc{}, aliases: map[string]bool{}}
	s.indices[name] = idx
	return idx, nil
}

func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		if sv, isMap := v.(map[string]any); isMap {
			dv, _ := dst[k].(map[string]any)
			if dv == nil {
				dv = map[string]any{}
			}
			mergeInto(dv, sv)
			dst[k] = dv
			continue
		}
		dst[k] = v
	}
}

func matchPattern(p, name string) bool {
	if prefix, wild := strings.CutSuffix(p, "*"); wild {
		return strings.HasPrefix(name, prefix)
	}
	return p == name
}

func (s *Server) createIndex(name string, body []byte) (int, any) {
	v, e := decode(body)
	if e != nil {
		return fail(e)
	}
	var settings, mappings, aliases map[string]any
	for k, val := range v {
		obj, isObj := val.(map[string]any)
		if !isObj {
			return fail(parseError("[%s] must be an object", k))
		}
		switch k {
		case "settings":
			settings = obj
		case "mappings":
			mappings = obj
		case "aliases":
			aliases = obj
		default:
			return fail(parseError("unknown key [%s] for create index", k))
		}
	}
	for alias := range aliases {
		if _, exists := s.indices[alias]; exists || alias == name {
			return fail(errorf(http.StatusBadRequest, "invalid_alias_name_exception", "Invalid alias name [%s]: an index or data stream exists with the same name as the alias", alias))
		}
	}
	idx, e := s.createIndexLocked(name, settings, mappings)
	if e != nil {
		return fail(e)
	}
	for alias, spec := range aliases {
		w := false
		if sp, isMap := spec.(map[string]any); isMap {
			w, _ = sp["is_write_index"].(bool)
		}
		idx.aliases[alias] = w
	}
	return ok(map[string]any{"acknowledged": true, "shards_acknowledged": true, "index": name})
}

func (s *Server) deleteIndex(expr string) (int, any) {
	names := strings.Split(expr, ",")
	for _, n := range names {
		if strings.ContainsAny(n, "*?") || n == "_all" {
			return fail(badRequest("Wildcard expressions or all indices are not allowed"))
		}
		if s.isAlias(n) {
			return fail(badRequest("The provided expression [%s] matches an alias, specify the corresponding concrete indices instead.", n))
		}
		if _, exists := s.indices[n]; !exists {
			return fail(indexNotFound(n))
		}
	}
	for _, n := range names {
		delete(s.indices, n)
	}
	return ok(map[string]any{"acknowledged": true})
}

func indexNotFound(name string) *esError {
	e := errorf(http.StatusNotFound, "index_not_found_exception", "no such index [%s]", name)
	e.index = name
	return e
}

func (s *Server) isAlias(name string) bool {
	for _, idx := range s.indices {
		if _, has := idx.aliases[name]; has {
			return true
		}
	}
	return false
}

func (s *Server) aliasIndices(alias string) []*index {
	var out []*index
	for _, idx := range s.indices {
		if _, has := idx.aliases[alias]; has {
			out = append(out, idx)
		}
	}
	slices.SortFunc(out, func(a, b *index) int { return strings.Compare(a.name, b.name) })
	return out
}

// resolve returns the indices an expression (names, aliases, patterns
// with a trailing *, comma-separated) names.
func (s *Server) resolve(expr string) ([]*index, *esError) {
	seen := map[string]bool{}
	var out []*index
	add := func(idx *index) {
		if !seen[idx.name] {
			seen[idx.name] = true
			out = append(out, idx)
		}
	}
	for _, n := range strings.Split(expr, ",") {
		switch {
		case strings.HasSuffix(n, "*"):
			var names []string
			for name := range s.indices {
				if matchPattern(n, name) {
					names = append(names, name)
				}
			}
			slices.Sort(names)
			for _, name := range names {
				add(s.indices[name])
			}
		case s.indices[n] != nil:
			add(s.indices[n])
		case s.isAlias(n):
			for _, idx := range s.aliasIndices(n) {
				add(idx)
			}
		default:
			return nil, indexNotFound(n)
		}
	}
	return out, nil
}

// writeIndex resolves a bulk target to one index, creating it if it does
// not exist (action.auto_create_index).
func (s *Server) writeIndex(name string) (*index, *esError) {
	if idx := s.indices[name]; idx != nil {
		return idx, nil
	}
	if s.isAlias(name) {
		targets := s.aliasIndices(name)
		for _, idx := range targets {
			if idx.aliases[name] {
				return idx, nil
			}
		}
		if len(targets) == 1 {
			return targets[0], nil
		}
		return nil, badRequest("no write index is defined for alias [%s]. The write index may be explicitly disabled using is_write_index=false or the alias points to multiple indices without one being designated as a write index", name)
	}
	return s.createIndexLocked(name, nil, nil)
}

func aliasBody(idx *index, only string) map[string]any {
	as := map[string]any{}
	for a, w := range idx.aliases {
		if only != "" && a != only {
			continue
		}
		spec := map[string]any{}
		if w {
			spec["is_write_index"] = true
		}
		as[a] = spec
	}
	return map[string]any{"aliases": as}
}

func (s *Server) getAlias(name string) (int, any) {
	out := map[string]any{}
	for _, n := range strings.Split(name, ",") {
		for _, idx := range s.aliasIndices(n) {
			out[idx.name] = aliasBody(idx, n)
		}
	}
	if len(out) == 0 {
		return http.StatusNotFound, map[string]any{"error": fmt.Sprintf("alias [%s] missing", name), "status": 404}
	}
	return ok(out)
}

func (s *Server) getIndexAliases(expr string) (int, any) {
	idxs := []*index{}
	for _, n := range strings.Split(expr, ",") {
		if strings.HasSuffix(n, "*") {
			r, _ := s.resolve(n)
			idxs = append(idxs, r...)
			continue
		}
		r, e := s.resolve(n)
		if e != nil {
			return fail(e)
		}
		idxs = append(idxs, r...)
	}
	out := map[string]any{}
	for _, idx := range idxs {
		out[idx.name] = aliasBody(idx, "")
	}
	return ok(out)
}

func (s *Server) updateAliases(body []byte) (int, any) {
	v, e := decode(body)
	if e != nil {
		return fail(e)
	}
	actions, isArr := v["actions"].([]any)
	if !isArr || len(v) != 1 {
		return fail(parseError("[aliases] expects a single field [actions] holding an array"))
	}
	type op struct {
		add          bool
		index, alias string
		write        bool
	}
	var ops []op
	for _, a := range actions {
		am, isMap := a.(map[string]any)
		if !isMap || len(am) != 1 {
			return fail(parseError("an alias action must be an object with one key"))
		}
		for kind, spec := range am {
			sm, isMap := spec.(map[string]any)
			if !isMap {
				return fail(parseError("[%s] must be an object", kind))
			}
			o := op{add: kind == "add"}
			if kind != "add" && kind != "remove" {
				return fail(badRequest("esfake: alias action [%s] is not modeled", kind))
			}
			for k, val := range sm {
				switch k {
				case "index":
					o.index, _ = val.(string)
				case "alias":
					o.alias, _ = val.(string)
				case "is_write_index":
					o.write, _ = val.(bool)
				default:
					return fail(parseError("[%s] unknown field [%s]", kind, k))
				}
			}
			if o.index == "" || o.alias == "" {
				return fail(errorf(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: [index] and [alias] are required;"))
			}
			idx := s.indices[o.index]
			if idx == nil {
				return fail(indexNotFound(o.index))
			}
			if o.add && s.indices[o.alias] != nil {
				return fail(errorf(http.StatusBadRequest, "invalid_alias_name_exception", "Invalid alias name [%s]: an index or data stream exists with the same name as the alias", o.alias))
			}
			if _, has := idx.aliases[o.alias]; !o.add && !has {
				return fail(errorf(http.StatusNotFound, "aliases_not_found_exception", "aliases [%s] missing", o.alias))
			}
			ops = append(ops, o)
		}
	}
	for _, o := range ops {
		if o.add {
			s.indices[o.index].aliases[o.alias] = o.write
		} else {
			delete(s.indices[o.index].aliases, o.alias)
		}
	}
	return ok(map[string]any{"acknowledged": true, "errors": false})
}

func (s *Server) refresh(expr string) (int, any) {
	idxs, e := s.resolve(expr)
	if e != nil {
		return fail(e)
	}
	for _, idx := range idxs {
		idx.refresh()
	}
	n := len(idxs)
	return ok(map[string]any{"_shards": map[string]any{"total": 2 * n, "successful": n, "failed": 0}})
}

func toInt(v any) (int64, error) {
	switch n := v.(type) {
	case json.Number:
		return n.Int64()
	case float64:
		if n != float64(int64(n)) {
			return 0, fmt.Errorf("not an integer: %v", n)
		}
		return int64(n), nil
	case string:
		return json.Number(n).Int64()
	}
	return 0, fmt.Errorf("not a number: %v", v)
}

func took(start time.Time) int64 { return time.Since(start).Milliseconds() }
