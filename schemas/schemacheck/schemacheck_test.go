package schemacheck_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// TestPatternsAsserted: a value breaking a field's pattern is rejected,
// whether bytepattern matches the pattern (the ids, the upload id, the
// SHA-256, the media type) or regexp does (the command type), and the
// error says it was the pattern.
func TestPatternsAsserted(t *testing.T) {
	t.Parallel()
	v, err := schemacheck.New()
	if err != nil {
		t.Fatal(err)
	}
	sent := string(fixture(t, schemas.TypeMessageSentV3))
	rejected := string(fixture(t, schemas.TypeCommandRejected))
	for name, c := range map[string]struct{ typ, from, to, base string }{
		"sender with a space":       {schemas.TypeMessageSentV3, `"bob"`, `"bo b"`, sent},
		"sender too long":           {schemas.TypeMessageSentV3, `"bob"`, `"` + strings.Repeat("b", 129) + `"`, sent},
		"conversation not ASCII":    {schemas.TypeMessageSentV3, `"g_d0e7b0f3eaa4eee91387e6aeff73f2d0"`, `"g_é"`, sent},
		"upload id one digit short": {schemas.TypeMessageSentV3, `"u_8f14e45fceea167a5a36dedd4bea2543"`, `"u_8f14e45fceea167a5a36dedd4bea254"`, sent},
		"upper-case sha256":         {schemas.TypeMessageSentV3, `"9f86d081`, `"9F86D081`, sent},
		"media type without slash":  {schemas.TypeMessageSentV3, `"image/jpeg"`, `"imagejpeg"`, sent},
		"command id with a slash":   {schemas.TypeMessageSentV3, `"c-01HZX5A2"`, `"c/01HZX5A2"`, sent},
		"command type unversioned":  {schemas.TypeCommandRejected, `"chat.message.send.v1"`, `"chat.message.send"`, rejected},
	} {
		value := strings.Replace(c.base, c.from, c.to, 1)
		if value == c.base {
			t.Fatalf("%s: %s not in the fixture", name, c.from)
		}
		err := v.Validate(c.typ, []byte(value))
		var ve *jsonschema.ValidationError
		if !errors.Is(err, schemas.ErrInvalid) || !errors.As(err, &ve) || !strings.Contains(err.Error(), "does not match pattern") {
			t.Errorf("%s: got %v; want ErrInvalid for the pattern", name, err)
		}
	}
}
