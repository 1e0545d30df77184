// Reading documents by id (_mget) and adding fields to the mappings of
// existing indices (PUT _mapping).

package esfake

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
)

// keywords reports whether v is what a keyword field holds: a string, or
// an array of strings.
func keywords(v any) bool {
	switch x := v.(type) {
	case string:
		return true
	case []any:
		for _, e := range x {
			if _, ok := e.(string); !ok {
				return false
			}
		}
		return true
	}
	return false
}

// mget serves POST/GET /{index}/_mget with a body of docs ({_id,
// routing}) or ids. Like Elasticsearch it is real-time: it reads the
// latest state, not what the last refresh made visible. The target must
// be one index or an alias of one.
func (s *Server) mget(expr string, body []byte, params url.Values) (int, any) {
	for k := range params {
		switch k {
		case "routing", "realtime", "pretty", "filter_path":
		default:
			return fail(badRequest("request [/%s/_mget] contains unrecognized parameter: [%s]", expr, k))
		}
	}
	idxs, e := s.resolve(expr)
	if e != nil {
		return fail(e)
	}
	if len(idxs) != 1 {
		return fail(errorf(http.StatusBadRequest, "illegal_argument_exception", "alias [%s] has more than one index associated with it, can't execute a single index op", expr))
	}
	idx := idxs[0]
	var req struct {
		Docs []struct {
			ID      string `json:"_id"`
			Routing string `json:"routing"`
		} `json:"docs"`
		IDs []string `json:"ids"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return fail(errorf(http.StatusBadRequest, "parsing_exception", "failed to parse the request: %v", err))
	}
	ids := req.IDs
	for _, d := range req.Docs {
		if idx.mapping.routingRequired && d.Routing == "" && params.Get("routing") == "" {
			return fail(errorf(http.StatusBadRequest, "routing_missing_exception", "routing is required for [%s]/[%s]", idx.name, d.ID))
		}
		ids = append(ids, d.ID)
	}
	if len(ids) == 0 {
		return fail(errorf(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: no documents to get;"))
	}
	docs := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		d := idx.docs[id]
		if d == nil {
			docs = append(docs, map[string]any{"_index": idx.name, "_id": id, "found": false})
			continue
		}
		docs = append(docs, map[string]any{"_index": idx.name, "_id": id, "_version": d.version,
			"_seq_no": d.seqNo, "_primary_term": 1, "_routing": d.routing, "found": true, "_source": d.source})
	}
	return http.StatusOK, map[string]any{"docs": docs}
}

// putMapping serves PUT /{index}/_mapping: it adds the fields of its
// properties to the mapping of every index expr names. A field already
// mapped must keep its type.
func (s *Server) putMapping(expr string, body []byte) (int, any) {
	idxs, e := s.resolve(expr)
	if e != nil {
		return fail(e)
	}
	req, e := decode(body)
	if e != nil {
		return fail(e)
	}
	for k := range req {
		if k != "properties" {
			return fail(badRequest("esfake: mapping updates of [%s] are not modeled", k))
		}
	}
	for _, idx := range idxs {
		m, e := parseMapping(map[string]any{"dynamic": "strict", "properties": req["properties"]}, analyzersOf(nil))
		if e != nil {
			return fail(e)
		}
		for name, typ := range m.fields {
			if old, ok := idx.mapping.fields[name]; ok && (old != typ || idx.mapping.sourceOnly[name] != m.sourceOnly[name]) {
				return fail(errorf(http.StatusBadRequest, "illegal_argument_exception", "mapper [%s] cannot be changed from type [%s] to [%s]", name, old, typ))
			}
		}
	}
	for _, idx := range idxs {
		m, _ := parseMapping(map[string]any{"dynamic": "strict", "properties": req["properties"]}, analyzersOf(nil))
		fields, sourceOnly := maps.Clone(idx.mapping.fields), maps.Clone(idx.mapping.sourceOnly)
		if sourceOnly == nil {
			sourceOnly = map[string]bool{}
		}
		maps.Copy(fields, m.fields)
		maps.Copy(sourceOnly, m.sourceOnly)
		idx.mapping.fields, idx.mapping.sourceOnly = fields, sourceOnly
	}
	return http.StatusOK, map[string]any{"acknowledged": true}
}
