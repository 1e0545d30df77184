// The stand-in's indexes: mappings, documents with versions, and the
// standard analyzer's tokens.

package esfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/blevesearch/segment"
)

type fieldType string

const (
	typeKeyword fieldType = "keyword"
	typeText    fieldType = "text"
	typeLong    fieldType = "long"
	typeDate    fieldType = "date"
	typeBoolean fieldType = "boolean"
)

type mapping struct {
	strict          bool
	routingRequired bool
	fields          map[string]fieldType
	// sourceOnly are the keyword fields mapped with index and doc_values
	// false: kept in _source only, a string or an array of strings.
	sourceOnly map[string]bool
}

type index struct {
	name    string
	uuid    string
	mapping mapping
	// docs is the latest state; visible is what searches see, as of the
	// last refresh.
	docs    map[string]*doc
	visible map[string]*doc
	aliases map[string]bool // alias → is_write_index
}

func (idx *index) refresh() {
	idx.visible = make(map[string]*doc, len(idx.docs))
	for id, d := range idx.docs {
		idx.visible[id] = d
	}
}

// doc is a stored document with its parsed fields.
type doc struct {
	id      string
	routing string
	version int64
	seqNo   int64
	source  json.RawMessage
	// values of keyword (string), long (int64), date (int64 millis) and
	// boolean fields.
	values map[string]any
	// text of text fields, and its tokens.
	text   map[string]string
	tokens map[string][]token
}

type token struct {
	term       string
	start, end int // byte offsets in the text
}

// analyze splits s into lower-cased words by Unicode word segmentation
// (UAX #29), as Elasticsearch's standard tokenizer and lowercase filter.
func analyze(s string) []token {
	var out []token
	seg := segment.NewWordSegmenterDirect([]byte(s))
	pos := 0
	for seg.Segment() {
		b := seg.Bytes()
		if seg.Type() != segment.None {
			out = append(out, token{term: strings.ToLower(string(b)), start: pos, end: pos + len(b)})
		}
		pos += len(b)
	}
	return out
}

// analyzersOf returns the analyzer names settings declare, checking that
// each is one the server models.
func analyzersOf(settings map[string]any) map[string]error {
	out := map[string]error{"standard": nil}
	s := settings
	if inner, ok := settings["index"].(map[string]any); ok {
		s = inner
	}
	analysis, _ := s["analysis"].(map[string]any)
	analyzers, _ := analysis["analyzer"].(map[string]any)
	for name, spec := range analyzers {
		sp, _ := spec.(map[string]any)
		var err error
		if sp["type"] != "custom" || sp["tokenizer"] != "standard" {
			err = fmt.Errorf("esfake models custom analyzers with the standard tokenizer only")
		}
		filters, _ := sp["filter"].([]any)
		for _, f := range filters {
			if f != "lowercase" {
				err = fmt.Errorf("esfake models the lowercase filter only, not %v", f)
			}
		}
		out[name] = err
	}
	return out
}

func parseMapping(m map[string]any, analyzers map[string]error) (mapping, *esError) {
	out := mapping{fields: map[string]fieldType{}, sourceOnly: map[string]bool{}}
	for k, v := range m {
		switch k {
		case "dynamic":
			switch v {
			case "strict":
				out.strict = true
			case "true", true, "false", false:
				return out, badRequest("esfake: only dynamic strict is modeled")
			default:
				return out, errorf(http.StatusBadRequest, "mapper_parsing_exception", "Failed to parse mapping: dynamic must be one of [true, false, strict, runtime], got [%v]", v)
			}
		case "_routing":
			r, _ := v.(map[string]any)
			out.routingRequired, _ = r["required"].(bool)
		case "_meta":
		case "properties":
			props, ok := v.(map[string]any)
			if !ok {
				return out, errorf(http.StatusBadRequest, "mapper_parsing_exception", "properties must be an object")
			}
			for name, spec := range props {
				sp, _ := spec.(map[string]any)
				typ, _ := sp["type"].(string)
				switch fieldType(typ) {
				case typeKeyword, typeLong, typeDate, typeBoolean:
				case typeText:
					a, _ := sp["analyzer"].(string)
					if a == "" {
						a = "standard"
					}
					err, known := analyzers[a]
					if !known {
						return out, errorf(http.StatusBadRequest, "mapper_parsing_exception", "Failed to parse mapping: analyzer [%s] has not been configured in mappings", a)
					}
					if err != nil {
						return out, badRequest("%v", err)
					}
				default:
					return out, errorf(http.StatusBadRequest, "mapper_parsing_exception", "Failed to parse mapping: No handler for type [%s] declared on field [%s]", typ, name)
				}
				for key, v := range sp {
					switch {
					case key == "type" || key == "analyzer":
					case (key == "index" || key == "doc_values") && v == false && typ == string(typeKeyword):
					default:
						return out, badRequest("esfake: mapping parameter [%s] of field [%s] is not modeled", key, name)
					}
				}
				if sp["index"] == false || sp["doc_values"] == false {
					if sp["index"] != false || sp["doc_values"] != false {
						return out, badRequest("esfake: a keyword field [%s] with only one of index and doc_values false is not modeled", name)
					}
					out.sourceOnly[name] = true
				}
				out.fields[name] = fieldType(typ)
			}
		default:
			return out, errorf(http.StatusBadRequest, "mapper_parsing_exception", "Root mapping definition has unsupported parameters: [%s]", k)
		}
	}
	if !out.strict && len(m) > 0 {
		return out, badRequest("esfake: only dynamic strict is modeled")
	}
	return out, nil
}

