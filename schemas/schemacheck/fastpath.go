package schemacheck

import (
	"math/big"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/parley-chat/parley/internal/bytepattern"
)

// The fast path proves a value valid in one walk over its bytes, without
// building the value jsonschema validates (maps, json.Numbers, big.Rats):
// what made the full check cost more than the rest of a replay.
//
// It is built from the compiled *jsonschema.Schema itself, so it reads
// the schema exactly as the library does, and only for the keywords
// Parley's schemas use (type, properties, required,
// additionalProperties, items, min/maxItems, min/maxLength, pattern,
// format, contentEncoding, enum and const of strings, integer
// minimum/maximum). A type whose schema uses anything else has no fast
// path. It only ever says "valid": when it cannot prove a value valid
// (a broken value, or one it does not handle, such as an escaped key or
// a number with an exponent) Validate asks the library, whose verdict
// and error stand. So the check is exactly as strict as the library's.

// fastNode is the fast path's form of one schema; nil accepts any JSON
// value.
type fastNode struct {
	types          types
	enum           []string // if not nil, the value is one of these strings
	format         *jsonschema.Format
	minLen, maxLen int // -1: none
	pattern        jsonschema.Regexp
	bytesPattern   *bytepattern.Pattern // pattern, when bytepattern compiled it
	content        *jsonschema.Decoder
	hasMin, hasMax bool
	min, max       bound
	names          map[string]int // property or required name -> its bit
	props          []*fastNode    // by bit; nil for a required name that is no property
	declared       []bool         // by bit: a property of the schema
	required       uint64         // bits
	forbidExtra    bool           // additionalProperties: false
	extra          *fastNode      // additionalProperties as a schema
	minItems       int
	maxItems       int // -1: none
	items          *fastNode
}

type types uint8

const (
	tNull types = 1 << iota
	tBoolean
	tNumber
	tInteger
	tString
	tArray
	tObject
	tAny types = 1<<7 - 1
)

// bound is an integer bound, sign and magnitude.
type bound struct {
	neg bool
	mag uint64
}

// less reports whether a < b.
func (a bound) less(b bound) bool {
	switch {
	case a.neg && !b.neg:
		return a.mag != 0 || b.mag != 0
	case !a.neg && b.neg:
		return false
	case a.neg:
		return a.mag > b.mag
	}
	return a.mag < b.mag
}

func ratBound(r *big.Rat) (bound, bool) {
	if !r.IsInt() {
		return bound{}, false
	}
	n := r.Num()
	if !new(big.Int).Abs(n).IsUint64() {
		return bound{}, false
	}
	return bound{neg: n.Sign() < 0, mag: new(big.Int).Abs(n).Uint64()}, true
}

// compileFast returns the fast path of s, or false if s uses a keyword
// the fast path does not handle.
func compileFast(s *jsonschema.Schema) (*fastNode, bool) {
	if s == nil {
		return nil, true
	}
	if s.Bool != nil {
		return nil, *s.Bool // true accepts anything; false is left to the library
	}
	if s.DraftVersion != 2020 || s.Ref != nil || s.RecursiveRef != nil || s.DynamicRef != nil ||
		s.Not != nil || s.AllOf != nil || s.AnyOf != nil || s.OneOf != nil || s.If != nil || s.Then != nil || s.Else != nil ||
		s.MaxProperties != nil || s.MinProperties != nil || s.PropertyNames != nil || s.PatternProperties != nil ||
		s.Dependencies != nil || s.DependentRequired != nil || s.DependentSchemas != nil || s.UnevaluatedProperties != nil ||
		s.UniqueItems || s.Contains != nil || s.MinContains != nil || s.MaxContains != nil || s.Items != nil ||
		s.AdditionalItems != nil || s.PrefixItems != nil || s.UnevaluatedItems != nil ||
		s.ContentMediaType != nil || s.ContentSchema != nil ||
		s.ExclusiveMaximum != nil || s.ExclusiveMinimum != nil || s.MultipleOf != nil || len(s.Extensions) > 0 {
		return nil, false
	}
	n := &fastNode{types: tAny, minLen: -1, maxLen: -1, maxItems: -1, pattern: s.Pattern, content: s.ContentEncoding}
	if s.Types != nil && !s.Types.IsEmpty() {
		n.types = 0
		for _, t := range s.Types.ToStrings() {
			n.types |= map[string]types{"null": tNull, "boolean": tBoolean, "number": tNumber, "integer": tInteger, "string": tString, "array": tArray, "object": tObject}[t]
		}
	}
	if s.Const != nil {
		str, ok := (*s.Const).(string)
		if !ok {
			return nil, false
		}
		n.enum = []string{str}
	}
	if s.Enum != nil {
		if n.enum != nil {
			return nil, false
		}
		n.enum = []string{}
		for _, v := range s.Enum.Values {
			str, ok := v.(string)
			if !ok {
				return nil, false
			}
			n.enum = append(n.enum, str)
		}
	}
	if s.Format != nil {
		if s.Format.Name == "regex" || s.Format.Validate == nil {
			return nil, false
		}
		n.format = s.Format
	}
	if s.MinLength != nil {
		n.minLen = *s.MinLength
	}
	if s.MaxLength != nil {
		n.maxLen = *s.MaxLength
	}
	if p, ok := s.Pattern.(*bytepattern.Pattern); ok {
		n.bytesPattern = p
	}
	if s.Minimum != nil {
		b, ok := ratBound(s.Minimum)
		if !ok {
			return nil, false
		}
		n.hasMin, n.min = true, b
	}
	if s.Maximum != nil {
		b, ok := ratBound(s.Maximum)
		if !ok {
			return nil, false
		}
		n.hasMax, n.max = true, b
	}
	if len(s.Properties) > 0 || len(s.Required) > 0 {
		n.names = make(map[string]int)
		add := func(name string) int {
			bit, ok := n.names[name]
			if !ok {
				bit = len(n.props)
				n.names[name] = bit
				n.props = append(n.props, nil)
				n.declared = append(n.declared, false)
			}
			return bit
		}
		for name, ps := range s.Properties {
			c, ok := compileFast(ps)
			if !ok {
				return nil, false
			}
			bit := add(name)
			n.props[bit], n.declared[bit] = c, true
		}
		for _, name := range s.Required {
			n.required |= 1 << add(name)
		}
		if len(n.props) > 64 {
			return nil, false
		}
	}
	switch a := s.AdditionalProperties.(type) {
	case nil:
	case bool:
		n.forbidExtra = !a
	case *jsonschema.Schema:
		c, ok := compileFast(a)
		if !ok {
			return nil, false
		}
		n.extra = c
	default:
		return nil, false
	}
	if s.MinItems != nil {
		n.minItems = *s.MinItems
	}
	if s.MaxItems != nil {
		n.maxItems = *s.MaxItems
	}
	if s.Items2020 != nil {
		c, ok := compileFast(s.Items2020)
		if !ok {
			return nil, false
		}
		n.items = c
	}
	return n, true
}

