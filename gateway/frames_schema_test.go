// Client frames against asyncapi.yaml's frame schemas: every frame type
// with a table of malformed variants, each refused by its schema and
// answered with the rule's code and id, and frames the schemas accept.

package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v4"
)

// frameSchemaNames names the schema of each client frame type in
// asyncapi.yaml's components.
var frameSchemaNames = map[string]string{
	"auth": "AuthFrame", "ping": "PingFrame", "send": "SendFrame", "edit": "EditFrame",
	"delete": "DeleteFrame", "react": "ReactFrame", "unreact": "UnreactFrame", "read": "ReadFrame",
	"resume": "ResumeFrame", "typing": "TypingFrame", "presence_set": "PresenceSetFrame",
	"presence_watch": "PresenceWatchFrame",
}

var (
	frameSchemasOnce   sync.Once
	frameSchemasByType map[string]*jsonschema.Schema
	frameSchemasErr    error
)

// frameSchemas returns a check of a client frame against the schema of
// its type in asyncapi.yaml: nil when the schema accepts it.
func frameSchemas(tb testing.TB) func([]byte) error {
	tb.Helper()
	frameSchemasOnce.Do(func() { frameSchemasByType, frameSchemasErr = compileFrameSchemas() })
	if frameSchemasErr != nil {
		tb.Fatal(frameSchemasErr)
	}
	return func(data []byte) error {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			return err
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return errors.New("not an object")
		}
		typ, _ := obj["type"].(string)
		s, ok := frameSchemasByType[typ]
		if !ok {
			return errors.New("no client frame has this type")
		}
		return s.Validate(v)
	}
}

func compileFrameSchemas() (map[string]*jsonschema.Schema, error) {
	raw, err := os.ReadFile("../schemas/asyncapi.yaml")
	if err != nil {
		return nil, err
	}
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	const url = "https://parley.chat/schemas/asyncapi.yaml"
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	if err := c.AddResource(url, inst); err != nil {
		return nil, err
	}
	out := map[string]*jsonschema.Schema{}
	for typ, name := range frameSchemaNames {
		s, err := c.Compile(url + "#/components/schemas/" + name)
		if err != nil {
			return nil, fmt.Errorf("compiling %s: %w", name, err)
		}
		out[typ] = s
	}
	return out, nil
}

func TestEveryClientFrameHasASchema(t *testing.T) {
	t.Parallel()
	if got, want := slices.Sorted(maps.Keys(frameSchemaNames)), slices.Sorted(maps.Keys(clientFrames)); !slices.Equal(got, want) {
		t.Errorf("frame schemas for %v, client frames %v", got, want)
	}
}

// validFrames are frames of every type that their schemas accept.
var validFrames = map[string][]string{
	"auth": {`{"type":"auth","id":"a1","token":"x.y.z"}`, `{"type":"auth","id":"a1","token":"x.y.z","device_id":"phone-1"}`},
	"ping": {`{"type":"ping","id":"p"}`, `{"type":"ping","id":"` + strings.Repeat("é", 64) + `"}`},
	"send": {`{"type":"send","id":"s","conversation_id":"d_1","command_id":"c-1","body":"hi"}`,
		`{"type":"send","id":"s","conversation_id":"d_1","command_id":"c-1","body":"hi","reply_to":0}`,
		`{"type":"send","id":"s","conversation_id":"d_1","command_id":"c-1","body":"hi","reply_to":17.0}`},
	"edit":    {`{"type":"edit","id":"e","conversation_id":"d_1","command_id":"c-2","seq":1,"body":"x"}`},
	"delete":  {`{"type":"delete","id":"d","conversation_id":"d_1","command_id":"c-3","seq":1e1}`},
	"react":   {`{"type":"react","id":"r","conversation_id":"d_1","command_id":"c-4","seq":2,"emoji":"👍"}`},
	"unreact": {`{"type":"unreact","id":"u","conversation_id":"d_1","command_id":"c-5","seq":2,"emoji":"👍"}`},
	"read": {`{"type":"read","id":"rd","conversation_id":"d_1"}`, `{"type":"read","id":"rd","conversation_id":"d_1","seq":0}`,
		`{"type":"read","id":"rd","conversation_id":"d_1","seq":9007199254740991}`},
	"resume":         {`{"type":"resume","id":"rs","conversations":{}}`, `{"type":"resume","id":"rs","conversations":{"d_1":0,"g_2":40}}`},
	"typing":         {`{"type":"typing","conversation_id":"d_1"}`, `{"type":"typing","id":"t","conversation_id":"d_1"}`},
	"presence_set":   {`{"type":"presence_set","status":"away"}`, `{"type":"presence_set","id":"ps","status":"online"}`},
	"presence_watch": {`{"type":"presence_watch","id":"pw","user_ids":[]}`, `{"type":"presence_watch","id":"pw","user_ids":["bob","carol"]}`},
}

