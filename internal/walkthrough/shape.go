// Shapes: JSON with "…" for what differs from run to run, and matching
// decoded JSON values against them.
package walkthrough

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"unicode/utf8"
)

// Ellipsis stands for what a shape leaves open.
const Ellipsis = "…"

// Shape is a parsed shape.
type Shape struct{ node node }

// ParseShape parses a shape.
func ParseShape(text string) (Shape, error) {
	p := &shapeParser{s: text}
	n, err := p.value()
	if err == nil {
		p.space()
		if p.i < len(p.s) {
			err = p.errorf("unexpected %q after the value", p.rest())
		}
	}
	if err != nil {
		return Shape{}, fmt.Errorf("shape %s: %w", text, err)
	}
	return Shape{n}, nil
}

// Match reports how v, a value decoded by encoding/json, differs from s.
func (s Shape) Match(v any) error { return s.node.match(v, "$") }

type node interface {
	match(v any, path string) error
}

type (
	anyNode    struct{}
	stringNode struct{ pattern string }
	literal    struct{ v any }
	objectNode struct {
		keys   []string
		values map[string]node
		open   bool
	}
	arrayNode struct{ elems []node } // nil elements stand for "…"
)

func (anyNode) match(any, string) error { return nil }

func (n stringNode) match(v any, path string) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("%s: got %s, want a string like %q", path, show(v), n.pattern)
	}
	if !globMatch(n.pattern, s) {
		return fmt.Errorf("%s: got %q, want %q", path, s, n.pattern)
	}
	return nil
}

// globMatch reports whether s matches pattern, where each "…" stands for
// any text.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, Ellipsis)
	if len(parts) == 1 {
		return s == pattern
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}

func (n literal) match(v any, path string) error {
	if !reflect.DeepEqual(n.v, v) {
		return fmt.Errorf("%s: got %s, want %s", path, show(v), show(n.v))
	}
	return nil
}

func (n objectNode) match(v any, path string) error {
	obj, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: got %s, want an object", path, show(v))
	}
	var errs []error
	shown := map[string]bool{}
	for _, k := range n.keys {
		actual, ok := k, false
		if strings.Contains(k, Ellipsis) {
			// A member name like "d_…" stands for the one member it matches.
			for name := range obj {
				if !shown[name] && globMatch(k, name) {
					actual, ok = name, true
					break
				}
			}
		} else {
			_, ok = obj[k]
		}
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no member %q", path, k))
			continue
		}
		shown[actual] = true
		errs = append(errs, n.values[k].match(obj[actual], path+"."+actual))
	}
	if !n.open {
		var extra []string
		for k := range obj {
			if !shown[k] {
				extra = append(extra, k)
			}
		}
		if len(extra) > 0 {
			sort.Strings(extra)
			errs = append(errs, fmt.Errorf("%s: members %q not shown (add them, or \"…\" to allow more)", path, extra))
		}
	}
	return errors.Join(errs...)
}

func (n arrayNode) match(v any, path string) error {
	arr, ok := v.([]any)
	if !ok {
		return fmt.Errorf("%s: got %s, want an array", path, show(v))
	}
	if err := matchSeq(n.elems, arr, path, 0); err != nil {
		return err
	}
	return nil
}

