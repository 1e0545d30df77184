package walkthrough

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestShapeMatch(t *testing.T) {
	for _, c := range []struct {
		shape, value string
		wantErr      string // empty: matches
	}{
		{`{"seq":1,"duplicate":false}`, `{"seq":1,"duplicate":false}`, ""},
		{`{"seq":1,"duplicate":false}`, `{"seq":2,"duplicate":false}`, "$.seq: got 2, want 1"},
		{`{"seq":1}`, `{"seq":1,"duplicate":false}`, `members ["duplicate"] not shown`},
		{`{"seq":1,…}`, `{"seq":1,"duplicate":false}`, ""},
		{`{…,"seq":1}`, `{"seq":1,"duplicate":false}`, ""},
		{`{"seq":1,"id":"x"}`, `{"seq":1}`, `no member "id"`},
		{`{"id":"d_…"}`, `{"id":"d_7f3a"}`, ""},
		{`{"id":"d_…"}`, `{"id":"g_7f3a"}`, `got "g_7f3a", want "d_…"`},
		{`{"s":"<mark>Hi</mark> … world"}`, `{"s":"<mark>Hi</mark> there world"}`, ""},
		{`{"t":…}`, `{"t":{"a":[1,2]}}`, ""},
		{`{"t":"…"}`, `{"t":{"a":[1,2]}}`, "want a string"},
		{`[1,…]`, `[1,2,3]`, ""},
		{`[…,3]`, `[1,2,3]`, ""},
		{`[…,{"a":2},…]`, `[{"a":1},{"a":2},{"a":3}]`, ""},
		{`[1,2]`, `[1,2,3]`, "1 more element(s)"},
		{`[1,2,3]`, `[1,2]`, "want more"},
		{`[]`, `[]`, ""},
		{`{"r":[{"u":"alice",…},{"u":"bob","n":2}]}`, `{"r":[{"u":"alice","n":1},{"u":"bob","n":2}]}`, ""},
		{`{"x":null,"b":true,"f":1.5}`, `{"x":null,"b":true,"f":1.5}`, ""},
		{`{"e":"👋 …"}`, `{"e":"👋 hi"}`, ""},
		{`{"c":{"d_…":6}}`, `{"c":{"d_7f":6}}`, ""},
		{`{"c":{"d_…":6}}`, `{"c":{"d_7f":5}}`, "$.c.d_7f: got 5, want 6"},
		{`{"c":{"d_…":6}}`, `{"c":{"g_7f":6}}`, `no member "d_…"`},
		{`{"c":{"d_…":6}}`, `{"c":{"d_7f":6,"d_8e":6}}`, "not shown"},
	} {
		s, err := ParseShape(c.shape)
		if err != nil {
			t.Fatalf("%s: %v", c.shape, err)
		}
		var v any
		if err := json.Unmarshal([]byte(c.value), &v); err != nil {
			t.Fatal(err)
		}
		err = s.Match(v)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s against %s: %v", c.shape, c.value, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s against %s: %v, want an error containing %q", c.shape, c.value, err, c.wantErr)
		}
	}
}

func TestParseShapeRefusesWhatIsNotAShape(t *testing.T) {
	for _, bad := range []string{`{"a":1`, `{"a" 1}`, `{a:1}`, `[1 2]`, `{"a":1,"a":2}`, `"open`, `{"a":1} x`, `nope`} {
		if _, err := ParseShape(bad); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
}

func TestBlocks(t *testing.T) {
	md := "text\n```sh\nA=$(x \\\n  y)\n# {\"a\":1}\n# a comment\ncurl z\n# {\"b\":…}\n# [1]\n```\n\n```ws bob\n$ ./parley ws -user bob   # Bob\n> {\"type\":\"ping\"}\n< {\"type\":\"pong\"}\n```\n```console\nmake run\n```\n"
	blocks, err := Blocks(md)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 3 || blocks[0].Lang != "sh" || blocks[1].Lang != "ws" || blocks[1].Args[0] != "bob" || blocks[2].Lang != "console" {
		t.Fatalf("blocks %+v", blocks)
	}
	cmds := blocks[0].Commands()
	if len(cmds) != 2 || cmds[0].Text != "A=$(x \\\n  y)" || len(cmds[0].Output) != 1 || cmds[1].Text != "curl z" || len(cmds[1].Output) != 2 || cmds[1].Line != 7 {
		t.Fatalf("commands %+v", cmds)
	}
	steps, err := blocks[1].Steps()
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 3 || steps[0].Kind != '$' || steps[0].Text != "./parley ws -user bob   # Bob" || steps[2].Kind != '<' {
		t.Fatalf("steps %+v", steps)
	}
	if _, err := (Block{Lang: "ws", Lines: []string{"hello"}}).Steps(); err == nil {
		t.Error("a transcript line without $, > or < was accepted")
	}
	if _, err := Blocks("```sh\nunclosed\n"); err == nil {
		t.Error("an unclosed block was accepted")
	}
}
