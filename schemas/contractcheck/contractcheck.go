// Package contractcheck checks what crosses Parley's client edge against
// its published API documents: HTTP responses against openapi.yaml, and
// WebSocket frames, in either direction, against the message schemas of
// asyncapi.yaml's /v1/ws channel. Both documents are the embedded ones of
// package schemas. Format assertions are on (a date-time is checked, not
// just annotated), and an event frame's data is also checked against the
// JSON Schema of its event type, as the AsyncAPI document promises.
//
// Tests use it to prove that what the server really sends is what the
// documents say; a Checker is immutable once built and safe for concurrent
// use by multiple goroutines.
package contractcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	yaml "go.yaml.in/yaml/v3"

	"github.com/parley-chat/parley/schemas"
	"github.com/parley-chat/parley/schemas/schemacheck"
)

var (
	// ErrUndocumented is returned for a response or frame the documents
	// do not describe at all: an unknown operation, status, content type
	// or frame type, or a frame sent in the wrong direction.
	ErrUndocumented = errors.New("not in the API document")
	// ErrMismatch is returned for a response or frame whose body breaks
	// the schema the document gives it.
	ErrMismatch = errors.New("does not match the API document")
)

// Checker holds the compiled schemas of every documented HTTP response
// and WebSocket frame.
type Checker struct {
	operations []operation
	// undocumented is the document's catch-all error response, which
	// answers requests for paths or methods the API does not have.
	undocumented response
	client       map[string]*jsonschema.Schema // frame type -> payload schema
	server       map[string]*jsonschema.Schema
	records      *schemacheck.Validator
}

// operation is one method of one OpenAPI path.
type operation struct {
	method   string   // upper case
	template string   // the OpenAPI path, e.g. /v1/conversations/{id}
	segments []string // template split at "/"
	id       string   // operationId
	// responses by status key: "200", "4XX", "default".
	responses map[string]response
}

// response is one documented response: its schema per media type.
type response struct {
	content []mediaType
}

type mediaType struct {
	name   string // the document's key, e.g. text/plain; version=0.0.4
	base   string // the media type without parameters
	params map[string]string
	schema *jsonschema.Schema // nil when the document gives none
	ptr    string             // where the schema is, for messages
}

// New compiles every response schema of openapi.yaml and every frame
// schema of asyncapi.yaml's WebSocket channel.
func New() (*Checker, error) {
	records, err := schemacheck.New()
	if err != nil {
		return nil, err
	}
	c := &Checker{records: records}
	if err := c.loadOpenAPI(); err != nil {
		return nil, fmt.Errorf("contractcheck: openapi.yaml: %w", err)
	}
	if err := c.loadAsyncAPI(); err != nil {
		return nil, fmt.Errorf("contractcheck: asyncapi.yaml: %w", err)
	}
	return c, nil
}

// ---------------------------------------------------------------------------
// HTTP

// Response checks one HTTP response against openapi.yaml. path is the
// request's path, concrete (/v1/conversations/g_1/history?limit=5, the
// query ignored) or the template itself (/v1/conversations/{id}/history);
// contentType is the response's Content-Type header. The response must be
// documented for the operation under its status (or a range like 4XX, or
// default), with that media type, and its body must match the schema. A
// path or method the API does not have may only be answered with the
// document's general error response. A problem (application/problem+json)
// must also carry the response's status and the type its code names, as
// the document says.
func (c *Checker) Response(method, path string, status int, contentType string, body []byte) error {
	method = strings.ToUpper(method)
	op, ok := c.operation(method, path)
	var r response
	where := method + " " + path
	if ok {
		where = fmt.Sprintf("%s %s (%s)", method, op.template, op.id)
		r, ok = op.response(status)
		if !ok {
			return fmt.Errorf("%s answered %d: %w: the operation documents no %d response and no default", where, status, ErrUndocumented, status)
		}
	} else {
		if status < 400 {
			return fmt.Errorf("%s answered %d: %w: openapi.yaml has no such operation", where, status, ErrUndocumented)
		}
		where += " (not an operation of the API)"
		r = c.undocumented
	}
	where = fmt.Sprintf("%s answered %d", where, status)
	if len(r.content) == 0 {
		if len(body) != 0 {
			return fmt.Errorf("%s with a %d-byte body: %w: the response has no content", where, len(body), ErrUndocumented)
		}
		return nil
	}
	mt, err := r.mediaType(contentType)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	where += " " + mt.name
	if mt.schema == nil {
		return nil
	}
	var inst any = string(body)
	if isJSON(mt.base) {
		if inst, err = jsonschema.UnmarshalJSON(bytes.NewReader(body)); err != nil {
			return fmt.Errorf("%s: %w: the body is not one JSON value: %v", where, ErrMismatch, err)
		}
	}
	if err := mt.schema.Validate(inst); err != nil {
		return fmt.Errorf("%s: %w (%s): %s", where, ErrMismatch, mt.ptr, plain(err))
	}
	if mt.base == "application/problem+json" {
		if err := checkProblem(status, inst); err != nil {
			return fmt.Errorf("%s: %w: %v", where, ErrMismatch, err)
		}
	}
	return nil
}

