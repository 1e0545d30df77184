// Package schemacheck validates record values against Parley's JSON
// Schemas (schemas/json/<ce_type>.json, draft 2020-12), with format
// assertions on (date-time is checked, not just annotated). Tests across
// the repository use it to prove that what they write or read matches the
// public contract.
package schemacheck

import (
	"bytes"
	"fmt"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/parley-chat/parley/internal/bytepattern"
	"github.com/parley-chat/parley/schemas"
)

// Validator holds the compiled JSON Schema of every type in
// schemas.Types(). It is immutable once built, so a Validator is safe for
// concurrent use by multiple goroutines.
//
// Patterns that bytepattern can match are matched by it instead of
// regexp, with the same result; and a type whose schema uses only the
// keywords of the fast path (fastpath.go) has its values proven valid in
// one walk over their bytes, the library deciding only the values the
// walk cannot prove valid.
type Validator struct {
	byType map[string]*jsonschema.Schema
	fast   map[string]*fastNode // types with a fast path
}

// noLoader refuses to fetch anything: every schema is self-contained and
// embedded, so a reference to anything else is a bug, not a download.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schemacheck: refusing to load external schema %s", url)
}

// New compiles the JSON Schema of every type in schemas.Types().
func New() (*Validator, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	c.UseRegexpEngine(func(expr string) (jsonschema.Regexp, error) { return bytepattern.CompileOrRegexp(expr) })
	types := schemas.Types()
	for _, t := range types {
		raw, err := schemas.JSONSchema(t)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("schemacheck: parsing schema of %s: %w", t, err)
		}
		if err := c.AddResource(schemaURL(t), doc); err != nil {
			return nil, fmt.Errorf("schemacheck: adding schema of %s: %w", t, err)
		}
	}
	v := &Validator{byType: make(map[string]*jsonschema.Schema, len(types)), fast: make(map[string]*fastNode)}
	for _, t := range types {
		s, err := c.Compile(schemaURL(t))
		if err != nil {
			return nil, fmt.Errorf("schemacheck: compiling schema of %s: %w", t, err)
		}
		v.byType[t] = s
		if f, ok := compileFast(s); ok && f != nil {
			v.fast[t] = f
		}
	}
	return v, nil
}

func schemaURL(ceType string) string { return schemas.SchemaBaseURL + ceType + ".json" }

// Validate checks value, a record value (JSON), against the schema of
// ceType. An unknown type gives an error wrapping schemas.ErrUnknownType;
// a value that is not a single JSON value or breaks the schema gives an
// error wrapping schemas.ErrInvalid (for a schema violation, also a
// *jsonschema.ValidationError that says where).
func (v *Validator) Validate(ceType string, value []byte) error {
	s, ok := v.byType[ceType]
	if !ok {
		return fmt.Errorf("schemacheck: %w: %q", schemas.ErrUnknownType, ceType)
	}
	if f := v.fast[ceType]; f != nil && fastValid(f, value) {
		return nil
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(value))
	if err != nil {
		return fmt.Errorf("schemacheck: %w: %s: not JSON: %w", schemas.ErrInvalid, ceType, err)
	}
	if err := s.Validate(inst); err != nil {
		return fmt.Errorf("schemacheck: %w: %s: %w", schemas.ErrInvalid, ceType, err)
	}
	return nil
}