// maxDepth is the deepest nesting the fast path walks; deeper values go
// to the library.
const maxDepth = 64

// fastValid reports whether value is surely a single JSON value valid
// against n. False means "not proven": the library decides.
func fastValid(n *fastNode, value []byte) bool {
	w := walker{b: value}
	w.space()
	if !w.value(n, 0) {
		return false
	}
	w.space()
	return w.i == len(w.b)
}

type walker struct {
	b []byte
	i int
}

func (w *walker) space() {
	for w.i < len(w.b) {
		switch w.b[w.i] {
		case ' ', '\t', '\n', '\r':
			w.i++
		default:
			return
		}
	}
}

func (w *walker) value(n *fastNode, depth int) bool {
	if w.i >= len(w.b) || depth > maxDepth {
		return false
	}
	if n != nil && n.format != nil && w.b[w.i] != '"' {
		return false // a format on something else than a string: the library's
	}
	switch c := w.b[w.i]; {
	case c == '{':
		return w.object(n, depth)
	case c == '[':
		return w.array(n, depth)
	case c == '"':
		raw, plain, ok := w.str()
		return ok && (n == nil || n.str(raw, plain))
	case c == 't':
		return w.literal("true") && (n == nil || n.types&tBoolean != 0 && n.enum == nil)
	case c == 'f':
		return w.literal("false") && (n == nil || n.types&tBoolean != 0 && n.enum == nil)
	case c == 'n':
		return w.literal("null") && (n == nil || n.types&tNull != 0 && n.enum == nil)
	case c == '-' || c >= '0' && c <= '9':
		b, integer, ok := w.number()
		return ok && (n == nil || n.number(b, integer))
	}
	return false
}

func (w *walker) literal(lit string) bool {
	if len(w.b)-w.i < len(lit) || string(w.b[w.i:w.i+len(lit)]) != lit {
		return false
	}
	w.i += len(lit)
	return true
}

// str reads a string; raw is its content between the quotes, plain
// whether it has no escape (so raw is the string).
func (w *walker) str() (raw []byte, plain, ok bool) {
	w.i++ // the quote
	start := w.i
	plain = true
	for w.i < len(w.b) {
		c := w.b[w.i]
		switch {
		case c == '"':
			raw = w.b[start:w.i]
			w.i++
			return raw, plain, true
		case c < 0x20:
			return nil, false, false
		case c == '\\':
			plain = false
			if w.i+1 >= len(w.b) {
				return nil, false, false
			}
			switch w.b[w.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				w.i += 2
			case 'u':
				if w.i+6 > len(w.b) {
					return nil, false, false
				}
				for _, h := range w.b[w.i+2 : w.i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return nil, false, false
					}
				}
				w.i += 6
			default:
				return nil, false, false
			}
		default:
			w.i++
		}
	}
	return nil, false, false
}

