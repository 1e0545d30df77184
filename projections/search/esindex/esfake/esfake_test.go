package esfake_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-chat/parley/projections/search/esindex/esfake"
)

// call sends a request and returns the status and decoded body.
func call(t *testing.T, srv *esfake.Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("X-Elastic-Product") != "Elasticsearch" {
		t.Errorf("%s %s: no X-Elastic-Product header", method, path)
	}
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: non-JSON answer %q", method, path, raw)
		}
	}
	return resp.StatusCode, out
}

func errType(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	s, _ := e["type"].(string)
	return s
}

const mappings = `{"mappings":{"dynamic":"strict","_routing":{"required":true},"properties":{
	"k":{"type":"keyword"},"n":{"type":"long"},"t":{"type":"text"},"d":{"type":"date"}}}}`

func setup(t *testing.T) *esfake.Server {
	t.Helper()
	srv := esfake.Start(t)
	if st, out := call(t, srv, "PUT", "/docs", mappings); st != 200 {
		t.Fatalf("create index: %d %v", st, out)
	}
	return srv
}

func TestInfo(t *testing.T) {
	t.Parallel()
	srv := esfake.Start(t)
	st, out := call(t, srv, "GET", "/", "")
	v, _ := out["version"].(map[string]any)
	if st != 200 || v["number"] != esfake.Version || out["tagline"] != "You Know, for Search" {
		t.Errorf("GET /: %d %v", st, out)
	}
}

func TestBulkVersionsAndErrors(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	body := `{"index":{"_index":"docs","_id":"a","routing":"r","version":5,"version_type":"external"}}
{"k":"x","n":1}
{"index":{"_index":"docs","_id":"a","routing":"r","version":5,"version_type":"external"}}
{"k":"y"}
{"index":{"_index":"docs","_id":"b","version":1,"version_type":"external"}}
{"k":"z"}
{"index":{"_index":"docs","_id":"c","routing":"r","version":1,"version_type":"external"}}
{"other":"z"}
{"index":{"_index":"docs","_id":"d","routing":"r","version":1,"version_type":"external"}}
{"n":"not a number"}
`
	st, out := call(t, srv, "POST", "/_bulk", body)
	if st != 200 || out["errors"] != true {
		t.Fatalf("bulk: %d %v", st, out)
	}
	items := out["items"].([]any)
	want := []struct {
		status float64
		typ    string
	}{{201, ""}, {409, "version_conflict_engine_exception"}, {400, "routing_missing_exception"}, {400, "strict_dynamic_mapping_exception"}, {400, "document_parsing_exception"}}
	for i, w := range want {
		it := items[i].(map[string]any)["index"].(map[string]any)
		e, _ := it["error"].(map[string]any)
		typ, _ := e["type"].(string)
		if it["status"] != w.status || typ != w.typ {
			t.Errorf("item %d: %v, want status %v error %q", i, it, w.status, w.typ)
		}
	}
	if st, out := call(t, srv, "POST", "/_bulk", `{"delete":{"_index":"docs","_id":"a"}}`+"\n"); st != 400 {
		t.Errorf("a delete action, which the fake does not model: %d %v", st, out)
	}
}

func TestSearchSeesOnlyRefreshedWrites(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	call(t, srv, "POST", "/_bulk", `{"index":{"_index":"docs","_id":"a","routing":"r"}}`+"\n"+`{"t":"hello world","k":"x","n":3,"d":"2025-01-01T00:00:00.123456789Z"}`+"\n")
	q := `{"query":{"match":{"t":"hello"}}}`
	if _, out := call(t, srv, "POST", "/docs/_search", q); len(out["hits"].(map[string]any)["hits"].([]any)) != 0 {
		t.Fatalf("an unrefreshed write is visible: %v", out)
	}
	call(t, srv, "POST", "/docs/_refresh", "")
	_, out := call(t, srv, "POST", "/docs/_search", `{"query":{"match":{"t":"HELLO"}},"sort":[{"d":"desc"},{"k":"asc"}],"highlight":{"fields":{"t":{}}}}`)
	hits := out["hits"].(map[string]any)["hits"].([]any)
	if len(hits) != 1 {
		t.Fatalf("after refresh: %v", out)
	}
	h := hits[0].(map[string]any)
	sort := h["sort"].([]any)
	if sort[0] != float64(1735689600123) || sort[1] != "x" || h["_score"] != nil || h["_routing"] != "r" {
		t.Errorf("hit %v: want sort [millis, keyword], no score, routing r", h)
	}
	if hl := h["highlight"].(map[string]any)["t"].([]any)[0]; hl != "<em>hello</em> world" {
		t.Errorf("highlight %v", hl)
	}
}