// matchSeq matches the elements from index at of an array against elems,
// where a nil element matches any number of elements.
func matchSeq(elems []node, arr []any, path string, at int) error {
	if len(elems) == 0 {
		if len(arr) > 0 {
			return fmt.Errorf("%s: %d more element(s) than shown, from index %d: %s", path, len(arr), at, show(arr[0]))
		}
		return nil
	}
	if elems[0] == nil {
		var first error
		for skip := 0; skip <= len(arr); skip++ {
			err := matchSeq(elems[1:], arr[skip:], path, at+skip)
			if err == nil {
				return nil
			}
			if first == nil {
				first = err
			}
		}
		return first
	}
	if len(arr) == 0 {
		return fmt.Errorf("%s: %d element(s), want more", path, at)
	}
	if err := elems[0].match(arr[0], fmt.Sprintf("%s[%d]", path, at)); err != nil {
		return err
	}
	return matchSeq(elems[1:], arr[1:], path, at+1)
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

type shapeParser struct {
	s string
	i int
}

func (p *shapeParser) rest() string {
	r := p.s[p.i:]
	if len(r) > 20 {
		r = r[:20]
	}
	return r
}

func (p *shapeParser) errorf(format string, args ...any) error {
	return fmt.Errorf("at offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *shapeParser) space() {
	for p.i < len(p.s) && strings.ContainsRune(" \t\r\n", rune(p.s[p.i])) {
		p.i++
	}
}

func (p *shapeParser) ellipsis() bool {
	p.space()
	if strings.HasPrefix(p.s[p.i:], Ellipsis) {
		p.i += len(Ellipsis)
		return true
	}
	return false
}

func (p *shapeParser) value() (node, error) {
	if p.ellipsis() {
		return anyNode{}, nil
	}
	if p.i >= len(p.s) {
		return nil, p.errorf("a value is missing")
	}
	switch p.s[p.i] {
	case '{':
		return p.object()
	case '[':
		return p.array()
	case '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return stringNode{s}, nil
	}
	start := p.i
	for p.i < len(p.s) && strings.ContainsRune("+-.0123456789eEtruefalsn", rune(p.s[p.i])) {
		p.i++
	}
	var v any
	if err := json.Unmarshal([]byte(p.s[start:p.i]), &v); err != nil || start == p.i {
		p.i = start
		return nil, p.errorf("not a value: %q", p.rest())
	}
	return literal{v}, nil
}

func (p *shapeParser) str() (string, error) {
	start := p.i
	p.i++ // the opening quote
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case '\\':
			p.i += 2
			continue
		case '"':
			p.i++
			var s string
			if err := json.Unmarshal([]byte(p.s[start:p.i]), &s); err != nil {
				return "", p.errorf("bad string: %v", err)
			}
			return s, nil
		}
		_, size := utf8.DecodeRuneInString(p.s[p.i:])
		p.i += size
	}
	return "", p.errorf("a string is not closed")
}

// next consumes the separator after a member or element: a comma, or the
// closing bracket (it reports true then).
func (p *shapeParser) next(closing byte) (bool, error) {
	p.space()
	if p.i >= len(p.s) {
		return false, p.errorf("%q is missing", closing)
	}
	switch p.s[p.i] {
	case ',':
		p.i++
		return false, nil
	case closing:
		p.i++
		return true, nil
	}
	return false, p.errorf("want ',' or %q, got %q", closing, p.rest())
}

func (p *shapeParser) object() (node, error) {
	p.i++ // {
	obj := objectNode{values: map[string]node{}}
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return obj, nil
	}
	for {
		if p.ellipsis() {
			obj.open = true
		} else {
			p.space()
			if p.i >= len(p.s) || p.s[p.i] != '"' {
				return nil, p.errorf("want a member name, got %q", p.rest())
			}
			key, err := p.str()
			if err != nil {
				return nil, err
			}
			p.space()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return nil, p.errorf("want ':' after %q", key)
			}
			p.i++
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			if _, dup := obj.values[key]; dup {
				return nil, p.errorf("member %q twice", key)
			}
			obj.keys = append(obj.keys, key)
			obj.values[key] = v
		}
		done, err := p.next('}')
		if err != nil || done {
			return obj, err
		}
	}
}

func (p *shapeParser) array() (node, error) {
	p.i++ // [
	var arr arrayNode
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return arr, nil
	}
	for {
		save := p.i
		if p.ellipsis() {
			p.space()
			if p.i < len(p.s) && (p.s[p.i] == ',' || p.s[p.i] == ']') {
				arr.elems = append(arr.elems, nil)
			} else {
				p.i = save
			}
		}
		if p.i == save {
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			arr.elems = append(arr.elems, v)
		}
		done, err := p.next(']')
		if err != nil || done {
			return arr, err
		}
	}
}
