package contentkeys_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
	"github.com/parley-chat/parley/schemas/schemacheck"
)

func generic(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}

// personalStrings are the personal content of the fixtures of the
// sealable types (schemas/testdata).
var personalStrings = []string{"Team Parley", "Secret plans", "Parley core team", "the whiteboard", "photo.jpg", "agreed, shipping Friday"}

// Every published type with personal content, event or command, seals
// into an envelope whose data is valid against the type's schema and
// holds none of it, and opens back to the record's value; after the
// owner's erasure it opens to the data.
func TestSealEventEveryPersonalType(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := keyring(t, store(t), kek(t))
	v, err := schemacheck.New()
	if err != nil {
		t.Fatal(err)
	}
	sealed := 0
	for _, typ := range schemas.Types() {
		value, err := os.ReadFile(filepath.Join("..", "..", "schemas", "testdata", typ+".json"))
		if err != nil {
			t.Fatal(err)
		}
		attrs := kafkalog.NewAttributes(typ, "g_d0e7b0f3eaa4eee91387e6aeff73f2d0", time.Now())
		env, ok, err := r.SealEvent(ctx, attrs, value)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if ok != contentkeys.Sealable(typ) {
			t.Errorf("%s: sealed %v, Sealable %v", typ, ok, contentkeys.Sealable(typ))
		}
		if !ok {
			if !bytes.Equal(env, value) {
				t.Errorf("%s: a type without personal content was changed", typ)
			}
			continue
		}
		sealed++
		for _, s := range personalStrings {
			if bytes.Contains(env, []byte(s)) {
				t.Errorf("%s: the envelope holds %q in clear: %s", typ, s, env)
			}
		}
		data, err := contentkeys.Redact(env)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Validate(typ, data); err != nil {
			t.Errorf("%s: the envelope's data breaks the type's schema: %v", typ, err)
		}
		if _, err := schemas.Decode(typ, data); err != nil {
			t.Errorf("%s: the envelope's data does not decode: %v", typ, err)
		}
		opened, err := r.OpenEvent(ctx, attrs, env)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if !reflect.DeepEqual(generic(t, opened), generic(t, value)) {
			t.Errorf("%s: opened\n%s\nwant\n%s", typ, opened, value)
		}
		other := attrs
		other.ID = "another-event"
		if _, err := r.OpenEvent(ctx, other, env); !errors.Is(err, contentkeys.ErrUnreadable) {
			t.Errorf("%s: the envelope opened for another event: %v", typ, err)
		}
	}
	if sealed != 14 {
		t.Errorf("%d types sealed; want 14 (messages v1-v3, edits, creations v1 and v2, renames: the events and their commands)", sealed)
	}

	value, _ := os.ReadFile(filepath.Join("..", "..", "schemas", "testdata", schemas.TypeMessageSentV3+".json"))
	attrs := kafkalog.NewAttributes(schemas.TypeMessageSentV3, "g_1", time.Now())
	env, _, err := r.SealEvent(ctx, attrs, value)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Erase(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	got, err := r.OpenEvent(ctx, attrs, env)
	if !errors.Is(err, contentkeys.ErrUnreadable) {
		t.Fatalf("OpenEvent after erasure: %v; want ErrUnreadable", err)
	}
	var m schemas.MessageSentV3
	if err := json.Unmarshal(got, &m); err != nil || m.Body != "" || m.Attachments[0].Name != contentkeys.Redacted || m.SenderID != "bob" || m.Seq != 44 {
		t.Errorf("after erasure: %+v, %v; want the metadata with the body blank and the file name redacted", m, err)
	}
	if _, err := r.OpenEvent(ctx, attrs, value); !errors.Is(err, contentkeys.ErrNotSealed) {
		t.Errorf("OpenEvent of a plain event: %v; want ErrNotSealed", err)
	}
}