// malformedFrame is a frame its schema refuses and the answer it gets.
type malformedFrame struct {
	name, frame string
	code, id    string // id: what the error frame echoes
}

// malformedFrames are, per frame type, variants its schema refuses that
// decodeFrame refuses too.
func malformedFrames() map[string][]malformedFrame {
	long := strings.Repeat("i", 65)
	m := map[string][]malformedFrame{
		"": {
			{"an array", `[]`, codeBadFrame, ""},
			{"null", `null`, codeBadFrame, ""},
			{"a string", `"send"`, codeBadFrame, ""},
			{"malformed JSON", `{"type":`, codeBadFrame, ""},
			{"nothing", ``, codeBadFrame, ""},
			{"no type", `{"id":"x"}`, codeInvalidRequest, "x"},
			{"no type nor id", `{}`, codeInvalidRequest, ""},
			{"a numeric type", `{"type":5,"id":"x"}`, codeInvalidRequest, "x"},
			{"a null type", `{"type":null,"id":"x"}`, codeInvalidRequest, "x"},
			{"an unknown type", `{"type":"shout","id":"x"}`, codeUnknownType, "x"},
			{"a server frame's type", `{"type":"ack","id":"x"}`, codeUnknownType, "x"},
			{"a numeric id", `{"type":"ping","id":1}`, codeInvalidRequest, ""},
			{"an id over 64 characters", `{"type":"ping","id":"` + long + `"}`, codeInvalidRequest, ""},
			{"an empty id", `{"type":"ping","id":""}`, codeInvalidRequest, ""},
			{"an id that is an object", `{"type":"shout","id":{}}`, codeInvalidRequest, ""},
		},
		"auth": {
			{"no token", `{"type":"auth","id":"a"}`, codeInvalidRequest, "a"},
			{"no id", `{"type":"auth","token":"t"}`, codeInvalidRequest, ""},
			{"a numeric token", `{"type":"auth","id":"a","token":5}`, codeInvalidRequest, "a"},
			{"a device_id that is a list", `{"type":"auth","id":"a","token":"t","device_id":["x"]}`, codeInvalidRequest, "a"},
			{"an unknown field", `{"type":"auth","id":"a","token":"t","user":"bob"}`, codeInvalidRequest, "a"},
		},
		"ping": {
			{"no id", `{"type":"ping"}`, codeInvalidRequest, ""},
			{"an unknown field", `{"type":"ping","id":"p","extra":[1,{"x":null}]}`, codeInvalidRequest, "p"},
		},
		"read": {
			{"a negative seq", `{"type":"read","id":"r","conversation_id":"d_1","seq":-1}`, codeInvalidRequest, "r"},
			{"a fractional seq", `{"type":"read","id":"r","conversation_id":"d_1","seq":1.5}`, codeInvalidRequest, "r"},
			{"a seq in a string", `{"type":"read","id":"r","conversation_id":"d_1","seq":"1"}`, codeInvalidRequest, "r"},
			{"a null seq", `{"type":"read","id":"r","conversation_id":"d_1","seq":null}`, codeInvalidRequest, "r"},
			{"no conversation_id", `{"type":"read","id":"r"}`, codeInvalidRequest, "r"},
			{"no id", `{"type":"read","conversation_id":"d_1"}`, codeInvalidRequest, ""},
			{"a command_id", `{"type":"read","id":"r","conversation_id":"d_1","command_id":"c"}`, codeInvalidRequest, "r"},
		},
		"resume": {
			{"conversations as a list", `{"type":"resume","id":"r","conversations":["d_1"]}`, codeInvalidRequest, "r"},
			{"a negative seq", `{"type":"resume","id":"r","conversations":{"d_1":-1}}`, codeInvalidRequest, "r"},
			{"a fractional seq", `{"type":"resume","id":"r","conversations":{"d_1":0.5}}`, codeInvalidRequest, "r"},
			{"a seq in a string", `{"type":"resume","id":"r","conversations":{"d_1":"3"}}`, codeInvalidRequest, "r"},
			{"no conversations", `{"type":"resume","id":"r"}`, codeInvalidRequest, "r"},
			{"null conversations", `{"type":"resume","id":"r","conversations":null}`, codeInvalidRequest, "r"},
			{"an unknown field", `{"type":"resume","id":"r","conversations":{},"since":1}`, codeInvalidRequest, "r"},
		},
		"typing": {
			{"no conversation_id", `{"type":"typing","id":"t"}`, codeInvalidRequest, "t"},
			{"a numeric conversation_id", `{"type":"typing","conversation_id":7}`, codeInvalidRequest, ""},
			{"an unknown field", `{"type":"typing","id":"t","conversation_id":"d_1","body":"x"}`, codeInvalidRequest, "t"},
		},
		"presence_set": {
			{"no status", `{"type":"presence_set","id":"p"}`, codeInvalidRequest, "p"},
			{"a boolean status", `{"type":"presence_set","id":"p","status":true}`, codeInvalidRequest, "p"},
			{"an unknown field", `{"type":"presence_set","status":"away","device_id":"x"}`, codeInvalidRequest, ""},
		},
		"presence_watch": {
			{"user_ids as a string", `{"type":"presence_watch","id":"w","user_ids":"bob"}`, codeInvalidRequest, "w"},
			{"a number among user_ids", `{"type":"presence_watch","id":"w","user_ids":["bob",7]}`, codeInvalidRequest, "w"},
			{"a null among user_ids", `{"type":"presence_watch","id":"w","user_ids":[null]}`, codeInvalidRequest, "w"},
			{"no user_ids", `{"type":"presence_watch","id":"w"}`, codeInvalidRequest, "w"},
			{"no id", `{"type":"presence_watch","user_ids":["bob"]}`, codeInvalidRequest, ""},
			{"an unknown field", `{"type":"presence_watch","id":"w","user_ids":[],"all":true}`, codeInvalidRequest, "w"},
		},
	}
	// The command frames share their fields' rules.
	commands := map[string]string{
		"send":    `"body":"hi"`,
		"edit":    `"seq":3,"body":"hi"`,
		"delete":  `"seq":3`,
		"react":   `"seq":3,"emoji":"👍"`,
		"unreact": `"seq":3,"emoji":"👍"`,
	}
	for typ, rest := range commands {
		frame := func(fields string) string {
			return `{"type":"` + typ + `","id":"q",` + fields + `}`
		}
		base := `"conversation_id":"d_1","command_id":"c-1",` + rest
		m[typ] = []malformedFrame{
			{"no id", `{"type":"` + typ + `",` + base + `}`, codeInvalidRequest, ""},
			{"no conversation_id", frame(`"command_id":"c-1",` + rest), codeInvalidRequest, "q"},
			{"no command_id", frame(`"conversation_id":"d_1",` + rest), codeInvalidRequest, "q"},
			{"a numeric conversation_id", frame(`"conversation_id":1,"command_id":"c-1",` + rest), codeInvalidRequest, "q"},
			{"a numeric command_id", frame(`"conversation_id":"d_1","command_id":1,` + rest), codeInvalidRequest, "q"},
			{"a null command_id", frame(`"conversation_id":"d_1","command_id":null,` + rest), codeInvalidRequest, "q"},
			{"an unknown field", frame(base + `,"extra":1`), codeInvalidRequest, "q"},
			{"a field in another case", frame(base + `,"Body":"x"`), codeInvalidRequest, "q"},
			{"an id over 64 characters", `{"type":"` + typ + `","id":"` + long + `",` + base + `}`, codeInvalidRequest, ""},
		}
	}
	m["send"] = append(m["send"],
		malformedFrame{"a numeric body", `{"type":"send","id":"q","conversation_id":"d_1","command_id":"c-1","body":42}`, codeInvalidRequest, "q"},
		malformedFrame{"no body", `{"type":"send","id":"q","conversation_id":"d_1","command_id":"c-1"}`, codeInvalidRequest, "q"},
		malformedFrame{"a negative reply_to", `{"type":"send","id":"q","conversation_id":"d_1","command_id":"c-1","body":"x","reply_to":-1}`, codeInvalidRequest, "q"},
		malformedFrame{"a fractional reply_to", `{"type":"send","id":"q","conversation_id":"d_1","command_id":"c-1","body":"x","reply_to":1.5}`, codeInvalidRequest, "q"},
		malformedFrame{"a reply_to in a string", `{"type":"send","id":"q","conversation_id":"d_1","command_id":"c-1","body":"x","reply_to":"1"}`, codeInvalidRequest, "q"},
		malformedFrame{"a seq, which send has not", `{"type":"send","id":"q","conversation_id":"d_1","command_id":"c-1","body":"x","seq":1}`, codeInvalidRequest, "q"},
	)
	for _, typ := range []string{"edit", "delete", "react", "unreact"} {
		frame := func(seq string) string {
			return strings.Replace(`{"type":"`+typ+`","id":"q","conversation_id":"d_1","command_id":"c-1","seq":3`+
				map[string]string{"edit": `,"body":"x"`, "react": `,"emoji":"👍"`, "unreact": `,"emoji":"👍"`}[typ]+`}`, `"seq":3`, seq, 1)
		}
		m[typ] = append(m[typ],
			malformedFrame{"no seq", frame(`"x_":0`), codeInvalidRequest, "q"},
			malformedFrame{"a zero seq", frame(`"seq":0`), codeInvalidRequest, "q"},
			malformedFrame{"a negative seq", frame(`"seq":-1`), codeInvalidRequest, "q"},
			malformedFrame{"a fractional seq", frame(`"seq":1.5`), codeInvalidRequest, "q"},
			malformedFrame{"a seq in a string", frame(`"seq":"1"`), codeInvalidRequest, "q"},
			malformedFrame{"a seq beyond 2^53-1", frame(`"seq":9007199254740992`), codeInvalidRequest, "q"},
		)
	}
	m["edit"] = append(m["edit"], malformedFrame{"no body", `{"type":"edit","id":"q","conversation_id":"d_1","command_id":"c-1","seq":3}`, codeInvalidRequest, "q"})
	m["react"] = append(m["react"], malformedFrame{"a numeric emoji", `{"type":"react","id":"q","conversation_id":"d_1","command_id":"c-1","seq":3,"emoji":1}`, codeInvalidRequest, "q"})
	m["unreact"] = append(m["unreact"], malformedFrame{"a body", `{"type":"unreact","id":"q","conversation_id":"d_1","command_id":"c-1","seq":3,"emoji":"👍","body":"x"}`, codeInvalidRequest, "q"})
	return m
}