// checkProblem checks what openapi.yaml says of a problem beyond its
// schema: status is the response's status, and type is
// urn:parley:problem:<code>.
func checkProblem(status int, inst any) error {
	p, _ := inst.(map[string]any)
	if s, ok := p["status"].(json.Number); ok && s.String() != strconv.Itoa(status) {
		return fmt.Errorf("the problem's status is %s, not the response's %d", s, status)
	}
	code, _ := p["code"].(string)
	if typ, ok := p["type"].(string); ok && typ != "urn:parley:problem:"+code {
		return fmt.Errorf("the problem's type %q is not urn:parley:problem:%s, as its code says", typ, code)
	}
	return nil
}

// operation finds the operation of method whose path template matches
// path; of several, the one with the most literal segments.
func (c *Checker) operation(method, path string) (operation, bool) {
	path, _, _ = strings.Cut(path, "?")
	segs := strings.Split(path, "/")
	best, bestLiterals := -1, -1
	for i, op := range c.operations {
		if op.method != method || len(op.segments) != len(segs) {
			continue
		}
		literals, match := 0, true
		for j, t := range op.segments {
			if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") {
				match = match && segs[j] != ""
				continue
			}
			s, err := url.PathUnescape(segs[j])
			match = match && err == nil && s == t
			literals++
		}
		if match && literals > bestLiterals {
			best, bestLiterals = i, literals
		}
	}
	if best < 0 {
		return operation{}, false
	}
	return c.operations[best], true
}

// response finds the documented response for status: the exact code,
// then its range (4XX), then default.
func (op operation) response(status int) (response, bool) {
	code := strconv.Itoa(status)
	for _, key := range []string{code, code[:1] + "XX", "default"} {
		if r, ok := op.responses[key]; ok {
			return r, true
		}
	}
	return response{}, false
}

// mediaType finds the documented media type of contentType: the same
// type, with every parameter the document names (a charset the document
// does not name is allowed).
func (r response) mediaType(contentType string) (mediaType, error) {
	var names []string
	for _, mt := range r.content {
		names = append(names, mt.name)
	}
	base, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return mediaType{}, fmt.Errorf("%w: Content-Type %q is not a media type (documented: %s)", ErrUndocumented, contentType, strings.Join(names, ", "))
	}
	for _, mt := range r.content {
		if mt.base != base {
			continue
		}
		ok := true
		for k, v := range mt.params {
			ok = ok && params[k] == v
		}
		if ok {
			return mt, nil
		}
	}
	return mediaType{}, fmt.Errorf("%w: Content-Type %q is not documented (documented: %s)", ErrUndocumented, contentType, strings.Join(names, ", "))
}

func isJSON(mediaType string) bool {
	return mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}

func (c *Checker) loadOpenAPI() error {
	doc, comp, err := loadDocument(schemas.OpenAPIDocument(), schemas.OpenAPIURL, jsonschema.Draft2020)
	if err != nil {
		return err
	}
	paths, _ := doc["paths"].(map[string]any)
	if len(paths) == 0 {
		return errors.New("no paths")
	}
	for _, template := range sortedKeys(paths) {
		item, _ := paths[template].(map[string]any)
		for _, method := range sortedKeys(item) {
			o, ok := item[method].(map[string]any)
			if !ok || !slices.Contains([]string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}, method) {
				continue
			}
			op := operation{
				method: strings.ToUpper(method), template: template, segments: strings.Split(template, "/"),
				responses: map[string]response{},
			}
			op.id, _ = o["operationId"].(string)
			responses, _ := o["responses"].(map[string]any)
			for _, status := range sortedKeys(responses) {
				ptr := "/paths/" + EscapePointer(template) + "/" + method + "/responses/" + EscapePointer(status)
				r, err := compileResponse(doc, comp, ptr)
				if err != nil {
					return err
				}
				op.responses[status] = r
			}
			c.operations = append(c.operations, op)
		}
	}
	c.undocumented, err = compileResponse(doc, comp, "/components/responses/Error")
	return err
}

