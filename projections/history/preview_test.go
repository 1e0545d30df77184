package history_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parley-chat/parley/projections/history"
)

func TestCutPreview(t *testing.T) {
	t.Parallel()
	const n = history.PreviewRunes
	for in, want := range map[string]string{
		"":                         "",
		"short":                    "short",
		strings.Repeat("a", n):     strings.Repeat("a", n),
		strings.Repeat("é", n+1):   strings.Repeat("é", n-1) + "…",
		strings.Repeat("👋", n+9):   strings.Repeat("👋", n-1) + "…",
		strings.Repeat("a", 3*n/2): strings.Repeat("a", n-1) + "…",
	} {
		got := history.CutPreview(in)
		if got != want {
			t.Errorf("CutPreview of %d runes: %d runes %q", utf8.RuneCountInString(in), utf8.RuneCountInString(got), got)
		}
		if utf8.RuneCountInString(got) > n {
			t.Errorf("preview longer than %d runes", n)
		}
	}
}
