package schemacheck_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/parley-chat/parley/schemas"
	"github.com/parley-chat/parley/schemas/schemacheck"
)

func fixture(t testing.TB, ceType string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", ceType+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidateFixtures(t *testing.T) {
	t.Parallel()
	v, err := schemacheck.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range schemas.Types() {
		if err := v.Validate(typ, fixture(t, typ)); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	t.Parallel()
	v, err := schemacheck.New()
	if err != nil {
		t.Fatal(err)
	}
	sent := fixture(t, schemas.TypeMessageSent)

	err = v.Validate("chat.nope.v1", sent)
	if !errors.Is(err, schemas.ErrUnknownType) {
		t.Errorf("unknown type: got %v, want ErrUnknownType", err)
	}
	for name, value := range map[string]string{
		"not json":       `{"seq":`,
		"trailing value": string(sent) + `{}`,
		"empty":          ``,
		"array":          `[]`,
	} {
		if err := v.Validate(schemas.TypeMessageSent, []byte(value)); !errors.Is(err, schemas.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
	// A fixture of one type is not a value of another.
	err = v.Validate(schemas.TypeSendMessage, sent)
	var ve *jsonschema.ValidationError
	if !errors.Is(err, schemas.ErrInvalid) || !errors.As(err, &ve) {
		t.Errorf("sent as send: got %v, want ErrInvalid wrapping a *jsonschema.ValidationError", err)
	}
}

// TestDateTimeFormatAsserted guards the AssertFormat option: draft 2020-12
// treats format as an annotation unless told otherwise.
func TestDateTimeFormatAsserted(t *testing.T) {
	t.Parallel()
	v, err := schemacheck.New()
	if err != nil {
		t.Fatal(err)
	}
	value := `{"command_id":"c-1","user_id":"alice","conversation_id":"d_1","body":"hi","issued_at":"yesterday"}`
	if err := v.Validate(schemas.TypeSendMessage, []byte(value)); err == nil {
		t.Error("issued_at \"yesterday\" accepted; format assertions are off")
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	v, err := schemacheck.New()
	if err != nil {
		t.Fatal(err)
	}
	types := schemas.Types()
	values := make([][]byte, len(types))
	for i, typ := range types {
		values[i] = fixture(t, typ)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16*len(types))
	for g := range 8 {
		wg.Go(func() {
			for i := range types {
				j := (i + g) % len(types)
				if err := v.Validate(types[j], values[j]); err != nil {
					errs <- fmt.Errorf("%s: %w", types[j], err)
				}
				if err := v.Validate(types[j], []byte(`{}`)); err == nil {
					errs <- fmt.Errorf("%s: empty object accepted", types[j])
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