// compileResponse compiles the schemas of the response at ptr (following
// a $ref to a shared response).
func compileResponse(doc map[string]any, comp *compiler, ptr string) (response, error) {
	ptr, m, err := deref(doc, ptr)
	if err != nil {
		return response{}, err
	}
	var r response
	content, _ := m["content"].(map[string]any)
	for _, name := range sortedKeys(content) {
		base, params, err := mime.ParseMediaType(name)
		if err != nil {
			return response{}, fmt.Errorf("%s: media type %q: %w", ptr, name, err)
		}
		mt := mediaType{name: name, base: base, params: params}
		if _, ok := content[name].(map[string]any)["schema"]; ok {
			frag := "#" + ptr + "/content/" + EscapePointer(name) + "/schema"
			if mt.schema, err = comp.compile(frag); err != nil {
				return response{}, err
			}
			mt.ptr = "openapi.yaml" + frag
		}
		r.content = append(r.content, mt)
	}
	return r, nil
}

// ---------------------------------------------------------------------------
// WebSocket

// ClientFrame checks a frame a client sends (b, one WebSocket text
// message) against the AsyncAPI message of its type: one of the frames
// the gateway receives.
func (c *Checker) ClientFrame(b []byte) error {
	return c.frame("client", c.client, b)
}

// ServerFrame checks a frame the server sends against the AsyncAPI message
// of its type: one of the frames the gateway sends or replies with. An
// event frame's data must also be valid against the JSON Schema of its
// event_type.
func (c *Checker) ServerFrame(b []byte) error {
	if err := c.frame("server", c.server, b); err != nil {
		return err
	}
	var ev struct {
		Type      string          `json:"type"`
		EventType string          `json:"event_type"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &ev); err != nil || ev.Type != "event" {
		return nil
	}
	if err := c.records.Validate(ev.EventType, ev.Data); err != nil {
		return fmt.Errorf("server frame event (%s): %w: data is not a valid %s: %s", ev.EventType, ErrMismatch, ev.EventType, plain(err))
	}
	return nil
}

func (c *Checker) frame(from string, frames map[string]*jsonschema.Schema, b []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s frame: %w: not one JSON value: %v", from, ErrMismatch, err)
	}
	obj, ok := inst.(map[string]any)
	if !ok {
		return fmt.Errorf("%s frame: %w: not a JSON object", from, ErrMismatch)
	}
	typ, ok := obj["type"].(string)
	if !ok {
		return fmt.Errorf("%s frame: %w: no string type", from, ErrMismatch)
	}
	s, ok := frames[typ]
	if !ok {
		return fmt.Errorf("%s frame %q: %w: asyncapi.yaml has no %s frame of that type", from, typ, ErrUndocumented, from)
	}
	if err := s.Validate(inst); err != nil {
		return fmt.Errorf("%s frame %s: %w: %s", from, typ, ErrMismatch, plain(err))
	}
	return nil
}

// loadAsyncAPI compiles the payload schema of every message of the
// WebSocket channel, by direction: the messages of the gateway's receive
// operations on the channel are client frames; those of its send
// operations, and the replies of its receive operations, server frames.
func (c *Checker) loadAsyncAPI() error {
	doc, comp, err := loadDocument(schemas.AsyncAPIDocument(), schemas.AsyncAPIURL, jsonschema.Draft7)
	if err != nil {
		return err
	}
	channels, _ := doc["channels"].(map[string]any)
	var ws string
	for _, key := range sortedKeys(channels) {
		if ch, _ := channels[key].(map[string]any); ch["address"] == "/v1/ws" {
			ws = "#/channels/" + EscapePointer(key)
		}
	}
	if ws == "" {
		return errors.New("no channel with address /v1/ws")
	}
	c.client, c.server = map[string]*jsonschema.Schema{}, map[string]*jsonschema.Schema{}
	add := func(frames map[string]*jsonschema.Schema, ref any) error {
		r, _ := ref.(map[string]any)["$ref"].(string)
		ptr, msg, err := deref(doc, strings.TrimPrefix(r, "#"))
		if err != nil {
			return err
		}
		name, _ := msg["name"].(string)
		if name == "" {
			return fmt.Errorf("%s: message without a name", ptr)
		}
		if frames[name] != nil {
			return nil
		}
		s, err := comp.compile("#" + ptr + "/payload")
		if err != nil {
			return err
		}
		frames[name] = s
		return nil
	}
	ops, _ := doc["operations"].(map[string]any)
	for _, name := range sortedKeys(ops) {
		op, _ := ops[name].(map[string]any)
		if ch, _ := op["channel"].(map[string]any); ch["$ref"] != ws {
			continue
		}
		own := c.server
		if op["action"] == "receive" {
			own = c.client
		}
		for _, m := range asSlice(op["messages"]) {
			if err := add(own, m); err != nil {
				return fmt.Errorf("operation %s: %w", name, err)
			}
		}
		reply, _ := op["reply"].(map[string]any)
		for _, m := range asSlice(reply["messages"]) {
			if err := add(c.server, m); err != nil {
				return fmt.Errorf("operation %s: reply: %w", name, err)
			}
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// documents

// compiler compiles schemas at JSON pointers inside one API document.
type compiler struct {
	url string
	c   *jsonschema.Compiler
}

func (c *compiler) compile(fragment string) (*jsonschema.Schema, error) {
	s, err := c.c.Compile(c.url + fragment)
	if err != nil {
		return nil, fmt.Errorf("compiling %s: %w", fragment, err)
	}
	return s, nil
}

// loadDocument parses a YAML API document into JSON values and readies a
// compiler for the schemas inside it, with format assertions on and
// ./json/<ce_type>.json references served from the embedded schemas.
func loadDocument(raw []byte, base string, draft *jsonschema.Draft) (map[string]any, *compiler, error) {
	var y any
	if err := yaml.Unmarshal(raw, &y); err != nil {
		return nil, nil, fmt.Errorf("not YAML: %w", err)
	}
	// Through JSON, so that the values are those of a JSON document
	// (json.Number, map[string]any); a mapping key that is not a string
	// fails here.
	j, err := json.Marshal(y)
	if err != nil {
		return nil, nil, fmt.Errorf("not JSON-compatible: %w", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return nil, nil, err
	}
	doc, ok := inst.(map[string]any)
	if !ok {
		return nil, nil, errors.New("not a mapping")
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(draft)
	c.AssertFormat()
	c.UseLoader(jsonDirLoader{})
	if err := c.AddResource(base, inst); err != nil {
		return nil, nil, err
	}
	return doc, &compiler{url: base, c: c}, nil
}

// jsonDirLoader serves the documents' ./json/<ce_type>.json references
// from the embedded schemas; nothing is fetched.
type jsonDirLoader struct{}

func (jsonDirLoader) Load(u string) (any, error) {
	name, ok := strings.CutPrefix(u, schemas.SchemaBaseURL+"json/")
	if !ok {
		return nil, fmt.Errorf("refusing to load external schema %s", u)
	}
	raw, err := schemas.JSONSchema(strings.TrimSuffix(name, ".json"))
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(raw))
}

// deref returns the mapping at ptr, following local $refs, and where it
// ends up.
func deref(doc map[string]any, ptr string) (string, map[string]any, error) {
	for range 10 {
		v, ok := ResolvePointer(doc, ptr)
		m, isMap := v.(map[string]any)
		if !ok || !isMap {
			return "", nil, fmt.Errorf("#%s: no mapping there", ptr)
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return ptr, m, nil
		}
		if !strings.HasPrefix(ref, "#") {
			return "", nil, fmt.Errorf("#%s: $ref %s is not local", ptr, ref)
		}
		ptr = ref[1:]
	}
	return "", nil, fmt.Errorf("#%s: $ref chain too long", ptr)
}

// ResolvePointer returns the value at JSON Pointer ptr (RFC 6901) in
// doc, a decoded JSON or YAML document, and whether there is one.
func ResolvePointer(doc any, ptr string) (any, bool) {
	cur := doc
	if ptr == "" {
		return cur, true
	}
	for tok := range strings.SplitSeq(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			next, ok := c[tok]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// EscapePointer escapes s as one token of a JSON Pointer.
func EscapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// plain says what a validation error found, one "at <where>: <what>" per
// failed leaf, without the schema URLs.
func plain(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	var leaves []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			leaf := &jsonschema.ValidationError{InstanceLocation: e.InstanceLocation, ErrorKind: e.ErrorKind}
			s := leaf.Error()
			if rest, ok := strings.CutPrefix(s, "at '':"); ok {
				s = "at the top level:" + rest
			}
			if !slices.Contains(leaves, s) {
				leaves = append(leaves, s)
			}
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return strings.Join(leaves, "; ")
}
