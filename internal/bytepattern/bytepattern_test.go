package bytepattern_test

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/bytepattern"
)

// The patterns of schemas/json and the schemas package.
var simple = []string{
	`^[A-Za-z0-9._@+-]{1,128}$`,
	`^[A-Za-z0-9._:-]{1,64}$`,
	`^[A-Za-z0-9_-]{1,64}$`,
	`^u_[0-9a-f]{32}$`,
	`^[0-9a-f]{64}$`,
	`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`,
	`^[a-z][a-z0-9_]*$`,
	`^ab+c$`,
}

func TestRefuses(t *testing.T) {
	t.Parallel()
	for _, expr := range []string{
		`[a-z]+`,               // not anchored
		`^[a-z]+`,              // no end
		`^[a-z]+$|^x$`,         // alternation
		`^(?i)[a-z]+$`,         // case folding
		`^[a-z]*[a-z0-9]$`,     // a variable class followed by bytes it takes
		`^[a-z]*[0-9]?$`,       // followed by an optional step
		`^[a-zé]{1,3}$`,        // not ASCII
		`^.{1,3}$`,             // any character
		`^[a-z]{1,3}?$`,        // non-greedy
		`^([01][0-9]|2[0-3])$`, // groups
		`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.v[1-9][0-9]*$`,
	} {
		if _, ok := bytepattern.Compile(expr); ok {
			t.Errorf("Compile(%q) accepted", expr)
		}
		m, err := bytepattern.CompileOrRegexp(expr)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(*regexp.Regexp); !ok {
			t.Errorf("CompileOrRegexp(%q) is %T; want *regexp.Regexp", expr, m)
		}
	}
}

// TestMatchesAsRegexp compares every pattern with regexp on edge cases and
// on random strings over the bytes that matter.
func TestMatchesAsRegexp(t *testing.T) {
	t.Parallel()
	alphabet := []string{"a", "z", "A", "0", "9", "f", "g", "_", "-", ".", "@", "+", ":", "/", "!", "u", "b", "c", " ", "\n", "é", "\xff", "$", "^"}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, expr := range simple {
		p, ok := bytepattern.Compile(expr)
		if !ok {
			t.Fatalf("Compile(%q) refused", expr)
		}
		if p.String() != expr {
			t.Errorf("String() = %q", p.String())
		}
		re := regexp.MustCompile(expr)
		cases := []string{"", "a", "u_" + strings.Repeat("0", 32), "u_" + strings.Repeat("0", 31), "u_" + strings.Repeat("0", 33),
			strings.Repeat("a", 64), strings.Repeat("a", 65), strings.Repeat("a", 128), strings.Repeat("a", 129),
			strings.Repeat("f", 64), "image/jpeg", "image/", "/jpeg", "a/b/c", "abc\n", "abc", "abbbb", "ac", "bc"}
		for range 20000 {
			var b strings.Builder
			n := rng.IntN(12)
			if rng.IntN(4) == 0 {
				n = rng.IntN(140) // around the lengths the patterns allow
			}
			for range n {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			cases = append(cases, b.String())
		}
		for _, s := range cases {
			if got, want := p.MatchString(s), re.MatchString(s); got != want {
				t.Errorf("%q on %q: %v; regexp says %v", expr, s, got, want)
			}
			if got, want := p.Match([]byte(s)), re.MatchString(s); got != want {
				t.Errorf("%q on []byte %q: %v; regexp says %v", expr, s, got, want)
			}
		}
	}
}
