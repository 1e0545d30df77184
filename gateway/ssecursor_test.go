package gateway

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	c := newCursor(3, map[string]uint64{"b": 2})
	c.set("a", 7)
	if c.set("a", 5) {
		t.Error("a cursor moved back")
	}
	c.set("b", 3)
	if got, want := c.String(), "1.a:7,b:3"; got != want {
		t.Fatalf("encoded %q, want %q", got, want)
	}
	got, err := parseCursor(c.String(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]uint64{"a": 7, "b": 3}; !maps.Equal(got, want) {
		t.Fatalf("decoded %v, want %v", got, want)
	}
}

func TestCursorDropsTheLeastRecentWhenFull(t *testing.T) {
	t.Parallel()
	c := newCursor(2, nil)
	c.set("a", 1)
	c.set("b", 1)
	c.set("a", 2) // b is now the least recent
	c.set("c", 1)
	if got, want := c.String(), "1.a:2,c:1"; got != want {
		t.Fatalf("encoded %q, want %q", got, want)
	}
}

func TestParseCursorRefusesMalformedIDs(t *testing.T) {
	t.Parallel()
	for _, id := range []string{
		"a:1",                                 // no version
		"2.a:1",                               // unknown version
		"1.a",                                 // no seq
		"1.a:-1",                              // not a seq
		"1.a:1,a:2",                           // twice
		"1.a b:1",                             // not a conversation id
		"1.a:1,b:1,c:1",                       // too many
		"1.a:1,",                              // empty pair
		"1." + strings.Repeat("x", 65) + ":1", // too long an id
	} {
		if _, err := parseCursor(id, 2); !errors.Is(err, errCursor) {
			t.Errorf("parseCursor(%q) = %v, want errCursor", id, err)
		}
	}
	for _, id := range []string{"", "1."} {
		if m, err := parseCursor(id, 2); err != nil || len(m) != 0 {
			t.Errorf("parseCursor(%q) = %v, %v, want the empty cursor", id, m, err)
		}
	}
}

func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"", "1.", "1.a:1,b:2", "1.d_00:18446744073709551615", "1.a:1,a:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseCursor(s, 8)
		if err != nil {
			return
		}
		again, err := parseCursor(newCursor(8, m).String(), 8)
		if err != nil {
			t.Fatalf("re-encoding %q: %v", s, err)
		}
		if !maps.Equal(m, again) {
			t.Fatalf("%q decoded as %v, re-encoded as %v", s, m, again)
		}
	})
}
