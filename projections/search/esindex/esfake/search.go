// The stand-in's query language: bool, match, term, range and ids queries
// over its documents, scored with BM25 like Elasticsearch.

package esfake

import (
	"cmp"
	"encoding/json"
	"html"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// node is a parsed query.
type node interface {
	// eval reports whether d matches and its score.
	eval(d *doc, st *stats) (bool, float64)
	// terms adds the terms a highlighter marks in field.
	terms(field string, add func(string))
}

type stats struct {
	n      float64            // visible documents
	df     map[string]float64 // field \x00 term → documents holding it
	avgLen map[string]float64 // field → average token count
}

func newStats(docs []*doc) *stats {
	st := &stats{df: map[string]float64{}, avgLen: map[string]float64{}}
	st.n = float64(len(docs))
	total := map[string]float64{}
	for _, d := range docs {
		for f, toks := range d.tokens {
			total[f] += float64(len(toks))
			seen := map[string]bool{}
			for _, t := range toks {
				if !seen[t.term] {
					seen[t.term] = true
					st.df[f+"\x00"+t.term]++
				}
			}
		}
	}
	for f, t := range total {
		st.avgLen[f] = t / math.Max(st.n, 1)
	}
	return st
}

// bm25 scores a term occurring tf times in a field of dl tokens.
func (st *stats) bm25(field, term string, tf, dl float64) float64 {
	const k1, b = 1.2, 0.75
	df := st.df[field+"\x00"+term]
	idf := math.Log(1 + (st.n-df+0.5)/(df+0.5))
	avg := st.avgLen[field]
	if avg == 0 {
		avg = 1
	}
	return idf * tf * (k1 + 1) / (tf + k1*(1-b+b*dl/avg))
}

type boolQ struct{ must, filter, should, mustNot []node }

func (q *boolQ) eval(d *doc, st *stats) (bool, float64) {
	score := 0.0
	for _, c := range q.must {
		m, s := c.eval(d, st)
		if !m {
			return false, 0
		}
		score += s
	}
	for _, c := range q.filter {
		if m, _ := c.eval(d, st); !m {
			return false, 0
		}
	}
	for _, c := range q.mustNot {
		if m, _ := c.eval(d, st); m {
			return false, 0
		}
	}
	matchedShould := 0
	for _, c := range q.should {
		if m, s := c.eval(d, st); m {
			matchedShould++
			score += s
		}
	}
	if len(q.should) > 0 && len(q.must) == 0 && len(q.filter) == 0 && matchedShould == 0 {
		return false, 0
	}
	if len(q.must) == 0 && len(q.should) == 0 {
		score = 0 // only filters: constant score 0, as Elasticsearch
	}
	return true, score
}

func (q *boolQ) terms(field string, add func(string)) {
	for _, list := range [][]node{q.must, q.filter, q.should} {
		for _, c := range list {
			c.terms(field, add)
		}
	}
}

type matchQ struct {
	field   string
	typ     fieldType
	query   string
	terms_  []string
	and     bool
	phrase  bool
	present bool // the field is mapped
}

func (q *matchQ) eval(d *doc, st *stats) (bool, float64) {
	if !q.present {
		return false, 0
	}
	if q.typ != typeText {
		v, ok := d.values[q.field]
		if !ok {
			return false, 0
		}
		eq := false
		switch x := v.(type) {
		case string:
			eq = x == q.query
		case int64:
			eq = strconv.FormatInt(x, 10) == q.query
		case bool:
			eq = strconv.FormatBool(x) == q.query
		}
		if eq {
			return true, 1
		}
		return false, 0
	}
	toks := d.tokens[q.field]
	if len(q.terms_) == 0 {
		return false, 0 // zero_terms_query: none
	}
	dl := float64(len(toks))
	if q.phrase {
		n := 0
		for i := 0; i+len(q.terms_) <= len(toks); i++ {
			all := true
			for j, t := range q.terms_ {
				if toks[i+j].term != t {
					all = false
					break
				}
			}
			if all {
				n++
			}
		}
		if n == 0 {
			return false, 0
		}
		score := 0.0
		for _, t := range q.terms_ {
			score += st.bm25(q.field, t, float64(n), dl)
		}
		return true, score
	}
	tf := map[string]float64{}
	for _, t := range toks {
		tf[t.term]++
	}
	matched, score := 0, 0.0
	for _, t := range uniq(q.terms_) {
		if f := tf[t]; f > 0 {
			matched++
			score += st.bm25(q.field, t, f, dl)
		}
	}
	if matched == 0 || (q.and && matched < len(uniq(q.terms_))) {
		return false, 0
	}
	return true, score
}

func uniq(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func (q *matchQ) terms(field string, add func(string)) {
	if field == q.field {
		for _, t := range q.terms_ {
			add(t)
		}
	}
}

// termQ is term and terms: a document matches if its field equals any of
// the values, compared as the field's type.
type termQ struct {
	field  string
	typ    fieldType
	values []any // normalized to the field's type
}

func (q *termQ) eval(d *doc, _ *stats) (bool, float64) {
	if q.typ == typeText {
		for _, t := range d.tokens[q.field] {
			for _, v := range q.values {
				if t.term == v {
					return true, 1
				}
			}
		}
		return false, 0
	}
	v, ok := d.values[q.field]
	if !ok {
		return false, 0
	}
	for _, want := range q.values {
		if v == want {
			return true, 1
		}
	}
	return false, 0
}

func (q *termQ) terms(field string, add func(string)) {
	if q.typ == typeText && field == q.field {
		for _, v := range q.values {
			add(v.(string))
		}
	}
}

type rangeQ struct {
	field            string
	gt, gte, lt, lte *int64
	present          bool
}

func (q *rangeQ) eval(d *doc, _ *stats) (bool, float64) {
	v, ok := d.values[q.field].(int64)
	if !ok || !q.present {
		return false, 0
	}
	if (q.gt != nil && v <= *q.gt) || (q.gte != nil && v < *q.gte) || (q.lt != nil && v >= *q.lt) || (q.lte != nil && v > *q.lte) {
		return false, 0
	}
	return true, 1
}

func (q *rangeQ) terms(string, func(string)) {}

type constQ bool

func (q constQ) eval(*doc, *stats) (bool, float64) { return bool(q), 1 }
func (q constQ) terms(string, func(string))        {}

// parseQuery parses a query object against the mapping of the searched
// indices.
func parseQuery(v any, fields map[string]fieldType) (node, *esError) {
	obj, ok := v.(map[string]any)
	if !ok || len(obj) != 1 {
		return nil, parseError("query malformed, must start with start_object and hold exactly one query")
	}
	for kind, body := range obj {
		switch kind {
		case "bool":
			return parseBool(body, fields)
		case "match", "match_phrase":
			return parseMatch(kind, body, fields)
		case "term", "terms":
			return parseTerm(kind, body, fields)
		case "range":
			return parseRange(body, fields)
		case "match_all":
			return constQ(true), nil
		case "match_none":
			return constQ(false), nil
		default:
			return nil, parseError("unknown query [%s]", kind)
		}
	}
	return nil, nil
}

func parseBool(body any, fields map[string]fieldType) (node, *esError) {
	obj, ok := body.(map[string]any)
	if !ok {
		return nil, parseError("[bool] query malformed, no start_object after query name")
	}
	q := &boolQ{}
	for k, v := range obj {
		var list []any
		switch x := v.(type) {
		case []any:
			list = x
		case map[string]any:
			list = []any{x}
		default:
			if k == "boost" || k == "minimum_should_match" {
				return nil, badRequest("esfake: [bool] %s is not modeled", k)
			}
			return nil, parseError("[bool] query does not support [%s]", k)
		}
		var nodes []node
		for _, c := range list {
			n, e := parseQuery(c, fields)
			if e != nil {
				return nil, e
			}
			nodes = append(nodes, n)
		}
		switch k {
		case "must":
			q.must = nodes
		case "filter":
			q.filter = nodes
		case "should":
			q.should = nodes
		case "must_not":
			q.mustNot = nodes
		default:
			return nil, parseError("[bool] query does not support [%s]", k)
		}
	}
	return q, nil
}

func singleField(kind string, body any) (string, any, *esError) {
	obj, ok := body.(map[string]any)
	if !ok || len(obj) != 1 {
		return "", nil, parseError("[%s] query doesn't support multiple fields, found [%d]", kind, len(obj))
	}
	for f, v := range obj {
		return f, v, nil
	}
	return "", nil, nil
}

func parseMatch(kind string, body any, fields map[string]fieldType) (node, *esError) {
	field, v, e := singleField(kind, body)
	if e != nil {
		return nil, e
	}
	q := &matchQ{field: field, phrase: kind == "match_phrase"}
	q.typ, q.present = fields[field]
	switch x := v.(type) {
	case string:
		q.query = x
	case map[string]any:
		for k, val := range x {
			switch {
			case k == "query":
				s, ok := val.(string)
				if !ok {
					return nil, parseError("[%s] query must be a string", kind)
				}
				q.query = s
			case k == "operator" && kind == "match":
				op, _ := val.(string)
				switch strings.ToLower(op) {
				case "and":
					q.and = true
				case "or":
				default:
					return nil, badRequest("No enum constant org.elasticsearch.index.query.Operator.%s", strings.ToUpper(op))
				}
			default:
				return nil, parseError("[%s] query does not support [%s]", kind, k)
			}
		}
	default:
		return nil, parseError("[%s] unknown token after [%s]", kind, field)
	}
	for _, t := range analyze(q.query) {
		q.terms_ = append(q.terms_, t.term)
	}
	return q, nil
}

func normalize(typ fieldType, v any) (any, bool) {
	switch typ {
	case typeKeyword:
		switch x := v.(type) {
		case string:
			return x, true
		case json.Number:
			return x.String(), true
		case bool:
			return strconv.FormatBool(x), true
		}
	case typeText:
		s, ok := v.(string)
		return s, ok
	case typeLong:
		n, err := toInt(v)
		return n, err == nil
	case typeDate:
		ms, err := parseDate(v)
		return ms, err == nil
	case typeBoolean:
		switch x := v.(type) {
		case bool:
			return x, true
		case string:
			return x == "true", x == "true" || x == "false"
		}
	}
	return nil, false
}

func parseTerm(kind string, body any, fields map[string]fieldType) (node, *esError) {
	field, v, e := singleField(kind, body)
	if e != nil {
		return nil, e
	}
	typ, present := fields[field]
	var raw []any
	if kind == "terms" {
		list, ok := v.([]any)
		if !ok {
			return nil, parseError("[terms] query does not support [%s]", field)
		}
		raw = list
	} else {
		if obj, ok := v.(map[string]any); ok {
			for k := range obj {
				if k != "value" {
					return nil, parseError("[term] query does not support [%s]", k)
				}
			}
			v = obj["value"]
		}
		raw = []any{v}
	}
	q := &termQ{field: field, typ: typ}
	if !present {
		return constQ(false), nil
	}
	for _, r := range raw {
		n, ok := normalize(typ, r)
		if !ok {
			return nil, errorf(http.StatusBadRequest, "query_shard_exception", "failed to create query: value [%v] does not fit field [%s] of type [%s]", r, field, typ)
		}
		q.values = append(q.values, n)
	}
	return q, nil
}

func parseRange(body any, fields map[string]fieldType) (node, *esError) {
	field, v, e := singleField("range", body)
	if e != nil {
		return nil, e
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, parseError("[range] query malformed, no start_object after field name")
	}
	typ, present := fields[field]
	q := &rangeQ{field: field, present: present}
	if present && typ != typeDate && typ != typeLong {
		return nil, badRequest("esfake: range on a %s field is not modeled", typ)
	}
	for k, val := range obj {
		var dst **int64
		switch k {
		case "gt":
			dst = &q.gt
		case "gte":
			dst = &q.gte
		case "lt":
			dst = &q.lt
		case "lte":
			dst = &q.lte
		case "format":
			f, _ := val.(string)
			if f != "strict_date_optional_time" && f != "epoch_millis" && f != "strict_date_optional_time||epoch_millis" {
				return nil, badRequest("esfake: date format [%v] is not modeled", val)
			}
			continue
		default:
			return nil, parseError("[range] query does not support [%s]", k)
		}
		n, ok := normalize(typ, val)
		if !present {
			continue
		}
		if !ok {
			return nil, errorf(http.StatusBadRequest, "parse_exception", "failed to parse date field [%v] with format [strict_date_optional_time||epoch_millis]", val)
		}
		x := n.(int64)
		*dst = &x
	}
	return q, nil
}

type sortKey struct {
	field string // "_score" or a field
	desc  bool
	typ   fieldType
}

// shardDoc is the tiebreaker of searches with a point in time: a
// document's place in its shard, here its seq_no, unique in the server.
const shardDoc = "_shard_doc"

func parseSort(v any, fields map[string]fieldType, withPIT bool) ([]sortKey, *esError) {
	var list []any
	switch x := v.(type) {
	case []any:
		list = x
	default:
		list = []any{x}
	}
	var out []sortKey
	for _, el := range list {
		var k sortKey
		switch x := el.(type) {
		case string:
			k = sortKey{field: x, desc: x == "_score"}
		case map[string]any:
			if len(x) != 1 {
				return nil, parseError("[sort] an element must have one field")
			}
			for f, spec := range x {
				k.field = f
				order := ""
				switch sp := spec.(type) {
				case string:
					order = sp
				case map[string]any:
					for sk, sv := range sp {
						if sk != "order" {
							return nil, badRequest("esfake: sort option [%s] is not modeled", sk)
						}
						order, _ = sv.(string)
					}
				}
				switch order {
				case "desc":
					k.desc = true
				case "asc":
				case "":
					k.desc = f == "_score"
				default:
					return nil, badRequest("Unknown SortOrder [%s]", order)
				}
			}
		default:
			return nil, parseError("[sort] malformed")
		}
		switch k.field {
		case "_score":
		case shardDoc:
			if !withPIT {
				return nil, badRequest("[_shard_doc] sort field cannot be used without [point in time]")
			}
			k.typ = typeLong
		case "_id":
			return nil, badRequest("Fielddata access on the _id field is disallowed, you can re-enable it by updating the dynamic cluster setting: indices.id_field_data.enabled")
		default:
			typ, present := fields[k.field]
			if !present {
				return nil, errorf(http.StatusBadRequest, "query_shard_exception", "No mapping found for [%s] in order to sort on", k.field)
			}
			if typ == typeText {
				return nil, badRequest("Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on [%s] in order to load field data by uninverting the inverted index. Note that this can use significant memory.", k.field)
			}
			k.typ = typ
		}
		out = append(out, k)
	}
	return out, nil
}

type hitDoc struct {
	idx   *index
	d     *doc
	score float64 // rounded to float32
	vals  []any   // sort values: float64 score, int64, string, bool; nil if missing
}

// compareVals orders a and b by one sort key; a missing value sorts last
// in both orders.
func compareVals(k sortKey, a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	c := 0
	switch x := a.(type) {
	case float64:
		c = cmp.Compare(x, b.(float64))
	case int64:
		c = cmp.Compare(x, b.(int64))
	case string:
		c = strings.Compare(x, b.(string))
	case bool:
		c = cmp.Compare(boolInt(x), boolInt(b.(bool)))
	}
	if k.desc {
		c = -c
	}
	return c
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sortValue(k sortKey, h *hitDoc) any {
	switch k.field {
	case "_score":
		return h.score
	case shardDoc:
		return h.d.seqNo
	}
	return h.d.values[k.field]
}

// parseAfter converts search_after values to the types of the sort keys.
func parseAfter(v any, keys []sortKey) ([]any, *esError) {
	list, ok := v.([]any)
	if !ok {
		return nil, parseError("[search_after] must be an array")
	}
	if len(keys) == 0 {
		return nil, badRequest("Sort must contain at least one field.")
	}
	if len(list) != len(keys) {
		return nil, badRequest("search_after has %d value(s) but sort has %d.", len(list), len(keys))
	}
	out := make([]any, len(list))
	for i, k := range keys {
		var good bool
		switch {
		case k.field == "_score":
			if n, isNum := list[i].(json.Number); isNum {
				f, err := strconv.ParseFloat(string(n), 32)
				out[i], good = f, err == nil
			}
		case k.typ == typeKeyword:
			out[i], good = list[i].(string)
		default:
			out[i], good = normalize(k.typ, list[i])
		}
		if !good {
			return nil, badRequest("Failed to parse search_after value [%v] for field [%s]", list[i], k.field)
		}
	}
	return out, nil
}

type highlightSpec struct {
	pre, post string
	html      bool
	fields    map[string]fragmentSpec
}

type fragmentSpec struct{ fragments, size, noMatch int }

func parseHighlight(v any) (*highlightSpec, *esError) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, parseError("[highlight] must be an object")
	}
	h := &highlightSpec{pre: "<em>", post: "</em>", fields: map[string]fragmentSpec{}}
	def := fragmentSpec{fragments: 5, size: 100}
	tag := func(val any) (string, bool) {
		l, ok := val.([]any)
		if !ok || len(l) != 1 {
			return "", false
		}
		s, ok := l[0].(string)
		return s, ok
	}
	var fieldsRaw map[string]any
	for k, val := range obj {
		switch k {
		case "pre_tags":
			if h.pre, ok = tag(val); !ok {
				return nil, badRequest("esfake: pre_tags must hold one tag")
			}
		case "post_tags":
			if h.post, ok = tag(val); !ok {
				return nil, badRequest("esfake: post_tags must hold one tag")
			}
		case "encoder":
			switch val {
			case "html":
				h.html = true
			case "default":
			default:
				return nil, badRequest("Unknown encoder [%v]", val)
			}
		case "fields":
			if fieldsRaw, ok = val.(map[string]any); !ok {
				return nil, badRequest("esfake: highlight fields as an array are not modeled")
			}
		case "type":
			if val != "unified" {
				return nil, badRequest("esfake: highlighter type [%v] is not modeled", val)
			}
		default:
			return nil, parseError("[highlight] unknown field [%s]", k)
		}
	}
	for name, spec := range fieldsRaw {
		fs := def
		sp, _ := spec.(map[string]any)
		for k, val := range sp {
			n, err := toInt(val)
			if err != nil || n < 0 {
				return nil, parseError("[highlight] [%s] must be a non-negative integer", k)
			}
			switch k {
			case "number_of_fragments":
				fs.fragments = int(n)
			case "fragment_size":
				fs.size = int(n)
			case "no_match_size":
				fs.noMatch = int(n)
			default:
				return nil, parseError("[highlight] field option [%s] is not modeled", k)
			}
		}
		h.fields[name] = fs
	}
	return h, nil
}

// fragment highlights text: marked tokens are those in terms.
func (h *highlightSpec) fragment(text string, toks []token, terms map[string]bool, fs fragmentSpec) (string, bool) {
	enc := func(s string) string {
		if h.html {
			return html.EscapeString(s)
		}
		return s
	}
	first := -1
	for i, t := range toks {
		if terms[t.term] {
			first = i
			break
		}
	}
	if first < 0 {
		if fs.noMatch == 0 || text == "" {
			return "", false
		}
		end := len(text)
		if end > fs.noMatch {
			end = fs.noMatch
			for end > 0 && !isBoundary(text, end) {
				end--
			}
		}
		return enc(strings.TrimSpace(text[:end])), true
	}
	start, end := 0, len(text)
	if fs.fragments > 0 && fs.size > 0 && len(text) > fs.size {
		m := toks[first]
		start = m.start
		for i := first; i >= 0 && m.start-toks[i].start <= fs.size/2; i-- {
			start = toks[i].start
		}
		end = m.end
		for i := first; i < len(toks) && toks[i].end-start <= fs.size; i++ {
			end = toks[i].end
		}
	}
	var b strings.Builder
	pos := start
	for _, t := range toks {
		if t.start < start || t.end > end || !terms[t.term] {
			continue
		}
		b.WriteString(enc(text[pos:t.start]))
		b.WriteString(h.pre)
		b.WriteString(enc(text[t.start:t.end]))
		b.WriteString(h.post)
		pos = t.end
	}
	b.WriteString(enc(text[pos:end]))
	return b.String(), true
}

func isBoundary(s string, i int) bool { return i == len(s) || s[i] == ' ' }

func (s *Server) search(expr string, body []byte, params url.Values) (int, any) {
	start := time.Now()
	for k := range params {
		switch k {
		case "routing", "pretty", "human", "error_trace", "filter_path", "timeout":
		default:
			return fail(badRequest("request [/%s/_search] contains unrecognized parameter: [%s]", expr, k))
		}
	}
	req, e := decode(body)
	if e != nil {
		return fail(e)
	}
	// A search reads the indices of its path as of their last refresh,
	// or, with a pit, the indices of the point in time as they were when
	// it was opened; the path must then name none.
	var (
		views []view
		pitID string
	)
	if v, has := req["pit"]; has {
		if expr != "" {
			return fail(errorf(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: [indices] cannot be used with point in time. Do not specify any index with point in time.;"))
		}
		if params.Has("routing") {
			return fail(errorf(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: [routing] cannot be used with point in time. Do not specify any routing with point in time.;"))
		}
		var p *pit
		if pitID, p, e = s.pitOf(v); e != nil {
			return fail(e)
		}
		views = p.views
	} else {
		if expr == "" {
			return fail(badRequest("esfake: a search of every index (/_search without a point in time) is not modeled"))
		}
		idxs, e := s.resolve(expr)
		if e != nil {
			return fail(e)
		}
		for _, idx := range idxs {
			views = append(views, view{idx: idx, docs: idx.visible})
		}
	}
	fields := map[string]fieldType{}
	for _, v := range views {
		for f, t := range v.idx.mapping.fields {
			fields[f] = t
		}
	}
	var (
		q           node = constQ(true)
		keys        []sortKey
		after       []any
		size, from  = int64(10), int64(0)
		srcIncl     []string
		srcAll      = true
		hl          *highlightSpec
		trackTotal  = true
		trackScores bool
		version     bool
	)
	for k, v := range req {
		switch k {
		case "query":
			if q, e = parseQuery(v, fields); e != nil {
				return fail(e)
			}
		case "sort":
			if keys, e = parseSort(v, fields, pitID != ""); e != nil {
				return fail(e)
			}
		case "version":
			b, isBool := v.(bool)
			if !isBool {
				return fail(parseError("[version] must be a boolean"))
			}
			version = b
		case "pit":
		case "size", "from":
			n, err := toInt(v)
			if err != nil || n < 0 {
				return fail(badRequest("[%s] parameter cannot be negative or malformed", k))
			}
			if k == "size" {
				size = n
			} else {
				from = n
			}
		case "_source":
			switch x := v.(type) {
			case bool:
				srcAll = x
			case string:
				srcAll, srcIncl = false, []string{x}
			case []any:
				srcAll = false
				for _, f := range x {
					fs, _ := f.(string)
					srcIncl = append(srcIncl, fs)
				}
			default:
				return fail(badRequest("esfake: _source as an object is not modeled"))
			}
		case "highlight":
			if hl, e = parseHighlight(v); e != nil {
				return fail(e)
			}
		case "track_total_hits":
			b, isBool := v.(bool)
			if !isBool {
				return fail(badRequest("esfake: track_total_hits as a number is not modeled"))
			}
			trackTotal = b
		case "track_scores":
			trackScores, _ = v.(bool)
		case "search_after":
		default:
			return fail(parseError("Unknown key for a START_OBJECT in [%s].", k))
		}
	}
	// Every search with a point in time sorts last by the implicit
	// tiebreaker _shard_doc (ascending), unless it sorts by it already.
	if pitID != "" && !slices.ContainsFunc(keys, func(k sortKey) bool { return k.field == shardDoc }) {
		if len(keys) == 0 {
			keys = []sortKey{{field: "_score", desc: true}}
		}
		keys = append(keys, sortKey{field: shardDoc, typ: typeLong})
	}
	if v, has := req["search_after"]; has {
		if after, e = parseAfter(v, keys); e != nil {
			return fail(e)
		}
		if from > 0 {
			return fail(badRequest("`from` parameter must be set to 0 when `search_after` is used."))
		}
	}
	if from+size > 10000 {
		return fail(badRequest("Result window is too large, from + size must be less than or equal to: [10000] but was [%d].", from+size))
	}
	var visible []*doc
	var owners []*index
	for _, v := range views {
		ids := make([]string, 0, len(v.docs))
		for id := range v.docs {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			visible = append(visible, v.docs[id])
			owners = append(owners, v.idx)
		}
	}
	st := newStats(visible)
	scoring := len(keys) == 0 || trackScores || slices.ContainsFunc(keys, func(k sortKey) bool { return k.field == "_score" })
	var hits []*hitDoc
	for i, d := range visible {
		m, score := q.eval(d, st)
		if !m {
			continue
		}
		h := &hitDoc{idx: owners[i], d: d, score: float64(float32(score))}
		for _, k := range keys {
			h.vals = append(h.vals, sortValue(k, h))
		}
		hits = append(hits, h)
	}
	order := keys
	if len(order) == 0 {
		order = []sortKey{{field: "_score", desc: true}}
		for _, h := range hits {
			h.vals = []any{h.score}
		}
	}
	slices.SortStableFunc(hits, func(a, b *hitDoc) int {
		for i, k := range order {
			if c := compareVals(k, a.vals[i], b.vals[i]); c != 0 {
				return c
			}
		}
		return cmp.Compare(a.d.seqNo, b.d.seqNo)
	})
	total := len(hits)
	if after != nil {
		kept := hits[:0]
		for _, h := range hits {
			c := 0
			for i, k := range keys {
				if c = compareVals(k, h.vals[i], after[i]); c != 0 {
					break
				}
			}
			if c > 0 {
				kept = append(kept, h)
			}
		}
		hits = kept
	}
	if int64(len(hits)) > from {
		hits = hits[from:]
	} else {
		hits = nil
	}
	if int64(len(hits)) > size {
		hits = hits[:size]
	}
	var maxScore any
	out := make([]any, 0, len(hits))
	for _, h := range hits {
		hit := map[string]any{"_index": h.idx.name, "_id": h.d.id, "_score": nil}
		if scoring {
			hit["_score"] = jsonScore(h.score)
			if maxScore == nil || h.score > maxScore.(float64) {
				maxScore = h.score
			}
		}
		if version {
			hit["_version"] = h.d.version
		}
		if h.d.routing != "" {
			hit["_routing"] = h.d.routing
		}
		if src, err := filterSource(h.d.source, srcAll, srcIncl); err == nil && src != nil {
			hit["_source"] = src
		}
		if len(keys) > 0 {
			vals := make([]any, len(keys))
			for i, k := range keys {
				switch x := h.vals[i].(type) {
				case float64:
					vals[i] = jsonScore(x)
				case bool:
					vals[i] = boolInt(x)
				default:
					vals[i] = x
				}
				_ = k
			}
			hit["sort"] = vals
		}
		if hl != nil {
			frags := map[string]any{}
			for field, fs := range hl.fields {
				terms := map[string]bool{}
				q.terms(field, func(t string) { terms[t] = true })
				text, has := h.d.text[field]
				if !has {
					continue
				}
				if f, ok := hl.fragment(text, h.d.tokens[field], terms, fs); ok {
					frags[field] = []string{f}
				}
			}
			if len(frags) > 0 {
				hit["highlight"] = frags
			}
		}
		out = append(out, hit)
	}
	hitsObj := map[string]any{"max_score": nil, "hits": out}
	if maxScore != nil {
		hitsObj["max_score"] = jsonScore(maxScore.(float64))
	}
	if trackTotal {
		hitsObj["total"] = map[string]any{"value": total, "relation": "eq"}
	}
	n := len(views)
	res := map[string]any{
		"took": took(start), "timed_out": false,
		"_shards": map[string]any{"total": n, "successful": n, "skipped": 0, "failed": 0},
		"hits":    hitsObj,
	}
	if pitID != "" {
		res["pit_id"] = pitID
	}
	return ok(res)
}

// jsonScore writes a score as Elasticsearch does: a float32.
func jsonScore(f float64) json.Number {
	return json.Number(strconv.FormatFloat(f, 'g', -1, 32))
}

func filterSource(src json.RawMessage, all bool, incl []string) (map[string]any, error) {
	if !all && len(incl) == 0 {
		return nil, nil
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(src)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if all {
		return m, nil
	}
	out := map[string]any{}
	for _, f := range incl {
		if v, ok := m[f]; ok {
			out[f] = v
		}
	}
	return out, nil
}
