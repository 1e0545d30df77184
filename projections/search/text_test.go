package search_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/projections/search"
)

func TestParseText(t *testing.T) {
	t.Parallel()
	w := func(s string) search.Clause { return search.Clause{Text: s} }
	tests := []struct {
		in   string
		want []search.Clause
	}{
		{"deploy", []search.Clause{w("deploy")}},
		{"  Deploy   friday ", []search.Clause{w("Deploy"), w("friday")}},
		{`"release  notes"`, []search.Clause{{Text: "release notes", Phrase: true}}},
		{`deploy -friday -"old plan"`, []search.Clause{w("deploy"), {Text: "friday", Exclude: true}, {Text: "old plan", Phrase: true, Exclude: true}}},
		{"don't e-mail 3.14", []search.Clause{w("don't"), w("e-mail"), w("3.14")}},
		{"日本語 ok", []search.Clause{w("日本語"), w("ok")}},
		{"a-b", []search.Clause{w("a-b")}},
	}
	for _, tc := range tests {
		got, err := search.ParseText(tc.in)
		if err != nil {
			t.Errorf("ParseText(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got.Clauses, tc.want) {
			t.Errorf("ParseText(%q) = %+v, want %+v", tc.in, got.Clauses, tc.want)
		}
	}
	words, _ := search.ParseText(`a "b c" -d e`)
	if words.Words() != "a e" {
		t.Errorf("Words() = %q, want %q", words.Words(), "a e")
	}
}

func TestParseTextErrors(t *testing.T) {
	t.Parallel()
	for in, says := range map[string]string{
		"":                        "empty",
		"   ":                     "empty",
		`"open`:                   "left open",
		`-`:                       "minus",
		`deploy - friday`:         "without a space",
		`-deploy`:                 "only excludes",
		`!!! ???`:                 "no letter or digit",
		`""`:                      "empty phrase",
		`"a"b`:                    "space after the closing quote",
		`ab"c`:                    "quote inside the word",
		strings.Repeat("a ", 300): "longer than",
		strings.Repeat("a ", 17):  "more than 16",
		"\xff":                    "UTF-8",
	} {
		_, err := search.ParseText(in)
		if !errors.Is(err, search.ErrBadQuery) || !strings.Contains(err.Error(), says) {
			t.Errorf("ParseText(%.20q) = %v, want ErrBadQuery saying %q", in, err, says)
		}
	}
}

// FuzzParseText checks that any text either parses into clauses that hold
// a letter or digit and at least one positive clause, or fails with
// ErrBadQuery; never a panic.
func FuzzParseText(f *testing.F) {
	for _, s := range []string{"deploy", `"a b" -c`, `-"x`, `""`, "\x00", "- -", `a"`, "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		txt, err := search.ParseText(s)
		if err != nil {
			if !errors.Is(err, search.ErrBadQuery) {
				t.Fatalf("error %v does not wrap ErrBadQuery", err)
			}
			return
		}
		if !utf8.ValidString(s) || len(s) > search.MaxTextBytes {
			t.Fatalf("accepted %q", s)
		}
		positive := false
		for _, c := range txt.Clauses {
			if c.Text == "" || strings.ContainsRune(c.Text, '"') && !c.Phrase {
				t.Fatalf("clause %+v of %q", c, s)
			}
			positive = positive || !c.Exclude
		}
		if !positive || len(txt.Clauses) > search.MaxClauses {
			t.Fatalf("clauses %+v of %q", txt.Clauses, s)
		}
	})
}

func TestQueryValidate(t *testing.T) {
	t.Parallel()
	ok := search.Query{Text: "x", Conversations: []string{"c"}, Limit: 1}
	if err := ok.Validate(); err != nil {
		t.Fatalf("a valid query: %v", err)
	}
	q := ok
	q.From = time.Date(2025, 1, 1, 0, 0, 0, 900_000, time.UTC)
	q.To = time.Date(2025, 1, 1, 0, 0, 0, 100_000, time.UTC).Add(time.Millisecond / 2)
	if err := q.Validate(); !errors.Is(err, search.ErrBadQuery) {
		t.Errorf("from and to in the same millisecond: %v, want ErrBadQuery", err)
	}
	n := search.Query{From: time.Date(2025, 1, 1, 0, 0, 0, 1_999_999, time.FixedZone("x", 3600))}.Normalize()
	if want := time.Date(2024, 12, 31, 23, 0, 0, 1_000_000, time.UTC); !n.From.Equal(want) || n.From.Location() != time.UTC {
		t.Errorf("Normalize: %v, want %v in UTC", n.From, want)
	}
	if s, err := search.ParseSort("relevance"); err != nil || s != search.SortRelevance {
		t.Errorf("ParseSort(relevance) = %v, %v", s, err)
	}
	if _, err := search.ParseSort("oldest"); !errors.Is(err, search.ErrBadQuery) {
		t.Errorf("ParseSort(oldest): %v", err)
	}
}