func TestSearchRefusals(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	cases := map[string]struct {
		body, typ string
		status    int
	}{
		"sort on a text field":     {`{"sort":[{"t":"asc"}]}`, "illegal_argument_exception", 400},
		"sort on _id":              {`{"sort":["_id"]}`, "illegal_argument_exception", 400},
		"an unknown query":         {`{"query":{"fuzzy_wuzzy":{}}}`, "parsing_exception", 400},
		"an unknown key":           {`{"qurey":{}}`, "parsing_exception", 400},
		"search_after of a length": {`{"sort":[{"n":"asc"}],"search_after":[1,2]}`, "illegal_argument_exception", 400},
		"search_after and from":    {`{"sort":[{"n":"asc"}],"search_after":[1],"from":5}`, "illegal_argument_exception", 400},
		"a window too large":       {`{"size":10001}`, "illegal_argument_exception", 400},
	}
	for name, c := range cases {
		st, out := call(t, srv, "POST", "/docs/_search", c.body)
		if st != c.status || errType(out) != c.typ {
			t.Errorf("%s: %d %v, want %d %s", name, st, out, c.status, c.typ)
		}
	}
	if st, out := call(t, srv, "POST", "/missing/_search", `{}`); st != 404 || errType(out) != "index_not_found_exception" {
		t.Errorf("a missing index: %d %v", st, out)
	}
}

func TestIndicesAliasesTemplates(t *testing.T) {
	t.Parallel()
	srv := esfake.Start(t)
	tpl := `{"index_patterns":["logs-*"],"priority":1,"template":{"mappings":{"dynamic":"strict","properties":{"k":{"type":"keyword"}}}}}`
	if st, out := call(t, srv, "PUT", "/_index_template/a", tpl); st != 200 {
		t.Fatalf("template: %d %v", st, out)
	}
	if st, out := call(t, srv, "PUT", "/_index_template/b", strings.Replace(tpl, "logs-*", "logs-x*", 1)); st != 400 {
		t.Errorf("an overlapping template of the same priority: %d %v", st, out)
	}
	if st, out := call(t, srv, "PUT", "/logs-1", `{"aliases":{"logs":{"is_write_index":true}}}`); st != 200 {
		t.Fatalf("create: %d %v", st, out)
	}
	if st, out := call(t, srv, "PUT", "/logs-1", `{}`); st != 400 || errType(out) != "resource_already_exists_exception" {
		t.Errorf("create twice: %d %v", st, out)
	}
	if st, _ := call(t, srv, "PUT", "/Logs-2", `{}`); st != 400 {
		t.Errorf("an upper-case name was accepted")
	}
	call(t, srv, "PUT", "/logs-2", `{}`)
	if st, out := call(t, srv, "POST", "/_aliases", `{"actions":[{"remove":{"index":"logs-1","alias":"logs"}},{"add":{"index":"logs-2","alias":"logs","is_write_index":true}}]}`); st != 200 {
		t.Fatalf("swap: %d %v", st, out)
	}
	if st, out := call(t, srv, "GET", "/_alias/logs", ""); st != 200 || out["logs-2"] == nil || out["logs-1"] != nil {
		t.Errorf("after the swap: %d %v", st, out)
	}
	if st, out := call(t, srv, "POST", "/_bulk", `{"index":{"_index":"logs","_id":"1"}}`+"\n"+`{"k":"v","extra":1}`+"\n"); st != 200 || out["errors"] != true {
		t.Errorf("the template's strict mapping did not apply: %d %v", st, out)
	}
	if st, _ := call(t, srv, "DELETE", "/logs-*", ""); st != 400 {
		t.Errorf("a wildcard delete was accepted")
	}
	if st, _ := call(t, srv, "DELETE", "/logs", ""); st != 400 {
		t.Errorf("deleting through an alias was accepted")
	}
	if st, _ := call(t, srv, "DELETE", "/logs-1,logs-2", ""); st != 200 {
		t.Errorf("deleting by names failed")
	}
	if st, out := call(t, srv, "GET", "/_alias/logs", ""); st != 404 {
		t.Errorf("the alias outlived its index: %d %v", st, out)
	}
}

