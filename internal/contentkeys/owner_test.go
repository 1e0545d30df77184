// Tests of Owner: the owner of every sealed type's example, and values
// that name none.
package contentkeys_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/schemas"
)

// TestOwnerOfEverySealedType: every type with personal content names its
// owner in its example (schemas/testdata); the others name none.
func TestOwnerOfEverySealedType(t *testing.T) {
	t.Parallel()
	sealable := 0
	for _, typ := range schemas.Types() {
		value, err := os.ReadFile(filepath.Join("..", "..", "schemas", "testdata", typ+".json"))
		if err != nil {
			t.Fatal(err)
		}
		owner, ok := contentkeys.Owner(typ, value)
		if !contentkeys.Sealable(typ) {
			if ok || owner != "" {
				t.Errorf("%s: Owner = %q, %v for a type without personal content", typ, owner, ok)
			}
			continue
		}
		sealable++
		if !ok || owner == "" {
			t.Errorf("%s: Owner = %q, %v, want the example's owner", typ, owner, ok)
		}
	}
	if sealable == 0 {
		t.Fatal("no sealable type among schemas.Types()")
	}
}

func TestOwnerOfValuesNamingNone(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, typ, value, want string
		ok                     bool
	}{
		{"owner", schemas.TypeMessageSentV3, `{"sender_id":"bob","user_id":7,"body":"x"}`, "bob", true},
		{"the type's field only", schemas.TypeMessageEdited, `{"sender_id":"bob","user_id":"carol"}`, "carol", true},
		{"absent", schemas.TypeMessageSentV3, `{"user_id":"bob"}`, "", false},
		{"empty", schemas.TypeMessageSentV3, `{"sender_id":""}`, "", false},
		{"null", schemas.TypeMessageSentV3, `{"sender_id":null}`, "", false},
		{"a number", schemas.TypeMessageSentV3, `{"sender_id":7}`, "", false},
		{"not JSON", schemas.TypeMessageSentV3, `{"sender_id":"bob"`, "", false},
		{"not an object", schemas.TypeMessageSentV3, `["bob"]`, "", false},
		{"created_by", schemas.TypeConversationCreated, `{"created_by":"alice","title":"t"}`, "alice", true},
	} {
		owner, ok := contentkeys.Owner(c.typ, []byte(c.value))
		if owner != c.want || ok != c.ok {
			t.Errorf("%s: Owner(%s) = %q, %v, want %q, %v", c.name, c.value, owner, ok, c.want, c.ok)
		}
	}
}
