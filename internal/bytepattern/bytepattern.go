// Package bytepattern matches the anchored, ASCII-only regular
// expressions of Parley's identifiers (^[A-Za-z0-9_-]{1,64}$,
// ^u_[0-9a-f]{32}$ …) by walking the bytes of the text once, without the
// regexp engine: the schemas check such a pattern for nearly every field
// of every event, and regexp's matcher was a tenth of a replay's time.
//
// Compile accepts only expressions it can match exactly as regexp does
// (syntax.Perl): ^, then a sequence of literal ASCII bytes and repeated
// ASCII character classes, then $, where a class of variable length is
// never followed by a byte it could also take (so the greedy walk is the
// only way to match). Anything else is refused, and the caller keeps
// regexp for it.
package bytepattern

import (
	"regexp"
	"regexp/syntax"
)

// Pattern is a compiled expression. It is immutable, so safe for
// concurrent use. It satisfies the Regexp interface of
// github.com/santhosh-tekuri/jsonschema/v6.
type Pattern struct {
	src   string
	elems []elem
}

// elem is one step of the walk: between min and max (max < 0: no limit)
// bytes of set.
type elem struct {
	set      [2]uint64 // bit c of the ASCII byte c
	min, max int
}

func (e *elem) has(c byte) bool { return c < 128 && e.set[c>>6]&(1<<(c&63)) != 0 }

// Compile returns the Pattern of expr and true, or false if expr is not
// of the form the package matches (see the package doc).
func Compile(expr string) (*Pattern, bool) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil || re.Op != syntax.OpConcat || len(re.Sub) < 3 {
		return nil, false
	}
	subs := re.Sub
	if subs[0].Op != syntax.OpBeginText || subs[len(subs)-1].Op != syntax.OpEndText {
		return nil, false
	}
	p := &Pattern{src: expr}
	for _, s := range subs[1 : len(subs)-1] {
		switch s.Op {
		case syntax.OpLiteral:
			if s.Flags&syntax.FoldCase != 0 {
				return nil, false
			}
			for _, r := range s.Rune {
				if r >= 128 {
					return nil, false
				}
				var e elem
				e.set[r>>6] |= 1 << (r & 63)
				e.min, e.max = 1, 1
				p.elems = append(p.elems, e)
			}
		case syntax.OpCharClass:
			e, ok := class(s, 1, 1)
			if !ok {
				return nil, false
			}
			p.elems = append(p.elems, e)
		case syntax.OpRepeat, syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
			lo, hi := s.Min, s.Max
			switch s.Op {
			case syntax.OpStar:
				lo, hi = 0, -1
			case syntax.OpPlus:
				lo, hi = 1, -1
			case syntax.OpQuest:
				lo, hi = 0, 1
			}
			if s.Flags&syntax.NonGreedy != 0 || len(s.Sub) != 1 {
				return nil, false
			}
			e, ok := class(s.Sub[0], lo, hi)
			if !ok {
				return nil, false
			}
			p.elems = append(p.elems, e)
		default:
			return nil, false
		}
	}
	// A step of variable length must be followed by a step that needs a
	// byte it cannot take, or by the end.
	for i, e := range p.elems {
		if e.min == e.max || i == len(p.elems)-1 {
			continue
		}
		next := p.elems[i+1]
		if next.min < 1 || e.set[0]&next.set[0] != 0 || e.set[1]&next.set[1] != 0 {
			return nil, false
		}
	}
	return p, true
}

// class is the elem of an ASCII character class or a literal ASCII
// character.
func class(re *syntax.Regexp, lo, hi int) (elem, bool) {
	e := elem{min: lo, max: hi}
	switch {
	case re.Op == syntax.OpLiteral && len(re.Rune) == 1 && re.Flags&syntax.FoldCase == 0 && re.Rune[0] < 128:
		r := re.Rune[0]
		e.set[r>>6] |= 1 << (r & 63)
		return e, true
	case re.Op != syntax.OpCharClass || len(re.Rune) == 0:
		return e, false
	}
	for i := 0; i+1 < len(re.Rune); i += 2 {
		from, to := re.Rune[i], re.Rune[i+1]
		if from < 0 || to >= 128 || from > to {
			return e, false
		}
		for c := from; c <= to; c++ {
			e.set[c>>6] |= 1 << (c & 63)
		}
	}
	return e, true
}

// MustCompile is Compile for expressions known to be of the form it
// matches; it panics otherwise (for package-level patterns).
func MustCompile(expr string) *Pattern {
	p, ok := Compile(expr)
	if !ok {
		panic("bytepattern: not a simple anchored ASCII pattern: " + expr)
	}
	return p
}

// MatchString reports whether s matches the whole pattern.
func (p *Pattern) MatchString(s string) bool { return match(p, s) }

// Match reports whether b matches the whole pattern.
func (p *Pattern) Match(b []byte) bool { return match(p, b) }

func match[T string | []byte](p *Pattern, s T) bool {
	i := 0
	for k := range p.elems {
		e := &p.elems[k]
		n := 0
		for i < len(s) && (e.max < 0 || n < e.max) && e.has(s[i]) {
			i++
			n++
		}
		if n < e.min {
			return false
		}
	}
	return i == len(s)
}

// String returns the expression the Pattern was compiled from.
func (p *Pattern) String() string { return p.src }

// Matcher is what a Pattern or a *regexp.Regexp offers.
type Matcher interface {
	MatchString(s string) bool
	String() string
}

// CompileOrRegexp returns the Pattern of expr if Compile accepts it, or
// else the compiled *regexp.Regexp.
func CompileOrRegexp(expr string) (Matcher, error) {
	if p, ok := Compile(expr); ok {
		return p, nil
	}
	return regexp.Compile(expr)
}