// TestPointInTime: a point in time keeps the searchable state of its
// index when it was opened, whatever is written, refreshed or deleted
// since; a search with it names no index, returns pit_id, sorts last by
// the implicit _shard_doc tiebreaker and pages with search_after; and it
// is closed once, with Elasticsearch's answers for the errors around it.
func TestPointInTime(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	bulk := func(body string) {
		t.Helper()
		if st, out := call(t, srv, "POST", "/_bulk?refresh=true", body); st != 200 || out["errors"] != false {
			t.Fatalf("bulk: %d %v", st, out)
		}
	}
	bulk(`{"index":{"_index":"docs","_id":"a","routing":"r","version":3,"version_type":"external"}}
{"k":"x","n":1}
{"index":{"_index":"docs","_id":"b","routing":"r","version":1,"version_type":"external"}}
{"k":"x","n":2}
{"index":{"_index":"docs","_id":"c","routing":"r","version":1,"version_type":"external"}}
{"k":"x","n":2}
`)
	if st, out := call(t, srv, "POST", "/docs/_pit", ""); st != 400 || errType(out) != "action_request_validation_exception" {
		t.Errorf("a point in time without keep_alive: %d %v", st, out)
	}
	st, out := call(t, srv, "POST", "/docs/_pit?keep_alive=1m", "")
	id, _ := out["id"].(string)
	if st != 200 || id == "" {
		t.Fatalf("opening a point in time: %d %v", st, out)
	}
	// Changes after the point in time: not seen through it.
	bulk(`{"index":{"_index":"docs","_id":"a","routing":"r","version":9,"version_type":"external"}}
{"k":"y","n":1}
{"index":{"_index":"docs","_id":"d","routing":"r","version":1,"version_type":"external"}}
{"k":"x","n":0}
`)
	page := func(after string) (int, map[string]any) {
		body := `{"size":2,"query":{"term":{"k":"x"}},"pit":{"id":"` + id + `","keep_alive":"1m"},"sort":[{"n":{"order":"asc"}}],"version":true,"_source":["n"]` + after + `}`
		return call(t, srv, "POST", "/_search", body)
	}
	st, out = page("")
	hits := out["hits"].(map[string]any)["hits"].([]any)
	if st != 200 || out["pit_id"] != id || len(hits) != 2 {
		t.Fatalf("first page: %d %v", st, out)
	}
	first, second := hits[0].(map[string]any), hits[1].(map[string]any)
	if first["_id"] != "a" || first["_version"] != float64(3) || len(first["sort"].([]any)) != 2 || second["_id"] == "a" {
		t.Errorf("first page: the document as it was, with its version and the tiebreaker's sort value: %v", hits)
	}
	last, _ := json.Marshal(second["sort"])
	st, out = page(`,"search_after":` + string(last))
	hits = out["hits"].(map[string]any)["hits"].([]any)
	if st != 200 || len(hits) != 1 || hits[0].(map[string]any)["_id"] == second["_id"] {
		t.Errorf("second page: %d %v; want the third document of the point in time only", st, out)
	}
	// The index deleted: the point in time still reads it.
	if st, out := call(t, srv, "DELETE", "/docs", ""); st != 200 {
		t.Fatalf("deleting the index: %d %v", st, out)
	}
	if st, out := page(""); st != 200 || len(out["hits"].(map[string]any)["hits"].([]any)) != 2 {
		t.Errorf("after the index's deletion: %d %v", st, out)
	}
	for _, c := range []struct{ what, method, path, body, typ string }{
		{"an index with a point in time", "POST", "/docs/_search", `{"pit":{"id":"` + id + `"}}`, "action_request_validation_exception"},
		{"routing with a point in time", "POST", "/_search?routing=r", `{"pit":{"id":"` + id + `"}}`, "action_request_validation_exception"},
		{"_shard_doc without a point in time", "POST", "/other/_search", `{"sort":["_shard_doc"]}`, "index_not_found_exception"},
		{"an unknown point in time", "POST", "/_search", `{"pit":{"id":"nope"}}`, "search_context_missing_exception"},
		{"a bad keep_alive", "POST", "/_search", `{"pit":{"id":"` + id + `","keep_alive":"soon"}}`, "illegal_argument_exception"},
	} {
		if st, out := call(t, srv, c.method, c.path, c.body); st < 400 || errType(out) != c.typ {
			t.Errorf("%s: %d %v; want %s", c.what, st, out, c.typ)
		}
	}
	if st, out := call(t, srv, "DELETE", "/_pit", `{"id":"`+id+`"}`); st != 200 || out["succeeded"] != true || out["num_freed"] != float64(1) {
		t.Errorf("closing: %d %v", st, out)
	}
	if st, out := call(t, srv, "DELETE", "/_pit", `{"id":"`+id+`"}`); st != 200 || out["succeeded"] != true || out["num_freed"] != float64(0) {
		t.Errorf("closing again: %d %v", st, out)
	}
	if st, out := page(""); st != 404 || errType(out) != "search_context_missing_exception" {
		t.Errorf("searching a closed point in time: %d %v", st, out)
	}
}