// number reads a number; integer says it is written as one (no fraction
// or exponent), b is then its value if it fits.
func (w *walker) number() (b bound, integer, ok bool) {
	fits := true
	if w.b[w.i] == '-' {
		b.neg = true
		w.i++
	}
	switch {
	case w.i < len(w.b) && w.b[w.i] == '0':
		w.i++
	case w.i < len(w.b) && w.b[w.i] >= '1' && w.b[w.i] <= '9':
		for w.i < len(w.b) && w.b[w.i] >= '0' && w.b[w.i] <= '9' {
			d := uint64(w.b[w.i] - '0')
			if b.mag > (^uint64(0)-d)/10 {
				fits = false
			}
			b.mag = b.mag*10 + d
			w.i++
		}
	default:
		return b, false, false
	}
	integer = true
	if w.i < len(w.b) && w.b[w.i] == '.' {
		integer = false
		w.i++
		if !w.digits() {
			return b, false, false
		}
	}
	if w.i < len(w.b) && (w.b[w.i] == 'e' || w.b[w.i] == 'E') {
		integer = false
		w.i++
		if w.i < len(w.b) && (w.b[w.i] == '+' || w.b[w.i] == '-') {
			w.i++
		}
		if !w.digits() {
			return b, false, false
		}
	}
	// A number too big for the bounds is left to the library.
	return b, integer && fits, true
}

func (w *walker) digits() bool {
	start := w.i
	for w.i < len(w.b) && w.b[w.i] >= '0' && w.b[w.i] <= '9' {
		w.i++
	}
	return w.i > start
}

func (n *fastNode) number(b bound, integer bool) bool {
	switch {
	case n.enum != nil:
		return false
	case n.types&tNumber == 0 && (n.types&tInteger == 0 || !integer):
		return false
	case (n.hasMin || n.hasMax) && !integer:
		return false
	case n.hasMin && b.less(n.min), n.hasMax && n.max.less(b):
		return false
	}
	return true
}

func (n *fastNode) str(raw []byte, plain bool) bool {
	if n.types&tString == 0 {
		return false
	}
	if n.enum == nil && n.format == nil && n.minLen < 0 && n.maxLen < 0 && n.pattern == nil && n.content == nil {
		return true // any string
	}
	if !plain || !utf8.Valid(raw) {
		return false // the library decodes it
	}
	if n.minLen >= 0 || n.maxLen >= 0 {
		l := utf8.RuneCount(raw)
		if n.minLen >= 0 && l < n.minLen || n.maxLen >= 0 && l > n.maxLen {
			return false
		}
	}
	if n.bytesPattern != nil {
		if !n.bytesPattern.Match(raw) {
			return false
		}
	} else if n.pattern != nil && !n.pattern.MatchString(string(raw)) {
		return false
	}
	if n.enum != nil {
		found := false
		for _, e := range n.enum {
			if e == string(raw) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if n.format != nil && n.format.Validate(string(raw)) != nil {
		return false
	}
	if n.content != nil {
		if _, err := n.content.Decode(string(raw)); err != nil {
			return false
		}
	}
	return true
}

func (w *walker) object(n *fastNode, depth int) bool {
	if n != nil && (n.types&tObject == 0 || n.enum != nil) {
		return false
	}
	w.i++ // {
	var seen uint64
	w.space()
	if w.i < len(w.b) && w.b[w.i] == '}' {
		w.i++
		return n == nil || n.required == 0
	}
	for {
		w.space()
		if w.i >= len(w.b) || w.b[w.i] != '"' {
			return false
		}
		key, plain, ok := w.str()
		if !ok || !plain && n != nil {
			return false // an escaped key: the library decodes it
		}
		w.space()
		if w.i >= len(w.b) || w.b[w.i] != ':' {
			return false
		}
		w.i++
		w.space()
		var child *fastNode
		if n != nil {
			bit, named := n.names[string(key)]
			if named {
				seen |= 1 << bit
			}
			switch {
			case named && n.declared[bit]:
				child = n.props[bit]
			case n.forbidExtra:
				return false
			default:
				child = n.extra
			}
		}
		if !w.value(child, depth+1) {
			return false
		}
		w.space()
		if w.i >= len(w.b) {
			return false
		}
		switch w.b[w.i] {
		case ',':
			w.i++
		case '}':
			w.i++
			return n == nil || seen&n.required == n.required
		default:
			return false
		}
	}
}

func (w *walker) array(n *fastNode, depth int) bool {
	if n != nil && (n.types&tArray == 0 || n.enum != nil) {
		return false
	}
	w.i++ // [
	var items *fastNode
	if n != nil {
		items = n.items
	}
	count := 0
	w.space()
	if w.i < len(w.b) && w.b[w.i] == ']' {
		w.i++
	} else {
		for {
			w.space()
			if !w.value(items, depth+1) {
				return false
			}
			count++
			w.space()
			if w.i >= len(w.b) {
				return false
			}
			if w.b[w.i] == ']' {
				w.i++
				break
			}
			if w.b[w.i] != ',' {
				return false
			}
			w.i++
		}
	}
	return n == nil || count >= n.minItems && (n.maxItems < 0 || count <= n.maxItems)
}