// parseDate parses a date as Elasticsearch's default format does
// (strict_date_optional_time||epoch_millis) and returns epoch millis.
func parseDate(v any) (int64, error) {
	switch x := v.(type) {
	case json.Number:
		return x.Int64()
	case string:
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return n, nil
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"} {
			if t, err := time.Parse(layout, x); err == nil {
				return t.UnixMilli(), nil
			}
		}
	}
	return 0, fmt.Errorf("failed to parse date field [%v]", v)
}

// parseDoc checks src against the mapping.
func (idx *index) parseDoc(id string, src []byte) (*doc, *esError) {
	d := &doc{id: id, source: append(json.RawMessage(nil), src...), values: map[string]any{}, text: map[string]string{}, tokens: map[string][]token{}}
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	var fields map[string]any
	if err := dec.Decode(&fields); err != nil {
		return nil, errorf(http.StatusBadRequest, "document_parsing_exception", "[1:1] failed to parse: %v", err)
	}
	for name, v := range fields {
		typ, known := idx.mapping.fields[name]
		if !known {
			return nil, errorf(http.StatusBadRequest, "strict_dynamic_mapping_exception", "[1:2] mapping set to strict, dynamic introduction of [%s] within [_doc] is not allowed", name)
		}
		if v == nil {
			continue
		}
		if idx.mapping.sourceOnly[name] {
			if !keywords(v) {
				return nil, errorf(http.StatusBadRequest, "document_parsing_exception", "[1:2] failed to parse field [%s] of type [%s] in document with id '%s'. Preview of field's value: '%v'", name, typ, id, v)
			}
			continue
		}
		bad := func() *esError {
			return errorf(http.StatusBadRequest, "document_parsing_exception", "[1:2] failed to parse field [%s] of type [%s] in document with id '%s'. Preview of field's value: '%v'", name, typ, id, v)
		}
		switch typ {
		case typeKeyword:
			switch x := v.(type) {
			case string:
				d.values[name] = x
			case json.Number:
				d.values[name] = x.String()
			case bool:
				d.values[name] = strconv.FormatBool(x)
			default:
				return nil, bad()
			}
		case typeText:
			str, ok := v.(string)
			if !ok {
				return nil, bad()
			}
			d.text[name] = str
			d.tokens[name] = analyze(str)
		case typeLong:
			n, err := toInt(v)
			if err != nil {
				return nil, bad()
			}
			d.values[name] = n
		case typeDate:
			ms, err := parseDate(v)
			if err != nil {
				return nil, bad()
			}
			d.values[name] = ms
		case typeBoolean:
			switch x := v.(type) {
			case bool:
				d.values[name] = x
			case string:
				if x != "true" && x != "false" {
					return nil, bad()
				}
				d.values[name] = x == "true"
			default:
				return nil, bad()
			}
		}
	}
	return d, nil
}

