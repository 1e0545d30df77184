// The search text syntax: words, quoted phrases and exclusions.

package search

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of a query text.
const (
	// MaxTextBytes is the longest query text.
	MaxTextBytes = 512
	// MaxClauses is the most words and phrases in one query text.
	MaxClauses = 16
)

// Clause is a word or a phrase of a query text.
type Clause struct {
	// Text is the word, or the words of the phrase, as the user wrote them;
	// adapters analyze it with the body's analyzer.
	Text string
	// Phrase requires the words in this order, next to each other.
	Phrase bool
	// Exclude keeps out the messages that match the clause.
	Exclude bool
}

// Text is a parsed query text.
type Text struct {
	Clauses []Clause
}

// Words returns the plain words that must match, space-separated: what
// adapters pass to a match query with the AND operator.
func (t Text) Words() string {
	var b strings.Builder
	for _, c := range t.Clauses {
		if !c.Phrase && !c.Exclude {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

// ParseText parses a query text. The syntax is what chat users know from
// other search boxes, and nothing they could trip over:
//
//	deploy friday       both words, in any order (every word must match)
//	"release notes"     the exact phrase
//	-draft  -"old plan" leave out messages with that word or phrase
//
// Matching is by the body's analyzer: case-insensitive, whole words, no
// stemming. Every word and phrase must hold at least one letter or digit
// (punctuation alone matches nothing), at least one word or phrase must
// not be excluded, and a text is at most MaxTextBytes bytes with at most
// MaxClauses words and phrases. Anything else, such as a quote left open,
// is an error wrapping ErrBadQuery whose message says what to fix.
func ParseText(s string) (Text, error) {
	var t Text
	if !utf8.ValidString(s) {
		return t, fmt.Errorf("%w: the query is not valid UTF-8", ErrBadQuery)
	}
	if len(s) > MaxTextBytes {
		return t, fmt.Errorf("%w: the query is longer than %d bytes", ErrBadQuery, MaxTextBytes)
	}
	positive := false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if unicode.IsSpace(r) {
			i += size
			continue
		}
		var c Clause
		if r == '-' {
			c.Exclude = true
			i += size
			if i == len(s) {
				return t, fmt.Errorf("%w: a minus must be followed by a word or a quoted phrase", ErrBadQuery)
			}
			r, _ = utf8.DecodeRuneInString(s[i:])
			if unicode.IsSpace(r) {
				return t, fmt.Errorf("%w: a minus must be followed by a word or a quoted phrase, without a space", ErrBadQuery)
			}
		}
		if r == '"' {
			end := strings.IndexByte(s[i+1:], '"')
			if end < 0 {
				return t, fmt.Errorf("%w: a quote is left open", ErrBadQuery)
			}
			c.Phrase = true
			c.Text = strings.Join(strings.Fields(s[i+1:i+1+end]), " ")
			i += end + 2
			if i < len(s) {
				if next, _ := utf8.DecodeRuneInString(s[i:]); !unicode.IsSpace(next) {
					return t, fmt.Errorf("%w: put a space after the closing quote of %q", ErrBadQuery, c.Text)
				}
			}
			if c.Text == "" {
				return t, fmt.Errorf("%w: an empty phrase", ErrBadQuery)
			}
		} else {
			end := strings.IndexFunc(s[i:], unicode.IsSpace)
			if end < 0 {
				end = len(s) - i
			}
			c.Text = s[i : i+end]
			i += end
			if strings.ContainsRune(c.Text, '"') {
				return t, fmt.Errorf("%w: a quote inside the word %q; quote whole phrases, with spaces around them", ErrBadQuery, c.Text)
			}
		}
		if strings.IndexFunc(c.Text, isWordRune) < 0 {
			return t, fmt.Errorf("%w: %q has no letter or digit to search for", ErrBadQuery, c.Text)
		}
		positive = positive || !c.Exclude
		t.Clauses = append(t.Clauses, c)
		if len(t.Clauses) > MaxClauses {
			return t, fmt.Errorf("%w: more than %d words and phrases", ErrBadQuery, MaxClauses)
		}
	}
	switch {
	case len(t.Clauses) == 0:
		return t, fmt.Errorf("%w: the query is empty", ErrBadQuery)
	case !positive:
		return t, fmt.Errorf("%w: the query only excludes; add a word or phrase to look for", ErrBadQuery)
	}
	return t, nil
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