func TestShardDocNeedsAPointInTime(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	if st, out := call(t, srv, "POST", "/docs/_search", `{"sort":["_shard_doc"]}`); st != 400 || !strings.Contains(strings.ToLower(out["error"].(map[string]any)["reason"].(string)), "point in time") {
		t.Errorf("_shard_doc without a point in time: %d %v", st, out)
	}
}

// version_type external_gte: a version equal to the stored one replaces
// the document, a lower one is a conflict (Elasticsearch's rule).
func TestBulkExternalGTE(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	body := `{"index":{"_index":"docs","_id":"a","routing":"r","version":5,"version_type":"external"}}
{"k":"first"}
{"index":{"_index":"docs","_id":"a","routing":"r","version":5,"version_type":"external_gte"}}
{"k":"again"}
{"index":{"_index":"docs","_id":"a","routing":"r","version":4,"version_type":"external_gte"}}
{"k":"older"}
{"index":{"_index":"docs","_id":"b","routing":"r","version_type":"external_gte"}}
{"k":"no version"}
`
	st, out := call(t, srv, "POST", "/_bulk?refresh=true", body)
	if st != 200 {
		t.Fatalf("bulk: %d %v", st, out)
	}
	items := out["items"].([]any)
	for i, w := range []float64{201, 200, 409, 400} {
		if it := items[i].(map[string]any)["index"].(map[string]any); it["status"] != w {
			t.Errorf("item %d: %v, want status %v", i, it, w)
		}
	}
	st, out = call(t, srv, "POST", "/docs/_mget", `{"docs":[{"_id":"a","routing":"r"}]}`)
	doc := out["docs"].([]any)[0].(map[string]any)
	if src, _ := doc["_source"].(map[string]any); st != 200 || src["k"] != "again" || doc["_version"] != float64(5) {
		t.Errorf("the document after external_gte: %d %v; want k again at version 5", st, doc)
	}
}
