package schemacheck

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/parley-chat/parley/schemas"
)

// FuzzFastPathAgreesWithLibrary mutates the fixture of every type with a
// fast path and holds the fast path to the one promise it makes: what
// it accepts, the library accepts too.
func FuzzFastPathAgreesWithLibrary(f *testing.F) {
	v, err := New()
	if err != nil {
		f.Fatal(err)
	}
	var types []string
	for _, typ := range schemas.Types() {
		if v.fast[typ] == nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("..", "testdata", typ+".json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(len(types)), raw)
		types = append(types, typ)
	}
	f.Fuzz(func(t *testing.T, which uint8, value []byte) {
		typ := types[int(which)%len(types)]
		if !fastValid(v.fast[typ], value) {
			return
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(value))
		if err == nil {
			err = v.byType[typ].Validate(inst)
		}
		if err != nil {
			t.Fatalf("%s: the fast path accepts what the library rejects (%v):\n%s", typ, err, value)
		}
	})
}