func TestClientFramesFollowTheirSchemas(t *testing.T) {
	t.Parallel()
	check := frameSchemas(t)
	malformed := malformedFrames()
	for typ := range clientFrames {
		if len(validFrames[typ]) == 0 || len(malformed[typ]) == 0 {
			t.Errorf("frame type %s: no valid or no malformed variants", typ)
		}
	}
	for typ, frames := range validFrames {
		for _, frame := range frames {
			if err := check([]byte(frame)); err != nil {
				t.Errorf("%s: the schema refuses %s: %v", typ, frame, err)
			}
			f, e := decodeFrame([]byte(frame))
			if e != nil || f.Type != typ {
				t.Errorf("%s: decodeFrame(%s) = %+v, %v; want it accepted", typ, frame, f, e)
			}
		}
	}
	for typ, variants := range malformed {
		for _, v := range variants {
			t.Run(typ+"/"+v.name, func(t *testing.T) {
				if check([]byte(v.frame)) == nil {
					t.Errorf("the schema accepts %s", v.frame)
				}
				f, e := decodeFrame([]byte(v.frame))
				if e == nil {
					t.Fatalf("decodeFrame(%s) accepted it: %+v", v.frame, f)
				}
				if e.Code != v.code || f.ID != v.id || e.Retryable {
					t.Errorf("decodeFrame(%s) = error %s %q with id %q; want %s with id %q", v.frame, e.Code, e.Message, f.ID, v.code, v.id)
				}
				// Plain words: no Go types in what the client reads.
				for _, goism := range []string{"Go ", "uint", "int64", "float64", "json:", "struct", "map["} {
					if strings.Contains(e.Message, goism) {
						t.Errorf("message %q speaks of %q", e.Message, goism)
					}
				}
			})
		}
	}
}

// BenchmarkValidateFrameSchema_Send is what checking a send frame with a
// JSON Schema validator would cost at run time, beside decodeFrame's
// own checks (BenchmarkDecodeFrame_Send).
func BenchmarkValidateFrameSchema_Send(b *testing.B) {
	check := frameSchemas(b)
	frame := []byte(`{"type":"send","id":"42","conversation_id":"d_5f2c6a0e8b1d4c3a9e7f6b5a4d3c2b1a","command_id":"01J9ZK3W4X5Y6Z7A8B9C0D1E2F","body":"` +
		strings.Repeat("lorem ipsum ", 16) + `"}`)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if err := check(frame); err != nil {
			b.Fatal(err)
		}
	}
}