// bulk serves the bulk API.
func (s *Server) bulk(defaultIndex string, body []byte, params url.Values) (int, any) {
	start := time.Now()
	for k := range params {
		switch k {
		case "refresh", "timeout", "wait_for_active_shards", "pretty", "human", "error_trace", "filter_path":
		default:
			return fail(badRequest("request [/_bulk] contains unrecognized parameter: [%s]", k))
		}
	}
	refresh := params.Get("refresh")
	if refresh != "" && refresh != "true" && refresh != "false" && refresh != "wait_for" {
		return fail(badRequest("Unknown value for refresh: [%s].", refresh))
	}
	lines := bytes.Split(body, []byte("\n"))
	var items []any
	anyErr := false
	touched := map[*index]bool{}
	for i := 0; i < len(lines); i++ {
		line := bytes.TrimSpace(lines[i])
		if len(line) == 0 {
			continue
		}
		meta, e := decode(line)
		if e != nil || len(meta) != 1 {
			return fail(errorf(http.StatusBadRequest, "illegal_argument_exception", "Malformed action/metadata line [%d], expected a simple value for field but found something else", i+1))
		}
		var action string
		var spec map[string]any
		for k, v := range meta {
			action = k
			spec, _ = v.(map[string]any)
		}
		if action != "index" {
			return fail(badRequest("esfake: bulk action [%s] is not modeled", action))
		}
		i++
		if i >= len(lines) || len(bytes.TrimSpace(lines[i])) == 0 {
			return fail(badRequest("The bulk request must be terminated by a newline [\\n]"))
		}
		src := bytes.TrimSpace(lines[i])
		item, failed, idx := s.bulkIndex(defaultIndex, spec, src)
		if idx != nil {
			touched[idx] = true
		}
		anyErr = anyErr || failed
		items = append(items, map[string]any{action: item})
	}
	if len(items) == 0 {
		return fail(errorf(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: no requests added;"))
	}
	if refresh == "true" || refresh == "wait_for" {
		for idx := range touched {
			idx.refresh()
		}
	}
	return ok(map[string]any{"took": took(start), "errors": anyErr, "items": items})
}

func (s *Server) bulkIndex(defaultIndex string, spec map[string]any, src []byte) (map[string]any, bool, *index) {
	target, id, routing, versionType := defaultIndex, "", "", "internal"
	var version int64
	hasVersion := false
	for k, v := range spec {
		str, _ := v.(string)
		switch k {
		case "_index":
			target = str
		case "_id":
			id = str
		case "routing":
			routing = str
		case "version_type":
			versionType = str
		case "version":
			n, err := toInt(v)
			if err != nil {
				return itemError(target, id, badRequest("version must be a number")), true, nil
			}
			version, hasVersion = n, true
		default:
			return itemError(target, id, badRequest("esfake: bulk item parameter [%s] is not modeled", k)), true, nil
		}
	}
	switch {
	case target == "":
		return itemError(target, id, errorf(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: index is missing;")), true, nil
	case id == "":
		return itemError(target, id, badRequest("esfake: auto-generated ids are not modeled")), true, nil
	case utf8.RuneCountInString(id) > 512:
		return itemError(target, id, errorf(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: id is too long;")), true, nil
	case versionType != "internal" && versionType != "external" && versionType != "external_gte":
		return itemError(target, id, badRequest("esfake: version_type [%s] is not modeled", versionType)), true, nil
	case versionType != "internal" && (!hasVersion || version < 0):
		return itemError(target, id, errorf(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: illegal version value [%d] for version type [%s];", version, strings.ToUpper(versionType))), true, nil
	case versionType == "internal" && hasVersion:
		return itemError(target, id, errorf(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: internal versioning can not be used for optimistic concurrency control. Please use `if_seq_no` and `if_primary_term` instead;")), true, nil
	}
	idx, e := s.writeIndex(target)
	if e != nil {
		return itemError(target, id, e), true, nil
	}
	if idx.mapping.routingRequired && routing == "" {
		e := errorf(http.StatusBadRequest, "routing_missing_exception", "routing is required for [%s]/[%s]", idx.name, id)
		e.index = idx.name
		return itemError(idx.name, id, e), true, idx
	}
	d, e := idx.parseDoc(id, src)
	if e != nil {
		e.index = idx.name
		return itemError(idx.name, id, e), true, idx
	}
	cur := idx.docs[id]
	if versionType == "external_gte" {
		if cur != nil && cur.version > version {
			e := errorf(http.StatusConflict, "version_conflict_engine_exception", "[%s]: version conflict, current version [%d] is higher than the one provided [%d]", id, cur.version, version)
			e.index = idx.name
			return itemError(idx.name, id, e), true, idx
		}
	} else if versionType == "external" {
		if cur != nil && cur.version >= version {
			e := errorf(http.StatusConflict, "version_conflict_engine_exception", "[%s]: version conflict, current version [%d] is higher or equal to the one provided [%d]", id, cur.version, version)
			e.index = idx.name
			return itemError(idx.name, id, e), true, idx
		}
	} else {
		version = 1
		if cur != nil {
			version = cur.version + 1
		}
	}
	d.routing, d.version, d.seqNo = routing, version, s.nextSeq()
	idx.docs[id] = d
	result, status := "created", http.StatusCreated
	if cur != nil {
		result, status = "updated", http.StatusOK
	}
	return map[string]any{
		"_index": idx.name, "_id": id, "_version": version, "result": result,
		"_shards":       map[string]any{"total": 2, "successful": 1, "failed": 0},
		"_seq_no":       d.seqNo,
		"_primary_term": 1,
		"status":        status,
	}, false, idx
}

func itemError(indexName, id string, e *esError) map[string]any {
	cause := map[string]any{"type": e.typ, "reason": e.reason}
	if e.index != "" {
		cause["index"] = e.index
		cause["index_uuid"] = "_na_"
		cause["shard"] = "0"
	}
	return map[string]any{"_index": indexName, "_id": id, "status": e.status, "error": cause}
}
