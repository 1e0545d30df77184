package schemacheck

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/parley-chat/parley/schemas"
)

// TestFastPathCovers says which types have a fast path: all but those
// whose schemas use keywords it leaves to the library.
func TestFastPathCovers(t *testing.T) {
	t.Parallel()
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	var without []string
	for _, typ := range schemas.Types() {
		if v.fast[typ] == nil {
			without = append(without, typ)
		}
	}
	if len(without) > 3 {
		t.Errorf("%d types without a fast path: %v", len(without), without)
	}
	for _, typ := range []string{schemas.TypeMessageSentV3, schemas.TypeMessageSent, schemas.TypeMessageSentV2} {
		if v.fast[typ] == nil {
			t.Errorf("%s has no fast path", typ)
		}
	}
	t.Logf("types left to the library: %v", without)
}

// TestFastPathNeverAcceptsWhatTheLibraryRejects validates every fixture
// and many variants of each (every field removed, replaced by values of
// every kind and edge, unknown and duplicate fields, escapes, broken
// JSON) both ways: whenever the fast path accepts, the library must too;
// and the fast path must accept every fixture (or it is useless).
func TestFastPathNeverAcceptsWhatTheLibraryRejects(t *testing.T) {
	t.Parallel()
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	replacements := []string{
		`null`, `true`, `false`, `0`, `-0`, `1`, `-1`, `2`, `1.0`, `1.5`, `1e2`, `1E+0`, `-1e-2`, `01`, `1.`, `.5`, `+1`,
		`9223372036854775807`, `9223372036854775808`, `18446744073709551615`, `18446744073709551616`, `99999999999999999999999`,
		`""`, `"x"`, `"a b"`, `"bob"`, `"g_1"`, `"\u0062ob"`, `"b\"ob"`, `"é"`, `"\xff"`, `"` + strings.Repeat("a", 65) + `"`,
		`"` + strings.Repeat("a", 129) + `"`, `"2025-03-14T10:06:00Z"`, `"2025-13-14T10:06:00Z"`, `"not a time"`,
		`"u_8f14e45fceea167a5a36dedd4bea2543"`, `"image/png"`, `"owner"`, `"member"`, `"aGVsbG8="`, `"not base64!"`,
		`[]`, `[1]`, `["x"]`, `[{}]`, `{}`, `{"a":1}`, `[[[[]]]]`, `"\n"`, `"a\tb"`,
	}
	checked, accepted := 0, 0
	for _, typ := range schemas.Types() {
		f := v.fast[typ]
		if f == nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("..", "testdata", typ+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if !fastValid(f, raw) {
			t.Errorf("%s: the fast path does not accept the fixture", typ)
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		variants := []string{string(raw) + " ", " \n" + string(raw), string(raw) + "x", string(raw) + "{}", string(raw)[:len(raw)-1], "", "{}", "[]", `"x"`, "null"}
		for name := range doc {
			variants = append(variants, strings.Replace(string(raw), `"`+name+`":`, `"`+name+`x":`, 1)) // renamed
			variants = append(variants, strings.Replace(string(raw), `"`+name+`":`, `"`+name[:len(name)-1]+`\u00`+hex(name[len(name)-1])+`":`, 1))
			for _, r := range replacements {
				variants = append(variants, with(t, doc, name, r))
			}
			variants = append(variants, without(t, doc, name))
			// duplicate: the library keeps the last one
			variants = append(variants, "{"+`"`+name+`":`+string(doc[name])+","+string(raw)[1:])
			variants = append(variants, strings.TrimSuffix(string(raw), "}")+`,"`+name+`":1}`)
		}
		for _, r := range replacements {
			variants = append(variants, with(t, doc, "zz_unknown", r))
		}
		// Nested: every field of every nested object or array element.
		for name, sub := range doc {
			variants = append(variants, nested(t, doc, name, sub, replacements)...)
		}
		for _, s := range variants {
			checked++
			if !fastValid(f, []byte(s)) {
				continue
			}
			accepted++
			inst, err := jsonschema.UnmarshalJSON(strings.NewReader(s))
			if err == nil {
				err = v.byType[typ].Validate(inst)
			}
			if err != nil {
				t.Errorf("%s: the fast path accepts what the library rejects (%v):\n%s", typ, err, s)
			}
		}
	}
	t.Logf("%d variants, %d accepted by the fast path", checked, accepted)
	if accepted == 0 || accepted == checked {
		t.Errorf("the variants do not exercise the fast path: %d of %d accepted", accepted, checked)
	}
}

func hex(c byte) string { return string("0123456789abcdef"[c>>4]) + string("0123456789abcdef"[c&15]) }

func with(t *testing.T, doc map[string]json.RawMessage, name, value string) string {
	t.Helper()
	m := make(map[string]json.RawMessage, len(doc)+1)
	for k, v := range doc {
		m[k] = v
	}
	m[name] = json.RawMessage(value)
	return marshal(t, m)
}

func without(t *testing.T, doc map[string]json.RawMessage, name string) string {
	t.Helper()
	m := make(map[string]json.RawMessage, len(doc))
	for k, v := range doc {
		if k != name {
			m[k] = v
		}
	}
	return marshal(t, m)
}

// marshal writes m without encoding/json's checks of the raw values (so
// broken values reach the validators as they are).
func marshal(t *testing.T, m map[string]json.RawMessage) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("{")
	first := true
	for k, v := range m {
		if !first {
			b.WriteString(",")
		}
		first = false
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteString(":")
		b.Write(v)
	}
	b.WriteString("}")
	return b.String()
}

// nested returns variants of doc with the fields of the object (or the
// first object of the array) at name replaced or removed.
func nested(t *testing.T, doc map[string]json.RawMessage, name string, sub json.RawMessage, replacements []string) []string {
	t.Helper()
	var obj map[string]json.RawMessage
	wrap := func(s string) string { return s }
	if err := json.Unmarshal(sub, &obj); err != nil {
		var arr []json.RawMessage
		if json.Unmarshal(sub, &arr) != nil || len(arr) == 0 || json.Unmarshal(arr[0], &obj) != nil {
			return nil
		}
		rest := ""
		for _, e := range arr[1:] {
			rest += "," + string(e)
		}
		wrap = func(s string) string { return "[" + s + rest + "]" }
	}
	var out []string
	for field := range obj {
		for _, r := range replacements {
			out = append(out, with(t, doc, name, wrap(with(t, obj, field, r))))
		}
		out = append(out, with(t, doc, name, wrap(without(t, obj, field))))
	}
	for _, r := range replacements {
		out = append(out, with(t, doc, name, wrap(with(t, obj, "zz_unknown", r))))
	}
	return out
}
