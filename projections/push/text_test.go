package push_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/projections/push"
	"github.com/parley-chat/parley/schemas"
)

func TestPreview(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		body string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"  spaced\n\tout  text ", 20, "spaced out text"},
		{"Lunch at noon? The new place", 18, "Lunch at noon? The…"},
		{"Supercalifragilistic", 5, "Super…"},
		{"👋👋👋👋", 2, "👋👋…"},
		{"anything", 0, "…"},
	} {
		if got := push.Preview(c.body, c.n); got != c.want {
			t.Errorf("Preview(%q, %d) = %q, want %q", c.body, c.n, got, c.want)
		}
	}
}

func FuzzPreview(f *testing.F) {
	for _, s := range []string{"", "hello world", "👋 hi", "a\x00b", "\xff\xfe"} {
		f.Add(s, uint8(5))
	}
	f.Fuzz(func(t *testing.T, body string, n uint8) {
		p := push.Preview(body, int(n))
		if utf8.ValidString(body) && !utf8.ValidString(p) {
			t.Fatalf("Preview(%q, %d) = %q: not UTF-8", body, n, p)
		}
		if r := utf8.RuneCountInString(strings.TrimSuffix(p, "…")); r > int(n) {
			t.Fatalf("Preview(%q, %d) = %q: %d runes", body, n, p, r)
		}
	})
}

func TestMentions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		body, user string
		want       bool
	}{
		{"@bob look", "bob", true},
		{"hey @bob", "bob", true},
		{"hey @bob, look", "bob", true},
		{"@bobby hi", "bob", false},
		{"mail bob@bob.example", "bob", false},
		{"@bob.smith hi", "bob", false},
		{"@bobby and @bob!", "bob", true},
		{"no one", "bob", false},
		{"@bob👋", "bob", true},
	} {
		if got := push.Mentions(c.body, c.user); got != c.want {
			t.Errorf("Mentions(%q, %q) = %v, want %v", c.body, c.user, got, c.want)
		}
	}
}

func TestQuietHours(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	night := schemas.QuietHoursV1{Start: "22:00", End: "07:00", TimeZone: "Europe/Berlin"}
	lunch := schemas.QuietHoursV1{Start: "12:00", End: "13:30", TimeZone: "America/New_York"}
	for _, c := range []struct {
		q    schemas.QuietHoursV1
		t    string
		want bool
	}{
		{night, "2025-01-15T21:30:00Z", true}, // 22:30 in Berlin (winter, UTC+1)
		{night, "2025-01-15T20:59:00Z", false},
		{night, "2025-01-16T05:59:00Z", true},  // 06:59
		{night, "2025-01-16T06:00:00Z", false}, // 07:00 ends it
		{night, "2025-07-15T20:30:00Z", true},  // 22:30 in summer (UTC+2)
		{lunch, "2025-01-15T17:15:00Z", true},  // 12:15 in New York
		{lunch, "2025-01-15T18:30:00Z", false},
	} {
		if got := c.q.Quiet(at(c.t)); got != c.want {
			t.Errorf("%+v at %s: quiet %v, want %v", c.q, c.t, got, c.want)
		}
	}
	for _, bad := range []schemas.QuietHoursV1{
		{Start: "24:00", End: "07:00", TimeZone: "UTC"},
		{Start: "7:00", End: "08:00", TimeZone: "UTC"},
		{Start: "22:00", End: "22:00", TimeZone: "UTC"},
		{Start: "22:00", End: "07:00", TimeZone: "Mars/Olympus"},
		{Start: "22:00", End: "07:00", TimeZone: "Local"},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
