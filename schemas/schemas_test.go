package schemas_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	yaml "go.yaml.in/yaml/v3"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
	"github.com/parley-chat/parley/schemas/contractcheck"
	"github.com/parley-chat/parley/schemas/schemacheck"
)

// ---------------------------------------------------------------------------
// helpers

var newValidator = sync.OnceValues(schemacheck.New)

func validator(t testing.TB) *schemacheck.Validator {
	t.Helper()
	v, err := newValidator()
	if err != nil {
		t.Fatalf("schemacheck.New: %v", err)
	}
	return v
}

func fixture(t testing.TB, ceType string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", ceType+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// generic decodes JSON keeping numbers exact.
func generic(t testing.TB, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

func object(t testing.TB, b []byte) map[string]any {
	t.Helper()
	m, ok := generic(t, b).(map[string]any)
	if !ok {
		t.Fatalf("%s is not a JSON object", b)
	}
	return m
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goTypes maps every ce_type to the Go type Decode returns.
var goTypes = map[string]reflect.Type{
	schemas.TypeCreateConversation:            reflect.TypeFor[*schemas.CreateConversationV1](),
	schemas.TypeSendMessage:                   reflect.TypeFor[*schemas.SendMessageV1](),
	schemas.TypeConversationCreated:           reflect.TypeFor[*schemas.ConversationCreatedV1](),
	schemas.TypeMessageSent:                   reflect.TypeFor[*schemas.MessageSentV1](),
	schemas.TypeCommandRejected:               reflect.TypeFor[*schemas.CommandRejectedV1](),
	schemas.TypeCommandDuplicate:              reflect.TypeFor[*schemas.CommandDuplicateV1](),
	schemas.TypeTyping:                        reflect.TypeFor[*schemas.TypingV1](),
	schemas.TypeLeaveConversation:             reflect.TypeFor[*schemas.LeaveConversationV1](),
	schemas.TypeMemberLeft:                    reflect.TypeFor[*schemas.MemberLeftV1](),
	schemas.TypePresence:                      reflect.TypeFor[*schemas.PresenceV1](),
	"chat.message.send.v2":                    reflect.TypeFor[*schemas.SendMessageV2](),
	"chat.message.sent.v2":                    reflect.TypeFor[*schemas.MessageSentV2](),
	"chat.message.send.v3":                    reflect.TypeFor[*schemas.SendMessageV3](),
	"chat.message.sent.v3":                    reflect.TypeFor[*schemas.MessageSentV3](),
	"chat.thumbnail.add.v1":                   reflect.TypeFor[*schemas.AddThumbnailV1](),
	"chat.thumbnail.added.v1":                 reflect.TypeFor[*schemas.ThumbnailAddedV1](),
	"chat.members.add.v1":                     reflect.TypeFor[*schemas.AddMembersV1](),
	"chat.members.added.v1":                   reflect.TypeFor[*schemas.MembersAddedV1](),
	"chat.member.remove.v1":                   reflect.TypeFor[*schemas.RemoveMemberV1](),
	"chat.member.removed.v1":                  reflect.TypeFor[*schemas.MemberRemovedV1](),
	"chat.member.role.set.v1":                 reflect.TypeFor[*schemas.SetRoleV1](),
	"chat.member.roles.changed.v1":            reflect.TypeFor[*schemas.RolesChangedV1](),
	"chat.conversation.rename.v1":             reflect.TypeFor[*schemas.RenameV1](),
	"chat.conversation.renamed.v1":            reflect.TypeFor[*schemas.RenamedV1](),
	"chat.conversation.archive.v1":            reflect.TypeFor[*schemas.ArchiveV1](),
	"chat.conversation.archived.v1":           reflect.TypeFor[*schemas.ArchivedV1](),
	"chat.conversation.block.v1":              reflect.TypeFor[*schemas.BlockV1](),
	"chat.conversation.blocked.v1":            reflect.TypeFor[*schemas.BlockedV1](),
	"chat.message.edit.v1":                    reflect.TypeFor[*schemas.EditMessageV1](),
	"chat.message.edited.v1":                  reflect.TypeFor[*schemas.MessageEditedV1](),
	"chat.message.delete.v1":                  reflect.TypeFor[*schemas.DeleteMessageV1](),
	"chat.message.deleted.v1":                 reflect.TypeFor[*schemas.MessageDeletedV1](),
	"chat.reaction.add.v1":                    reflect.TypeFor[*schemas.ReactV1](),
	"chat.reaction.added.v1":                  reflect.TypeFor[*schemas.ReactionV1](),
	"chat.reaction.remove.v1":                 reflect.TypeFor[*schemas.ReactV1](),
	"chat.reaction.removed.v1":                reflect.TypeFor[*schemas.ReactionV1](),
	"chat.receipt.v1":                         reflect.TypeFor[*schemas.ReceiptV1](),
	"chat.push.device.registered.v1":          reflect.TypeFor[*schemas.DeviceRegisteredV1](),
	"chat.push.device.removed.v1":             reflect.TypeFor[*schemas.DeviceRemovedV1](),
	"chat.push.conversation.notifications.v1": reflect.TypeFor[*schemas.ConversationNotificationsV1](),
	"chat.push.user.notifications.v1":         reflect.TypeFor[*schemas.UserNotificationsV1](),
	"chat.conversation.create.v2":             reflect.TypeFor[*schemas.CreateConversationV2](),
	"chat.conversation.created.v2":            reflect.TypeFor[*schemas.ConversationCreatedV2](),
	"chat.mls.commit.v1":                      reflect.TypeFor[*schemas.MLSCommitV1](),
	"chat.mls.committed.v1":                   reflect.TypeFor[*schemas.MLSCommittedV1](),
	"chat.mls.propose.v1":                     reflect.TypeFor[*schemas.MLSProposeV1](),
	"chat.mls.proposed.v1":                    reflect.TypeFor[*schemas.MLSProposedV1](),
	"chat.mls.send.v1":                        reflect.TypeFor[*schemas.MLSSendV1](),
	"chat.mls.message.sent.v1":                reflect.TypeFor[*schemas.MLSMessageSentV1](),
	"chat.device.added.v1":                    reflect.TypeFor[*schemas.DeviceChangedV1](),
	"chat.device.removed.v1":                  reflect.TypeFor[*schemas.DeviceChangedV1](),
	"chat.user.erased.v1":                     reflect.TypeFor[*schemas.UserErasedV1](),
}

// topicOf maps every ce_type to the topic its records are on.
var topicOf = map[string]string{
	schemas.TypeCreateConversation:            schemas.TopicCommands,
	schemas.TypeSendMessage:                   schemas.TopicCommands,
	schemas.TypeConversationCreated:           schemas.TopicEvents,
	schemas.TypeMessageSent:                   schemas.TopicEvents,
	schemas.TypeCommandRejected:               schemas.TopicReplies,
	schemas.TypeCommandDuplicate:              schemas.TopicReplies,
	schemas.TypeTyping:                        schemas.TopicEphemeral,
	schemas.TypeLeaveConversation:             schemas.TopicCommands,
	schemas.TypeMemberLeft:                    schemas.TopicEvents,
	schemas.TypePresence:                      schemas.TopicPresence,
	"chat.message.send.v2":                    schemas.TopicCommands,
	"chat.message.sent.v2":                    schemas.TopicEvents,
	"chat.message.send.v3":                    schemas.TopicCommands,
	"chat.message.sent.v3":                    schemas.TopicEvents,
	"chat.thumbnail.add.v1":                   schemas.TopicCommands,
	"chat.thumbnail.added.v1":                 schemas.TopicEvents,
	"chat.members.add.v1":                     schemas.TopicCommands,
	"chat.members.added.v1":                   schemas.TopicEvents,
	"chat.member.remove.v1":                   schemas.TopicCommands,
	"chat.member.removed.v1":                  schemas.TopicEvents,
	"chat.member.role.set.v1":                 schemas.TopicCommands,
	"chat.member.roles.changed.v1":            schemas.TopicEvents,
	"chat.conversation.rename.v1":             schemas.TopicCommands,
	"chat.conversation.renamed.v1":            schemas.TopicEvents,
	"chat.conversation.archive.v1":            schemas.TopicCommands,
	"chat.conversation.archived.v1":           schemas.TopicEvents,
	"chat.conversation.block.v1":              schemas.TopicCommands,
	"chat.conversation.blocked.v1":            schemas.TopicEvents,
	"chat.message.edit.v1":                    schemas.TopicCommands,
	"chat.message.edited.v1":                  schemas.TopicEvents,
	"chat.message.delete.v1":                  schemas.TopicCommands,
	"chat.message.deleted.v1":                 schemas.TopicEvents,
	"chat.reaction.add.v1":                    schemas.TopicCommands,
	"chat.reaction.added.v1":                  schemas.TopicEvents,
	"chat.reaction.remove.v1":                 schemas.TopicCommands,
	"chat.reaction.removed.v1":                schemas.TopicEvents,
	"chat.receipt.v1":                         schemas.TopicReceipts,
	"chat.push.device.registered.v1":          schemas.TopicPush,
	"chat.push.device.removed.v1":             schemas.TopicPush,
	"chat.push.conversation.notifications.v1": schemas.TopicPush,
	"chat.push.user.notifications.v1":         schemas.TopicPush,
	"chat.conversation.create.v2":             schemas.TopicCommands,
	"chat.conversation.created.v2":            schemas.TopicEvents,
	"chat.mls.commit.v1":                      schemas.TopicCommands,
	"chat.mls.committed.v1":                   schemas.TopicEvents,
	"chat.mls.propose.v1":                     schemas.TopicCommands,
	"chat.mls.proposed.v1":                    schemas.TopicEvents,
	"chat.mls.send.v1":                        schemas.TopicCommands,
	"chat.mls.message.sent.v1":                schemas.TopicEvents,
	"chat.device.added.v1":                    schemas.TopicDevices,
	"chat.device.removed.v1":                  schemas.TopicDevices,
	"chat.user.erased.v1":                     schemas.TopicAudit,
}

// ---------------------------------------------------------------------------
// types, files and schema documents

func TestTypes(t *testing.T) {
	t.Parallel()
	want := slices.Sorted(maps.Keys(goTypes))
	got := schemas.Types()
	if !slices.Equal(got, want) {
		t.Fatalf("Types() = %v, want %v", got, want)
	}
	if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Errorf("Types() not sorted and unique: %v", got)
	}
	got[0] = "mutated"
	if schemas.Types()[0] == "mutated" {
		t.Error("Types() returns shared state")
	}
	for _, typ := range want {
		if _, err := schemas.Decode(typ, []byte(`{}`)); errors.Is(err, schemas.ErrUnknownType) || !errors.Is(err, schemas.ErrInvalid) {
			t.Errorf("Decode(%s, {}) = %v, want ErrInvalid", typ, err)
		}
		if _, ok := topicOf[typ]; !ok {
			t.Errorf("%s: no topic in this test's table", typ)
		}
	}
	for _, typ := range []string{"", "chat.message.sent.v9", "../embed.go", "json/chat.message.sent.v1"} {
		if _, err := schemas.Decode(typ, fixture(t, schemas.TypeMessageSent)); !errors.Is(err, schemas.ErrUnknownType) {
			t.Errorf("Decode(%q) = %v, want ErrUnknownType", typ, err)
		}
		if _, err := schemas.JSONSchema(typ); !errors.Is(err, schemas.ErrUnknownType) {
			t.Errorf("JSONSchema(%q) = %v, want ErrUnknownType", typ, err)
		}
	}
}

func jsonFilesIn(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && e.Name() == "fuzz" {
			continue // the fuzzing corpus of go test
		}
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			t.Errorf("%s/%s: not a .json file", dir, e.Name())
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func TestFilesMatchTypes(t *testing.T) {
	t.Parallel()
	types := schemas.Types()
	if got := jsonFilesIn(t, "json"); !slices.Equal(got, types) {
		t.Errorf("schemas in json/ = %v, want one per type %v", got, types)
	}
	if got := jsonFilesIn(t, "testdata"); !slices.Equal(got, types) {
		t.Errorf("fixtures in testdata/ = %v, want one per type %v", got, types)
	}
	for _, typ := range types {
		embedded, err := schemas.JSONSchema(typ)
		if err != nil {
			t.Fatal(err)
		}
		onDisk, err := os.ReadFile(filepath.Join("json", typ+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(embedded, onDisk) {
			t.Errorf("%s: embedded schema differs from json/%s.json", typ, typ)
		}
		embedded[0] = 'X'
		if again, _ := schemas.JSONSchema(typ); again[0] == 'X' {
			t.Errorf("%s: JSONSchema returns shared bytes", typ)
		}
	}
}

func TestSchemaDocuments(t *testing.T) {
	t.Parallel()
	for _, typ := range schemas.Types() {
		raw, err := schemas.JSONSchema(typ)
		if err != nil {
			t.Fatal(err)
		}
		s := object(t, raw)
		for key, want := range map[string]any{
			"$schema":              "https://json-schema.org/draft/2020-12/schema",
			"$id":                  schemas.SchemaBaseURL + typ + ".json",
			"title":                typ,
			"type":                 "object",
			"additionalProperties": false,
		} {
			if s[key] != want {
				t.Errorf("%s: %s = %v, want %v", typ, key, s[key], want)
			}
		}
		if d, _ := s["description"].(string); d == "" {
			t.Errorf("%s: no description", typ)
		}
		checkDescribed(t, typ, s)
	}
}

// checkDescribed requires a description on every property, recursively.
func checkDescribed(t *testing.T, path string, s map[string]any) {
	t.Helper()
	props, _ := s["properties"].(map[string]any)
	for name, p := range props {
		pm := p.(map[string]any)
		if d, _ := pm["description"].(string); d == "" {
			t.Errorf("%s.%s: no description", path, name)
		}
		checkDescribed(t, path+"."+name, pm)
		if items, ok := pm["items"].(map[string]any); ok {
			checkDescribed(t, path+"."+name+"[]", items)
		}
	}
	for _, r := range asSlice(s["required"]) {
		if _, ok := props[r.(string)]; !ok {
			t.Errorf("%s: required %q is not a property", path, r)
		}
	}
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// enumsOf lists the values of the Go string types that schemas enumerate.
var enumsOf = map[reflect.Type][]string{
	reflect.TypeFor[schemas.Kind](): {string(schemas.KindDirect), string(schemas.KindGroup)},
	reflect.TypeFor[schemas.Role](): {string(schemas.RoleOwner), string(schemas.RoleAdmin), string(schemas.RoleMember)},
}

// TestSchemaMatchesGoType compares each schema with its Go struct by
// reflection: the same property names, required exactly when the field is
// not omitempty, and JSON types that encoding/json produces for the field.
func TestSchemaMatchesGoType(t *testing.T) {
	t.Parallel()
	for _, typ := range schemas.Types() {
		raw, err := schemas.JSONSchema(typ)
		if err != nil {
			t.Fatal(err)
		}
		compareStruct(t, typ, goTypes[typ].Elem(), object(t, raw))
	}
}

func compareStruct(t *testing.T, path string, rt reflect.Type, s map[string]any) {
	t.Helper()
	if s["type"] != "object" || s["additionalProperties"] != false {
		t.Errorf("%s: want type object with additionalProperties false", path)
	}
	props, _ := s["properties"].(map[string]any)
	required := map[string]bool{}
	for _, r := range asSlice(s["required"]) {
		required[r.(string)] = true
	}
	var fields []string
	for f := range rt.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			t.Errorf("%s: field %s has no JSON name", path, f.Name)
			continue
		}
		fields = append(fields, name)
		fp := path + "." + name
		p, ok := props[name].(map[string]any)
		if !ok {
			t.Errorf("%s: not in the schema", fp)
			continue
		}
		// omitzero omits a zero time.Time, which omitempty does not.
		omitempty := slices.Contains(strings.Split(opts, ","), "omitempty") || slices.Contains(strings.Split(opts, ","), "omitzero")
		if required[name] == omitempty {
			t.Errorf("%s: required=%v but omitempty=%v", fp, required[name], omitempty)
		}
		compareField(t, fp, f.Type, p)
	}
	slices.Sort(fields)
	if got := slices.Sorted(maps.Keys(props)); !slices.Equal(got, fields) {
		t.Errorf("%s: schema properties %v, Go fields %v", path, got, fields)
	}
}

func compareField(t *testing.T, path string, ft reflect.Type, p map[string]any) {
	t.Helper()
	switch {
	case ft == reflect.TypeFor[[]byte]():
		if p["type"] != "string" || p["contentEncoding"] != "base64" {
			t.Errorf("%s: []byte wants type string, contentEncoding base64; got %v", path, p)
		}
	case ft == reflect.TypeFor[time.Time]():
		if p["type"] != "string" || p["format"] != "date-time" {
			t.Errorf("%s: time.Time wants type string, format date-time; got %v", path, p)
		}
	case ft.Kind() == reflect.String:
		if p["type"] != "string" {
			t.Errorf("%s: want type string, got %v", path, p["type"])
		}
		if want, ok := enumsOf[ft]; ok {
			var got []string
			for _, e := range asSlice(p["enum"]) {
				got = append(got, e.(string))
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: enum %v, want %v", path, got, want)
			}
		}
	case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
		compareStruct(t, path, ft.Elem(), p)
	case ft.Kind() == reflect.Struct:
		compareStruct(t, path, ft, p)
	case ft.Kind() == reflect.Bool:
		if p["type"] != "boolean" {
			t.Errorf("%s: want type boolean, got %v", path, p["type"])
		}
	case ft.Kind() == reflect.Uint64:
		if p["type"] != "integer" {
			t.Errorf("%s: want type integer, got %v", path, p["type"])
		}
		if c, ok := p["const"]; ok {
			if c != json.Number("0") {
				t.Errorf("%s: const %v", path, c)
			}
		} else if m, ok := p["minimum"].(json.Number); !ok || strings.HasPrefix(m.String(), "-") {
			t.Errorf("%s: uint64 wants a minimum >= 0, got %v", path, p["minimum"])
		}
	case ft.Kind() == reflect.Slice:
		items, ok := p["items"].(map[string]any)
		if p["type"] != "array" || !ok {
			t.Errorf("%s: want type array with items, got %v", path, p)
			return
		}
		if ft.Elem().Kind() == reflect.Struct {
			compareStruct(t, path+"[]", ft.Elem(), items)
		} else {
			compareField(t, path+"[]", ft.Elem(), items)
		}
	default:
		t.Errorf("%s: Go type %v not covered by this test", path, ft)
	}
}

// ---------------------------------------------------------------------------
// fixtures

func TestFixtures(t *testing.T) {
	t.Parallel()
	v := validator(t)
	for _, typ := range schemas.Types() {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			fx := fixture(t, typ)
			if err := v.Validate(typ, fx); err != nil {
				t.Fatalf("fixture breaks its schema: %v", err)
			}
			got, err := schemas.Decode(typ, fx)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if reflect.TypeOf(got) != goTypes[typ] {
				t.Fatalf("Decode returned %T, want %v", got, goTypes[typ])
			}
			enc := mustJSON(t, got)
			if err := v.Validate(typ, enc); err != nil {
				t.Errorf("Go encoding breaks the schema: %v\n%s", err, enc)
			}
			// Nothing is lost or added by the Go type.
			if a, b := generic(t, fx), generic(t, enc); !reflect.DeepEqual(a, b) {
				t.Errorf("Go round trip changed the value:\nfixture %v\nencoded %v", a, b)
			}
			again, err := schemas.Decode(typ, enc)
			if err != nil {
				t.Fatalf("Decode of the Go encoding: %v", err)
			}
			if enc2 := mustJSON(t, again); !bytes.Equal(enc, enc2) {
				t.Errorf("encoding not stable:\n%s\n%s", enc, enc2)
			}
		})
	}
}

// TestFixtureIDs keeps the fixtures realistic: their ids are the ones the
// id functions derive.
func TestFixtureIDs(t *testing.T) {
	t.Parallel()
	decode := func(typ string) any {
		v, err := schemas.Decode(typ, fixture(t, typ))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	create := decode(schemas.TypeCreateConversation).(*schemas.CreateConversationV1)
	created := decode(schemas.TypeConversationCreated).(*schemas.ConversationCreatedV1)
	sent := decode(schemas.TypeMessageSent).(*schemas.MessageSentV1)
	if want := schemas.GroupConversationID(create.UserID, create.CommandID); create.ConversationID != want {
		t.Errorf("create: conversation %s, want %s", create.ConversationID, want)
	}
	if created.ConversationID != create.ConversationID || created.CommandID != create.CommandID || created.CreatedBy != create.UserID {
		t.Errorf("created does not answer create: %+v", created)
	}
	if want := schemas.DirectConversationID("bob", "alice"); sent.ConversationID != want {
		t.Errorf("sent: conversation %s, want %s", sent.ConversationID, want)
	}
}

// ---------------------------------------------------------------------------
// negative cases

type mutation func(m map[string]any)

func del(key string) mutation        { return func(m map[string]any) { delete(m, key) } }
func set(key string, v any) mutation { return func(m map[string]any) { m[key] = v } }
func num(s string) json.Number       { return json.Number(s) }
func member(i int, f mutation) mutation {
	return func(m map[string]any) { f(m["members"].([]any)[i].(map[string]any)) }
}

func TestInvalidValues(t *testing.T) {
	t.Parallel()
	v := validator(t)
	long := func(n int) string { return strings.Repeat("a", n) }
	const (
		create   = schemas.TypeCreateConversation
		send     = schemas.TypeSendMessage
		created  = schemas.TypeConversationCreated
		sent     = schemas.TypeMessageSent
		rejected = schemas.TypeCommandRejected
		dup      = schemas.TypeCommandDuplicate
	)
	// decodeRejects says whether schemas.Decode refuses the value too; where
	// it does not, the value is well-formed JSON for the Go type and only
	// the JSON Schema (the stricter, published contract) refuses it.
	cases := []struct {
		typ, name     string
		mutate        mutation
		decodeRejects bool
	}{
		// missing required fields
		{sent, "missing conversation_id", del("conversation_id"), true},
		{sent, "missing seq", del("seq"), true},
		{sent, "missing sender_id", del("sender_id"), true},
		{sent, "missing command_id", del("command_id"), true},
		{sent, "missing body", del("body"), false},
		{sent, "missing sent_at", del("sent_at"), false},
		{send, "missing user_id", del("user_id"), true},
		{send, "missing body", del("body"), false},
		{send, "missing issued_at", del("issued_at"), false},
		{create, "missing kind", del("kind"), true},
		{create, "missing members", del("members"), false},
		{created, "missing created_by", del("created_by"), true},
		{created, "missing members", del("members"), true},
		{created, "missing kind", del("kind"), false},
		{created, "member without role", member(0, del("role")), false},
		{rejected, "missing code", del("code"), true},
		{rejected, "missing reason", del("reason"), false},
		{dup, "missing seq", del("seq"), false},
		{dup, "missing command_type", del("command_type"), false},

		// extra fields: Go ignores unknown fields, the schema does not
		{sent, "extra field", set("edited", true), false},
		{create, "extra field", set("avatar", "x.png"), false},
		{created, "extra field in member", member(1, set("nick", "b")), false},
		{dup, "extra field", set("offset", num("3")), false},

		// ids
		{sent, "conversation id with slash", set("conversation_id", "d_../x"), true},
		{sent, "conversation id too long", set("conversation_id", long(65)), true},
		{sent, "empty conversation id", set("conversation_id", ""), true},
		{sent, "sender id with space", set("sender_id", "alice smith"), true},
		{sent, "sender id too long", set("sender_id", long(129)), true},
		{sent, "command id with slash", set("command_id", "c/1"), true},
		{sent, "command id too long", set("command_id", long(65)), true},
		{send, "conversation id not a string", set("conversation_id", num("7")), true},
		{create, "bad member id", set("members", []any{"bob", "carol smith"}), true},
		{created, "bad member user id", member(1, set("user_id", "bob smith")), false},
		{rejected, "bad user id", set("user_id", "mallory\n"), true},
		{dup, "bad command id", set("command_id", "c 1"), true},

		// seq
		{created, "created seq 1", set("seq", num("1")), true},
		{sent, "seq 0", set("seq", num("0")), true},
		{sent, "negative seq", set("seq", num("-1")), true},
		{sent, "fractional seq", set("seq", num("1.5")), true},
		{sent, "seq as string", set("seq", "17"), true},
		{sent, "seq beyond uint64", set("seq", num("18446744073709551616")), true},
		{dup, "negative seq", set("seq", num("-3")), true},

		// enums, times and other fields
		{create, "unknown kind", set("kind", "channel"), true},
		{created, "unknown kind", set("kind", "channel"), false},
		{created, "unknown role", member(0, set("role", "superuser")), false},
		{created, "no members", set("members", []any{}), true},
		{created, "empty title", set("title", ""), false},
		{create, "members null", set("members", nil), false},
		{sent, "sent_at not a time", set("sent_at", "yesterday"), true},
		{sent, "sent_at without T", set("sent_at", "2025-03-14 09:27:01Z"), true},
		{send, "issued_at without zone", set("issued_at", "2025-03-14T09:27:01"), true},
		{rejected, "empty code", set("code", ""), true},
		{rejected, "code not snake case", set("code", "Not-Member"), false},
		{rejected, "command_type not a type", set("command_type", "send"), false},
		{sent, "body not a string", set("body", num("42")), true},
	}
	for _, c := range cases {
		t.Run(c.typ+"/"+c.name, func(t *testing.T) {
			t.Parallel()
			m := object(t, fixture(t, c.typ))
			c.mutate(m)
			value := mustJSON(t, m)
			if err := v.Validate(c.typ, value); !errors.Is(err, schemas.ErrInvalid) {
				t.Errorf("JSON Schema accepted %s (err %v)", value, err)
			}
			_, err := schemas.Decode(c.typ, value)
			switch {
			case c.decodeRejects && !errors.Is(err, schemas.ErrInvalid):
				t.Errorf("Decode accepted %s (err %v)", value, err)
			case !c.decodeRejects && err != nil:
				t.Errorf("Decode rejected %s: %v (update the table if a validate method got stricter)", value, err)
			}
		})
	}
}

// TestEveryRequiredAndExtraField removes each required field, and adds an
// unknown one, at every level of every fixture.
func TestEveryRequiredAndExtraField(t *testing.T) {
	t.Parallel()
	v := validator(t)
	for _, typ := range schemas.Types() {
		raw, err := schemas.JSONSchema(typ)
		if err != nil {
			t.Fatal(err)
		}
		s := object(t, raw)
		required := asSlice(s["required"])
		if len(required) == 0 {
			t.Errorf("%s: no required fields", typ)
		}
		for _, r := range required {
			m := object(t, fixture(t, typ))
			delete(m, r.(string))
			if err := v.Validate(typ, mustJSON(t, m)); err == nil {
				t.Errorf("%s without %s accepted", typ, r)
			}
		}
		m := object(t, fixture(t, typ))
		m["unknown"] = "x"
		if err := v.Validate(typ, mustJSON(t, m)); err == nil {
			t.Errorf("%s with an unknown field accepted", typ)
		}
	}
}

// ---------------------------------------------------------------------------
// CloudEvents mapping

func headerMap(hs []schemas.Header) map[string]string {
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		m[h.Key] = string(h.Value)
	}
	return m
}

func sameAttributes(a, b schemas.Attributes) bool {
	if !a.Time.Equal(b.Time) {
		return false
	}
	a.Time, b.Time = time.Time{}, time.Time{}
	return a == b
}

func TestAttributesRoundTrip(t *testing.T) {
	t.Parallel()
	when := time.Date(2025, 3, 14, 10, 27, 1, 130042001, time.FixedZone("CET", 3600))
	base := schemas.Attributes{
		ID: "5e8a2f71-0c4d-4b9e-a3f6-7d1c2b0e9a84", Type: schemas.TypeMessageSent, Source: schemas.Source,
		Subject: "d_9333bcb877e9917e7ab716603d6ed862", Time: when, CommandOffset: -1,
	}
	with := func(f func(*schemas.Attributes)) schemas.Attributes { a := base; f(&a); return a }
	const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	cases := []struct {
		name    string
		attrs   schemas.Attributes
		present []string // optional headers that must be there
	}{
		{"command: no seq, traceparent or offset", with(func(a *schemas.Attributes) { a.Type = schemas.TypeSendMessage }), nil},
		{"event with seq, traceparent and offset", with(func(a *schemas.Attributes) {
			a.Seq, a.HasSeq, a.TraceParent, a.CommandOffset = 17, true, trace, 1057
		}), []string{schemas.HeaderSeq, schemas.HeaderTraceParent, schemas.HeaderCommandOffset}},
		{"creation: seq 0 and offset 0", with(func(a *schemas.Attributes) {
			a.Type, a.Seq, a.HasSeq, a.CommandOffset = schemas.TypeConversationCreated, 0, true, 0
		}), []string{schemas.HeaderSeq, schemas.HeaderCommandOffset}},
		{"reply with traceparent only", with(func(a *schemas.Attributes) {
			a.Type, a.TraceParent = schemas.TypeCommandRejected, trace
		}), []string{schemas.HeaderTraceParent}},
		{"max seq and offset", with(func(a *schemas.Attributes) {
			a.Seq, a.HasSeq, a.CommandOffset = ^uint64(0), true, int64(^uint64(0)>>1)
		}), []string{schemas.HeaderSeq, schemas.HeaderCommandOffset}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			hs := c.attrs.Headers()
			m := headerMap(hs)
			if len(m) != len(hs) {
				t.Errorf("duplicate header keys: %v", hs)
			}
			want := map[string]string{
				schemas.HeaderSpecVersion: "1.0",
				schemas.HeaderID:          c.attrs.ID,
				schemas.HeaderType:        c.attrs.Type,
				schemas.HeaderSource:      "parley",
				schemas.HeaderSubject:     c.attrs.Subject,
				schemas.HeaderTime:        "2025-03-14T09:27:01.130042001Z",
				schemas.HeaderContentType: "application/json",
			}
			for _, k := range c.present {
				switch k {
				case schemas.HeaderSeq:
					want[k] = strconv.FormatUint(c.attrs.Seq, 10)
				case schemas.HeaderTraceParent:
					want[k] = c.attrs.TraceParent
				case schemas.HeaderCommandOffset:
					want[k] = strconv.FormatInt(c.attrs.CommandOffset, 10)
				}
			}
			if !maps.Equal(m, want) {
				t.Errorf("Headers() = %v, want %v", m, want)
			}
			got, err := schemas.ParseAttributes(hs)
			if err != nil {
				t.Fatalf("ParseAttributes: %v", err)
			}
			if !sameAttributes(got, c.attrs) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, c.attrs)
			}
			if got.Time.Location() != time.UTC {
				t.Errorf("parsed time in %v, want UTC", got.Time.Location())
			}
		})
	}
}

func TestParseAttributesMissing(t *testing.T) {
	t.Parallel()
	full := schemas.Attributes{
		ID: "id-1", Type: schemas.TypeMessageSent, Source: schemas.Source, Subject: "d_1",
		Time: time.Date(2025, 3, 14, 9, 27, 1, 0, time.UTC), Seq: 3, HasSeq: true, CommandOffset: 9,
	}.Headers()
	without := func(key string) []schemas.Header {
		return slices.DeleteFunc(slices.Clone(full), func(h schemas.Header) bool { return h.Key == key })
	}
	replace := func(key, value string) []schemas.Header {
		hs := slices.Clone(full)
		for i := range hs {
			if hs[i].Key == key {
				hs[i].Value = []byte(value)
			}
		}
		return hs
	}
	for _, key := range []string{schemas.HeaderSpecVersion, schemas.HeaderID, schemas.HeaderType, schemas.HeaderSource, schemas.HeaderTime} {
		_, err := schemas.ParseAttributes(without(key))
		if !errors.Is(err, schemas.ErrMissingAttribute) || !strings.Contains(err.Error(), key) {
			t.Errorf("without %s: %v, want ErrMissingAttribute naming it", key, err)
		}
	}
	for _, key := range []string{schemas.HeaderID, schemas.HeaderType, schemas.HeaderSource, schemas.HeaderSpecVersion} {
		if _, err := schemas.ParseAttributes(replace(key, "")); !errors.Is(err, schemas.ErrMissingAttribute) {
			t.Errorf("empty %s: %v, want ErrMissingAttribute", key, err)
		}
	}
	if _, err := schemas.ParseAttributes(replace(schemas.HeaderSpecVersion, "0.3")); !errors.Is(err, schemas.ErrMissingAttribute) {
		t.Errorf("specversion 0.3: %v, want ErrMissingAttribute", err)
	}
	if _, err := schemas.ParseAttributes(nil); !errors.Is(err, schemas.ErrMissingAttribute) {
		t.Errorf("no headers: %v, want ErrMissingAttribute", err)
	}
	// Optional attributes.
	for _, key := range []string{schemas.HeaderSubject, schemas.HeaderContentType, schemas.HeaderSeq, schemas.HeaderCommandOffset} {
		a, err := schemas.ParseAttributes(without(key))
		if err != nil {
			t.Errorf("without %s: %v", key, err)
		}
		if key == schemas.HeaderSeq && (a.HasSeq || a.Seq != 0) {
			t.Errorf("without ce_seq: HasSeq=%v Seq=%d", a.HasSeq, a.Seq)
		}
		if key == schemas.HeaderCommandOffset && a.CommandOffset != -1 {
			t.Errorf("without offset: CommandOffset=%d, want -1", a.CommandOffset)
		}
	}
	// Unknown headers (e.g. dead-letter ones) are ignored.
	extra := append(slices.Clone(full), schemas.Header{Key: schemas.HeaderDLQError, Value: []byte("boom")})
	if a, err := schemas.ParseAttributes(extra); err != nil || a.Seq != 3 {
		t.Errorf("with a dead-letter header: %+v, %v", a, err)
	}
	// Malformed values are errors, but not "missing".
	for _, c := range []struct{ key, value string }{
		{schemas.HeaderTime, "yesterday"},
		{schemas.HeaderSeq, "-1"},
		{schemas.HeaderSeq, "x"},
		{schemas.HeaderSeq, ""},
		{schemas.HeaderCommandOffset, "-1"},
		{schemas.HeaderCommandOffset, "1e3"},
	} {
		_, err := schemas.ParseAttributes(replace(c.key, c.value))
		if err == nil || errors.Is(err, schemas.ErrMissingAttribute) {
			t.Errorf("%s=%q: got %v, want a parse error", c.key, c.value, err)
		}
	}
}

// ---------------------------------------------------------------------------
// fuzzing

func FuzzDecode(f *testing.F) {
	types := schemas.Types()
	for i, typ := range types {
		b, err := os.ReadFile(filepath.Join("testdata", typ+".json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
		f.Add(uint8(i), []byte(`{}`))
	}
	f.Add(uint8(0), []byte(`{"seq":1e400,"members":[null],"issued_at":"0000-01-01T00:00:00+01:00"}`))
	f.Add(uint8(3), []byte(`null`))
	f.Fuzz(func(t *testing.T, i uint8, data []byte) {
		typ := types[int(i)%len(types)]
		v, err := schemas.Decode(typ, data)
		if err != nil {
			if !errors.Is(err, schemas.ErrInvalid) {
				t.Fatalf("Decode error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// Whatever Decode accepts survives a Go round trip unchanged.
		enc, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("Marshal of a decoded %s: %v", typ, err)
		}
		again, err := schemas.Decode(typ, enc)
		if err != nil {
			t.Fatalf("Decode of re-encoded %s: %v", enc, err)
		}
		if enc2, _ := json.Marshal(again); !bytes.Equal(enc, enc2) {
			t.Fatalf("unstable encoding:\n%s\n%s", enc, enc2)
		}
	})
}

func FuzzParseAttributes(f *testing.F) {
	f.Add("1.0", "id-1", schemas.TypeMessageSent, "parley", "d_1", "2025-03-14T09:27:01.130042001Z", "17", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "42", uint16(0xffff))
	f.Add("1.0", "x", "t", "s", "", "2025-03-14T09:27:01+01:00", "0", "", "0", uint16(0x3f))
	f.Add("1.0", "x", "t", "s", "", "0000-01-01T00:00:00+01:00", "", "", "", uint16(0x3f))
	f.Add("", "", "", "", "", "", "-1", "", "-1", uint16(0))
	f.Fuzz(func(t *testing.T, spec, id, typ, source, subject, tm, seq, trace, offset string, mask uint16) {
		var hs []schemas.Header
		for bit, h := range []schemas.Header{
			{Key: schemas.HeaderSpecVersion, Value: []byte(spec)},
			{Key: schemas.HeaderID, Value: []byte(id)},
			{Key: schemas.HeaderType, Value: []byte(typ)},
			{Key: schemas.HeaderSource, Value: []byte(source)},
			{Key: schemas.HeaderTime, Value: []byte(tm)},
			{Key: schemas.HeaderSubject, Value: []byte(subject)},
			{Key: schemas.HeaderSeq, Value: []byte(seq)},
			{Key: schemas.HeaderTraceParent, Value: []byte(trace)},
			{Key: schemas.HeaderCommandOffset, Value: []byte(offset)},
			{Key: "unrelated", Value: []byte(spec)},
		} {
			if mask&(1<<bit) != 0 {
				hs = append(hs, h)
			}
		}
		a, err := schemas.ParseAttributes(hs)
		if err != nil {
			return
		}
		if a.ID == "" || a.Type == "" || a.Source == "" || a.Time.IsZero() || a.CommandOffset < -1 {
			t.Fatalf("ParseAttributes accepted incomplete attributes %+v", a)
		}
		if a.Time.UTC().Year() < 0 || a.Time.UTC().Year() > 9999 {
			// Headers() writes UTC; RFC 3339 cannot express such a year,
			// so the attributes cannot round-trip. Nothing writes them.
			return
		}
		b, err := schemas.ParseAttributes(a.Headers())
		if err != nil {
			t.Fatalf("re-parsing Headers() of %+v: %v", a, err)
		}
		if !sameAttributes(a, b) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", b, a)
		}
	})
}

// ---------------------------------------------------------------------------
// benchmarks

func BenchmarkDecode_MessageSent(b *testing.B) {
	data := fixture(b, schemas.TypeMessageSent)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := schemas.Decode(schemas.TypeMessageSent, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode_MessageSent(b *testing.B) {
	e := schemas.MessageSentV1{
		ConversationID: "d_9333bcb877e9917e7ab716603d6ed862", Seq: 17, SenderID: "alice",
		Body: "hello Bob — lunch at 12:30? 🍜", CommandID: "c-01HZX3M2V1QD",
		SentAt: time.Date(2025, 3, 14, 9, 27, 1, 130042000, time.UTC),
	}
	a := schemas.Attributes{
		ID: "5e8a2f71-0c4d-4b9e-a3f6-7d1c2b0e9a84", Type: schemas.TypeMessageSent, Source: schemas.Source,
		Subject: e.ConversationID, Time: e.SentAt, Seq: e.Seq, HasSeq: true, CommandOffset: 1057,
	}
	b.ReportAllocs()
	for b.Loop() {
		v, err := json.Marshal(&e)
		if err != nil {
			b.Fatal(err)
		}
		if hs := a.Headers(); len(hs) == 0 || len(v) == 0 {
			b.Fatal("empty record")
		}
	}
}

// ---------------------------------------------------------------------------
// AsyncAPI and OpenAPI documents

// loadYAML parses a YAML document into JSON-compatible values; a mapping
// key that is not a string (an unquoted 200 in OpenAPI) is an error.
func loadYAML(t *testing.T, name string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s is not YAML: %v", name, err)
	}
	var check func(path string, v any)
	check = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				check(path+"/"+k, e)
			}
		case []any:
			for i, e := range v {
				check(fmt.Sprintf("%s/%d", path, i), e)
			}
		case string, bool, int, float64, nil:
		default:
			t.Errorf("%s#%s: %T is not a JSON value (quote the key or value)", name, path, v)
		}
	}
	check("", doc)
	m, ok := doc.(map[string]any)
	if !ok {
		t.Fatalf("%s: not a mapping", name)
	}
	return m
}

// walkRefs calls f with the JSON pointer and value of every $ref.
func walkRefs(v any, ptr string, f func(ptr, ref string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && k == "$ref" {
				f(ptr, s)
				continue
			}
			walkRefs(e, ptr+"/"+contractcheck.EscapePointer(k), f)
		}
	case []any:
		for i, e := range v {
			walkRefs(e, ptr+"/"+strconv.Itoa(i), f)
		}
	}
}

func get(t *testing.T, doc any, ptr string) any {
	t.Helper()
	v, ok := contractcheck.ResolvePointer(doc, ptr)
	if !ok {
		t.Fatalf("no %s", ptr)
	}
	return v
}

func getMap(t *testing.T, doc any, ptr string) map[string]any {
	t.Helper()
	m, ok := get(t, doc, ptr).(map[string]any)
	if !ok {
		t.Fatalf("%s is not a mapping", ptr)
	}
	return m
}

// deref follows a local $ref.
func deref(t *testing.T, doc any, v any) any {
	t.Helper()
	for range 10 {
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		ref, ok := m["$ref"].(string)
		if !ok || !strings.HasPrefix(ref, "#") {
			return v
		}
		v = get(t, doc, ref[1:])
	}
	t.Fatalf("$ref chain too long")
	return nil
}

func TestAPIDocumentRefs(t *testing.T) {
	t.Parallel()
	types := schemas.Types()
	for _, name := range []string{"asyncapi.yaml", "openapi.yaml"} {
		doc := loadYAML(t, name)
		n := 0
		walkRefs(doc, "", func(ptr, ref string) {
			n++
			switch {
			case strings.HasPrefix(ref, "#/"):
				if _, ok := contractcheck.ResolvePointer(doc, ref[1:]); !ok {
					t.Errorf("%s#%s: $ref %s does not resolve", name, ptr, ref)
				}
			case strings.HasPrefix(ref, "./json/"):
				if _, err := os.Stat(filepath.FromSlash(ref)); err != nil {
					t.Errorf("%s#%s: $ref %s: %v", name, ptr, ref, err)
				}
				typ := strings.TrimSuffix(strings.TrimPrefix(ref, "./json/"), ".json")
				if !slices.Contains(types, typ) {
					t.Errorf("%s#%s: $ref %s is not the schema of a known type", name, ptr, ref)
				}
			default:
				t.Errorf("%s#%s: unexpected $ref %s", name, ptr, ref)
			}
		})
		if n == 0 {
			t.Errorf("%s: no $ref at all", name)
		}
	}
}

func TestAsyncAPI(t *testing.T) {
	t.Parallel()
	doc := loadYAML(t, "asyncapi.yaml")
	if doc["asyncapi"] != "3.0.0" {
		t.Errorf("asyncapi = %v", doc["asyncapi"])
	}
	for name, want := range map[string][2]string{"kafka": {"localhost:9092", "kafka"}, "ws": {"localhost:8080", "ws"}} {
		s := getMap(t, doc, "/servers/"+name)
		if s["host"] != want[0] || s["protocol"] != want[1] {
			t.Errorf("server %s = %v %v, want %v", name, s["host"], s["protocol"], want)
		}
	}

	// Channels: one per topic, with the topic's configuration.
	channels := getMap(t, doc, "/channels")
	channelOf := map[string]string{} // address -> channel key
	for key, c := range channels {
		channelOf[c.(map[string]any)["address"].(string)] = key
	}
	retention := map[string]int{
		schemas.TopicCommands:  7 * 24 * 3600 * 1000,
		schemas.TopicEvents:    -1,
		schemas.TopicReplies:   24 * 3600 * 1000,
		schemas.TopicDLQ:       30 * 24 * 3600 * 1000,
		schemas.TopicEphemeral: 3600 * 1000,
		schemas.TopicChanges:   3600 * 1000,
		schemas.TopicDevices:   -1,
	}
	partitions := map[any]bool{}
	for topic, ms := range retention {
		key, ok := channelOf[topic]
		if !ok {
			t.Errorf("no channel for topic %s", topic)
			continue
		}
		b := getMap(t, doc, "/channels/"+key+"/bindings/kafka")
		if b["topic"] != topic {
			t.Errorf("channel %s: kafka topic %v", key, b["topic"])
		}
		if got := get(t, b, "/topicConfiguration/retention.ms"); got != ms {
			t.Errorf("%s: retention.ms %v, want %d", topic, got, ms)
		}
		if topic != schemas.TopicDLQ {
			partitions[b["partitions"]] = true
		}
		if get(t, doc, "/channels/"+key+"/servers/0/$ref") != "#/servers/kafka" {
			t.Errorf("%s: not on the kafka server", topic)
		}
	}
	if len(partitions) != 1 || !partitions[12] {
		t.Errorf("partition counts of commands/events/replies: %v, want all 12", partitions)
	}

	// Every type is a message of its topic's channel, with its JSON Schema
	// as payload and the conversation id as key.
	messages := getMap(t, doc, "/components/messages")
	byName := map[string]string{}
	for key, m := range messages {
		byName[m.(map[string]any)["name"].(string)] = key
	}
	for _, typ := range schemas.Types() {
		key, ok := byName[typ]
		if !ok {
			t.Errorf("asyncapi.yaml has no message named %s", typ)
			continue
		}
		m := getMap(t, doc, "/components/messages/"+key)
		if got := get(t, m, "/payload/schemaFormat"); got != "application/schema+json;version=draft-2020-12" {
			t.Errorf("%s: payload schemaFormat %v", typ, got)
		}
		if got := get(t, m, "/payload/schema/$ref"); got != "./json/"+typ+".json" {
			t.Errorf("%s: payload $ref %v", typ, got)
		}
		wantKey := "#/components/schemas/ConversationKey"
		switch topicOf[typ] {
		case schemas.TopicPresence, schemas.TopicDevices:
			wantKey = "#/components/schemas/UserKey"
		case schemas.TopicReceipts:
			wantKey = "#/components/schemas/ReceiptKey"
		case schemas.TopicPush:
			wantKey = "#/components/schemas/PushKey"
		case schemas.TopicAudit:
			wantKey = "#/components/schemas/ErasureKey"
		}
		if got := get(t, m, "/bindings/kafka/key/$ref"); got != wantKey {
			t.Errorf("%s: key %v, want %s", typ, got, wantKey)
		}
		found := false
		for _, cm := range getMap(t, doc, "/channels/"+channelOf[topicOf[typ]]+"/messages") {
			found = found || cm.(map[string]any)["$ref"] == "#/components/messages/"+key
		}
		if !found {
			t.Errorf("%s is not a message of channel %s", typ, topicOf[typ])
		}
	}

	// Operations: messages belong to the operation's channel; the roles
	// send and receive what the architecture says.
	type role struct{ action, channel, tag string }
	have := map[role]bool{}
	replies := map[string][]string{} // request frame -> reply frames
	for name, o := range getMap(t, doc, "/operations") {
		op := o.(map[string]any)
		ch := strings.TrimPrefix(get(t, op, "/channel/$ref").(string), "#/channels/")
		for _, m := range asSlice(op["messages"]) {
			if ref := m.(map[string]any)["$ref"].(string); !strings.HasPrefix(ref, "#/channels/"+ch+"/messages/") {
				t.Errorf("operation %s: message %s not of its channel %s", name, ref, ch)
			}
		}
		for _, tag := range asSlice(op["tags"]) {
			tagName := deref(t, doc, tag).(map[string]any)["name"].(string)
			have[role{op["action"].(string), ch, tagName}] = true
		}
		if r, ok := op["reply"].(map[string]any); ok {
			req := deref(t, doc, asSlice(op["messages"])[0]).(map[string]any)["name"].(string)
			for _, m := range asSlice(r["messages"]) {
				replies[req] = append(replies[req], deref(t, doc, m).(map[string]any)["name"].(string))
			}
		}
	}
	for _, r := range []role{
		{"send", channelOf[schemas.TopicCommands], "gateway"},
		{"receive", channelOf[schemas.TopicCommands], "decider"},
		{"send", channelOf[schemas.TopicEvents], "decider"},
		{"send", channelOf[schemas.TopicReplies], "decider"},
		{"receive", channelOf[schemas.TopicEvents], "projection"},
		{"receive", channelOf[schemas.TopicReplies], "gateway"},
		{"send", channelOf[schemas.TopicEphemeral], "gateway"},
		{"send", channelOf[schemas.TopicPresence], "gateway"},
		{"receive", channelOf[schemas.TopicPresence], "gateway"},
		{"receive", channelOf[schemas.TopicEphemeral], "gateway"},
		{"send", channelOf[schemas.TopicDLQ], "projection"},
		{"send", channelOf["/v1/ws"], "gateway"},
		{"receive", channelOf["/v1/ws"], "gateway"},
	} {
		if !have[r] {
			t.Errorf("no operation: %s %s by %s", r.action, r.channel, r.tag)
		}
	}
	// The decider's rejection codes reach clients as error frame codes.
	codes := asSlice(get(t, doc, "/components/schemas/ErrorFrame/properties/code/enum"))
	for _, c := range []string{
		schemas.CodeNotMember, schemas.CodeConversationNotFound, schemas.CodeConversationExists, schemas.CodeInvalidCommand,
		schemas.CodeForbidden, schemas.CodeBlocked, schemas.CodeArchived, schemas.CodeMessageNotFound,
		schemas.CodeEditWindowClosed, schemas.CodeLimitExceeded, schemas.CodeNoChange,
	} {
		if !slices.Contains(codes, any(c)) {
			t.Errorf("error frame codes %v lack the decider's %s", codes, c)
		}
	}
	for req, want := range map[string][]string{
		"auth": {"auth_ok", "error"}, "send": {"ack", "error"}, "resume": {"resumed", "error"}, "ping": {"pong"},
		"edit": {"ack", "error"}, "delete": {"ack", "error"}, "react": {"ack", "error"}, "unreact": {"ack", "error"},
		"read": {"ack", "error"}, "typing": {"error"}, "presence_set": {"error"}, "presence_watch": {"presence", "error"},
	} {
		for _, w := range want {
			if !slices.Contains(replies[req], w) {
				t.Errorf("%s: replies %v, want %s among them", req, replies[req], w)
			}
		}
	}

	// The WebSocket channel carries exactly the protocol's frames.
	var frames []string
	for _, m := range getMap(t, doc, "/channels/"+channelOf["/v1/ws"]+"/messages") {
		frames = append(frames, deref(t, doc, m).(map[string]any)["name"].(string))
	}
	slices.Sort(frames)
	want := []string{"ack", "auth", "auth_ok", "delete", "edit", "error", "event", "gap", "ping", "pong", "presence", "presence_set", "presence_watch",
		"react", "read", "receipt", "resume", "resumed", "send", "typing", "unreact", "user_typing"}
	if !slices.Equal(frames, want) {
		t.Errorf("WebSocket frames %v, want %v", frames, want)
	}
}

const (
	asyncapiURL = schemas.SchemaBaseURL + "asyncapi.yaml"
	openapiURL  = schemas.SchemaBaseURL + "openapi.yaml"
)

// jsonDirLoader serves ./json/<type>.json references from the embedded
// schemas; nothing is fetched.
type jsonDirLoader struct{}

func (jsonDirLoader) Load(url string) (any, error) {
	name, ok := strings.CutPrefix(url, schemas.SchemaBaseURL+"json/")
	if !ok {
		return nil, fmt.Errorf("unexpected schema url %s", url)
	}
	raw, err := schemas.JSONSchema(strings.TrimSuffix(name, ".json"))
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(raw))
}

// docCompiler compiles schemas at JSON pointers inside an API document.
type docCompiler struct {
	url string
	c   *jsonschema.Compiler
}

func newDocCompiler(t *testing.T, name, url string, draft *jsonschema.Draft) *docCompiler {
	t.Helper()
	doc := loadYAML(t, name)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(mustJSON(t, doc)))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(draft)
	c.AssertFormat()
	c.UseLoader(jsonDirLoader{})
	if err := c.AddResource(url, inst); err != nil {
		t.Fatal(err)
	}
	return &docCompiler{url: url, c: c}
}

func (d *docCompiler) schema(t *testing.T, ptr string) *jsonschema.Schema {
	t.Helper()
	s, err := d.c.Compile(d.url + "#" + ptr)
	if err != nil {
		t.Fatalf("compiling %s#%s: %v", d.url, ptr, err)
	}
	return s
}

func instance(t *testing.T, v any) any {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(mustJSON(t, v)))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// TestAsyncAPIExamples validates every message example of asyncapi.yaml
// against the message's own header and payload schemas.
func TestAsyncAPIExamples(t *testing.T) {
	t.Parallel()
	doc := loadYAML(t, "asyncapi.yaml")
	dc := newDocCompiler(t, "asyncapi.yaml", asyncapiURL, jsonschema.Draft7)
	v := validator(t)
	for key, m := range getMap(t, doc, "/components/messages") {
		msg := m.(map[string]any)
		ptr := "/components/messages/" + key
		payloadPtr := ptr + "/payload"
		if _, ok := msg["payload"].(map[string]any)["schemaFormat"]; ok {
			payloadPtr += "/schema"
		}
		payload := dc.schema(t, payloadPtr)
		var headers *jsonschema.Schema
		if _, ok := msg["headers"]; ok {
			headers = dc.schema(t, ptr+"/headers")
		}
		examples := asSlice(msg["examples"])
		if len(examples) == 0 {
			t.Errorf("message %s has no example", key)
		}
		for i, e := range examples {
			ex := e.(map[string]any)
			if p, ok := ex["payload"]; ok {
				if err := payload.Validate(instance(t, p)); err != nil {
					t.Errorf("%s example %d: payload: %v", key, i, err)
				}
				if name := msg["name"].(string); slices.Contains(schemas.Types(), name) {
					if err := v.Validate(name, mustJSON(t, p)); err != nil {
						t.Errorf("%s example %d: %v", key, i, err)
					}
				}
			}
			if h, ok := ex["headers"]; ok && headers != nil {
				if err := headers.Validate(instance(t, h)); err != nil {
					t.Errorf("%s example %d: headers: %v", key, i, err)
				}
			}
		}
	}
}

// TestAsyncAPIHeadersMatchGo validates what Attributes.Headers writes
// against each Kafka message's headers schema.
func TestAsyncAPIHeadersMatchGo(t *testing.T) {
	t.Parallel()
	doc := loadYAML(t, "asyncapi.yaml")
	dc := newDocCompiler(t, "asyncapi.yaml", asyncapiURL, jsonschema.Draft7)
	keyOf := map[string]string{}
	for key, m := range getMap(t, doc, "/components/messages") {
		keyOf[m.(map[string]any)["name"].(string)] = key
	}
	asHeaders := func(hs []schemas.Header) any {
		m := map[string]any{}
		for k, v := range headerMap(hs) {
			m[k] = v
		}
		return instance(t, m)
	}
	for _, typ := range schemas.Types() {
		s := dc.schema(t, "/components/messages/"+keyOf[typ]+"/headers")
		a := schemas.Attributes{
			ID: "9d2c4b6a", Type: typ, Source: schemas.Source, Subject: "d_9333bcb877e9917e7ab716603d6ed862",
			Time: time.Now(), CommandOffset: -1, TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		}
		if topicOf[typ] == schemas.TopicPresence || topicOf[typ] == schemas.TopicPush {
			a.Subject = "alice.smith@example.org"
		}
		if topicOf[typ] == schemas.TopicAudit {
			a.Subject = schemas.ErasureRef("alice.smith@example.org")
		}
		if topicOf[typ] == schemas.TopicEvents {
			a.HasSeq, a.CommandOffset = true, 1057
			if typ != schemas.TypeConversationCreated {
				a.Seq = 17
			}
		}
		if err := s.Validate(asHeaders(a.Headers())); err != nil {
			t.Errorf("%s: Headers() breaks the AsyncAPI headers schema: %v", typ, err)
		}
		wrong := a
		wrong.Type = schemas.TypeMessageSent
		if typ == schemas.TypeMessageSent {
			wrong.Type = schemas.TypeSendMessage
		}
		if err := s.Validate(asHeaders(wrong.Headers())); err == nil {
			t.Errorf("%s: headers with ce_type %s accepted", typ, wrong.Type)
		}
		if topicOf[typ] == schemas.TopicEvents {
			sealed := a
			sealed.Sealed = true
			if err := s.Validate(asHeaders(sealed.Headers())); err != nil {
				t.Errorf("%s: the headers of a sealed record break the AsyncAPI headers schema: %v", typ, err)
			}
			noSeq := a
			noSeq.HasSeq = false
			if err := s.Validate(asHeaders(noSeq.Headers())); err == nil {
				t.Errorf("%s: headers without ce_seq accepted", typ)
			}
		}
	}
	created := schemas.Attributes{ID: "x", Type: schemas.TypeConversationCreated, Source: schemas.Source,
		Subject: "g_1", Time: time.Now(), Seq: 3, HasSeq: true, CommandOffset: 1}
	if err := dc.schema(t, "/components/messages/"+keyOf[schemas.TypeConversationCreated]+"/headers").Validate(asHeaders(created.Headers())); err == nil {
		t.Error("creation with ce_seq 3 accepted")
	}

	dlq := dc.schema(t, "/components/messages/"+keyOf["dead-letter"]+"/headers")
	hs := append(schemas.Attributes{ID: "x", Type: schemas.TypeMessageSent, Source: schemas.Source,
		Subject: "d_1", Time: time.Now(), Seq: 3, HasSeq: true, CommandOffset: 1}.Headers(),
		schemas.Header{Key: schemas.HeaderDLQError, Value: []byte("boom")},
		schemas.Header{Key: schemas.HeaderDLQTopic, Value: []byte(schemas.TopicEvents)},
		schemas.Header{Key: schemas.HeaderDLQPartition, Value: []byte("7")},
		schemas.Header{Key: schemas.HeaderDLQOffset, Value: []byte("88213")},
	)
	if err := dlq.Validate(asHeaders(hs)); err == nil {
		t.Error("dead letter without parley_dlq_group accepted")
	}
	hs = append(hs, schemas.Header{Key: schemas.HeaderDLQGroup, Value: []byte(schemas.GroupHistory)})
	if err := dlq.Validate(asHeaders(hs)); err != nil {
		t.Errorf("dead letter: %v", err)
	}
}

// TestDeadLetterHeadersAreDocumented: the dead-letter headers AsyncAPI
// requires are exactly the HeaderDLQ* constants, every one starts with
// HeaderDLQPrefix (which `parley dlq redrive` strips), and the channel
// names every group that sends to it.
func TestDeadLetterHeadersAreDocumented(t *testing.T) {
	t.Parallel()
	doc := loadYAML(t, "asyncapi.yaml")
	at := func(path ...string) any {
		var v any = doc
		for _, p := range path {
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("asyncapi.yaml: no %v", path)
			}
			v = m[p]
		}
		return v
	}
	var documented []string
	for _, r := range at("components", "schemas", "DeadLetterHeaders", "required").([]any) {
		documented = append(documented, r.(string))
	}
	props := at("components", "schemas", "DeadLetterHeaders", "properties").(map[string]any)
	consts := []string{schemas.HeaderDLQError, schemas.HeaderDLQTopic, schemas.HeaderDLQPartition, schemas.HeaderDLQOffset, schemas.HeaderDLQGroup}
	slices.Sort(documented)
	slices.Sort(consts)
	if !slices.Equal(documented, consts) {
		t.Errorf("asyncapi.yaml requires dead-letter headers %v, the code adds %v", documented, consts)
	}
	for _, h := range consts {
		if !strings.HasPrefix(h, schemas.HeaderDLQPrefix) {
			t.Errorf("dead-letter header %s does not start with %s", h, schemas.HeaderDLQPrefix)
		}
		if _, ok := props[h]; !ok {
			t.Errorf("asyncapi.yaml does not describe dead-letter header %s", h)
		}
	}
	group := at("components", "schemas", "DeadLetterHeaders", "properties", schemas.HeaderDLQGroup, "description").(string)
	summary := at("operations", "consumerSendDeadLetter", "summary").(string)
	for _, g := range []string{schemas.GroupDecider, schemas.GroupHistory, schemas.GroupReceipts, schemas.GroupSearch, schemas.GroupRouter} {
		if !strings.Contains(strings.Join(strings.Fields(group), " "), g) {
			t.Errorf("parley_dlq_group's description does not name group %s", g)
		}
	}
	for _, role := range []string{"decider", "history", "receipts", "search", "router"} {
		if !strings.Contains(summary, role) {
			t.Errorf("consumerSendDeadLetter's summary does not name %s", role)
		}
	}
}

// TestWebSocketFrames validates the frames of the protocol description
// against asyncapi.yaml's frame schemas.
func TestWebSocketFrames(t *testing.T) {
	t.Parallel()
	dc := newDocCompiler(t, "asyncapi.yaml", asyncapiURL, jsonschema.Draft7)
	const d, g = "d_9333bcb877e9917e7ab716603d6ed862", "g_d0e7b0f3eaa4eee91387e6aeff73f2d0"
	sent := string(fixture(t, schemas.TypeMessageSent))
	cases := []struct {
		schema, frame string
		ok            bool
	}{
		{"AuthFrame", `{"type":"auth","id":"r1","token":"eyJ.x.y"}`, true},
		{"AuthOkFrame", `{"type":"auth_ok","id":"r1","user_id":"alice","expires_at":"2025-03-14T10:27:00Z"}`, true},
		{"SendFrame", `{"type":"send","id":"r2","conversation_id":"` + d + `","command_id":"c-123","body":"hello"}`, true},
		{"SendFrame", `{"type":"send","id":"r2","conversation_id":"` + g + `","command_id":"c-124","body":"agreed","reply_to":17}`, true},
		{"AckFrame", `{"type":"ack","id":"r2","conversation_id":"` + d + `","seq":17,"duplicate":false}`, true},
		// The ack of a read in a conversation with only its creation.
		{"AckFrame", `{"type":"ack","id":"r2","conversation_id":"` + d + `","seq":0,"duplicate":false}`, true},
		{"EditFrame", `{"type":"edit","id":"r8","conversation_id":"` + d + `","command_id":"c-125","seq":17,"body":"hello again"}`, true},
		{"DeleteFrame", `{"type":"delete","id":"r9","conversation_id":"` + g + `","command_id":"c-126","seq":43}`, true},
		{"ReactFrame", `{"type":"react","id":"r10","conversation_id":"` + g + `","command_id":"c-127","seq":17,"emoji":"👍"}`, true},
		{"UnreactFrame", `{"type":"unreact","id":"r11","conversation_id":"` + g + `","command_id":"c-128","seq":17,"emoji":"👍🏽"}`, true},
		{"ReadFrame", `{"type":"read","id":"r12","conversation_id":"` + d + `","seq":17}`, true},
		{"ReadFrame", `{"type":"read","id":"r13","conversation_id":"` + g + `"}`, true},
		{"ReadFrame", `{"type":"read","id":"r13","conversation_id":"` + g + `","seq":0}`, true},
		{"ReceiptFrame", `{"type":"receipt","conversation_id":"` + d + `","user_id":"bob","kind":"read","seq":17}`, true},
		{"ReceiptFrame", `{"type":"receipt","conversation_id":"` + d + `","user_id":"bob","kind":"delivered","seq":18}`, true},
		{"ResumeFrame", `{"type":"resume","id":"r3","conversations":{"` + d + `":16,"` + g + `":0}}`, true},
		{"ResumedFrame", `{"type":"resumed","id":"r3","conversations":{"` + d + `":20}}`, true},
		{"PingFrame", `{"type":"ping","id":"r4"}`, true},
		{"PongFrame", `{"type":"pong","id":"r4"}`, true},
		{"EventFrame", `{"type":"event","conversation_id":"` + d + `","seq":17,"event_type":"chat.message.sent.v1","event_id":"e1","time":"2025-03-14T09:27:01.130042Z","data":` + sent + `}`, true},
		{"GapFrame", `{"type":"gap","conversation_id":"` + g + `","from_seq":1,"to_seq":480,"reason":"backfill_limit"}`, true},
		{"GapFrame", `{"type":"gap","conversation_id":"` + g + `","from_seq":1,"to_seq":480,"reason":"history_unavailable"}`, true},
		{"ErrorFrame", `{"type":"error","id":"r2","code":"not_member","message":"human text","retryable":false}`, true},
		{"ErrorFrame", `{"type":"error","code":"timeout","message":"try again","retryable":true}`, true},
		{"ErrorFrame", `{"type":"error","id":"r8","code":"edit_window_closed","message":"too late","retryable":false}`, true},

		{"AuthFrame", `{"type":"auth","id":"r1"}`, false},
		{"AuthFrame", `{"type":"auth","id":"` + strings.Repeat("r", 65) + `","token":"t"}`, false},
		{"AuthFrame", `{"type":"auth","id":"","token":"t"}`, false},
		{"AuthFrame", `{"type":"ping","id":"r1","token":"t"}`, false},
		{"SendFrame", `{"type":"send","id":"r2","conversation_id":"d 1","command_id":"c-123","body":"hello"}`, false},
		{"SendFrame", `{"type":"send","id":"r2","conversation_id":"d_1","command_id":"c 123","body":"hello"}`, false},
		{"SendFrame", `{"type":"send","id":"r2","conversation_id":"d_1","command_id":"c-1","body":"hi","extra":1}`, false},
		{"SendFrame", `{"type":"send","id":"r2","conversation_id":"d_1","command_id":"c-1","body":""}`, false},
		{"SendFrame", `{"type":"send","id":"r2","conversation_id":"d_1","command_id":"c-1","body":"hi","reply_to":-1}`, false},
		{"SendFrame", `{"type":"send","id":"r2","conversation_id":"d_1","command_id":"c-1","body":"hi","reply_to":"17"}`, false},
		{"AckFrame", `{"type":"ack","id":"r2","conversation_id":"d_1","seq":-1,"duplicate":false}`, false},
		{"AckFrame", `{"type":"ack","id":"r2","conversation_id":"d_1","seq":17}`, false},
		{"EditFrame", `{"type":"edit","id":"r8","conversation_id":"d_1","command_id":"c-1","seq":17,"body":""}`, false},
		{"EditFrame", `{"type":"edit","id":"r8","conversation_id":"d_1","command_id":"c-1","seq":0,"body":"x"}`, false},
		{"EditFrame", `{"type":"edit","id":"r8","conversation_id":"d_1","command_id":"c-1","body":"x"}`, false},
		{"EditFrame", `{"type":"edit","id":"r8","conversation_id":"d_1","seq":17,"body":"x"}`, false},
		{"EditFrame", `{"type":"delete","id":"r8","conversation_id":"d_1","command_id":"c-1","seq":17,"body":"x"}`, false},
		{"DeleteFrame", `{"type":"delete","conversation_id":"d_1","command_id":"c-1","seq":17}`, false},
		{"DeleteFrame", `{"type":"delete","id":"r9","conversation_id":"d_1","command_id":"c 1","seq":17}`, false},
		{"DeleteFrame", `{"type":"delete","id":"r9","conversation_id":"d_1","command_id":"c-1","seq":17,"body":"x"}`, false},
		{"ReactFrame", `{"type":"react","id":"r10","conversation_id":"d_1","command_id":"c-1","seq":17}`, false},
		{"ReactFrame", `{"type":"react","id":"r10","conversation_id":"d_1","command_id":"c-1","seq":17,"emoji":""}`, false},
		{"ReactFrame", `{"type":"react","id":"r10","conversation_id":"d_1","command_id":"c-1","seq":17,"emoji":"` + strings.Repeat("👍", 65) + `"}`, false},
		{"ReactFrame", `{"type":"unreact","id":"r10","conversation_id":"d_1","command_id":"c-1","seq":17,"emoji":"👍"}`, false},
		{"UnreactFrame", `{"type":"unreact","id":"r11","conversation_id":"d_1","command_id":"c-1","seq":"17","emoji":"👍"}`, false},
		{"UnreactFrame", `{"type":"unreact","id":"r11","conversation_id":"d_1","seq":17,"emoji":"👍"}`, false},
		{"ReadFrame", `{"type":"read","id":"r12","conversation_id":"d_1","seq":-1}`, false},
		{"ReadFrame", `{"type":"read","conversation_id":"d_1"}`, false},
		{"ReadFrame", `{"type":"read","id":"r12","conversation_id":"d_1","command_id":"c-1"}`, false},
		{"ReceiptFrame", `{"type":"receipt","conversation_id":"d_1","user_id":"bob","kind":"seen","seq":17}`, false},
		{"ReceiptFrame", `{"type":"receipt","conversation_id":"d_1","user_id":"bob","kind":"read"}`, false},
		{"ReceiptFrame", `{"type":"receipt","conversation_id":"d_1","user_id":"bob smith","kind":"read","seq":1}`, false},
		{"ResumeFrame", `{"type":"resume","id":"r3","conversations":{"d_1":-1}}`, false},
		{"ResumeFrame", `{"type":"resume","id":"r3","conversations":{"bad key":1}}`, false},
		{"EventFrame", `{"type":"event","conversation_id":"d_1","seq":17,"event_type":"chat.message.sent.v1","event_id":"e1","time":"2025-03-14T09:27:01Z"}`, false},
		{"GapFrame", `{"type":"gap","conversation_id":"d_1","from_seq":1,"to_seq":4,"reason":"other"}`, false},
		{"ErrorFrame", `{"type":"error","code":"nope","message":"x","retryable":false}`, false},
		{"ErrorFrame", `{"type":"error","code":"internal","message":"x"}`, false},
	}
	for _, c := range cases {
		err := dc.schema(t, "/components/schemas/"+c.schema).Validate(instance(t, generic(t, []byte(c.frame))))
		if c.ok && err != nil {
			t.Errorf("%s rejected %s: %v", c.schema, c.frame, err)
		}
		if !c.ok && err == nil {
			t.Errorf("%s accepted %s", c.schema, c.frame)
		}
	}
}

func TestOpenAPI(t *testing.T) {
	t.Parallel()
	doc := loadYAML(t, "openapi.yaml")
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v", doc["openapi"])
	}
	bearer := getMap(t, doc, "/components/securitySchemes/bearerAuth")
	if bearer["type"] != "http" || bearer["scheme"] != "bearer" || bearer["bearerFormat"] != "JWT" {
		t.Errorf("bearerAuth = %v", bearer)
	}
	if get(t, doc, "/security/0/bearerAuth") == nil {
		t.Error("bearer auth is not the default security")
	}
	want := map[string][]string{
		"/v1/conversations":                                       {"get", "post"},
		"/v1/conversations/{id}":                                  {"get", "patch"},
		"/v1/conversations/{id}/history":                          {"get"},
		"/v1/conversations/{id}/messages":                         {"post"},
		"/v1/conversations/{id}/leave":                            {"post"},
		"/v1/conversations/{id}/members":                          {"post"},
		"/v1/conversations/{id}/members/{user}":                   {"delete"},
		"/v1/conversations/{id}/members/{user}/role":              {"put"},
		"/v1/conversations/{id}/messages/{seq}":                   {"patch", "delete"},
		"/v1/conversations/{id}/messages/{seq}/thread":            {"get"},
		"/v1/conversations/{id}/messages/{seq}/reactions/{emoji}": {"put", "delete"},
		"/v1/conversations/{id}/read":                             {"post"},
		"/v1/conversations/{id}/receipts":                         {"get"},
		"/v1/blocks/{user}":                                       {"put", "delete"},
		"/v1/search":                                              {"get"},
		"/v1/presence":                                            {"get"},
		"/healthz":                                                {"get"},
		"/readyz":                                                 {"get"},
		"/metrics":                                                {"get"},
	}
	paths := getMap(t, doc, "/paths")
	for path, methods := range want {
		item, ok := paths[path].(map[string]any)
		if !ok {
			t.Errorf("openapi.yaml has no path %s", path)
			continue
		}
		for _, method := range methods {
			if _, ok := item[method].(map[string]any); !ok {
				t.Errorf("no %s %s", method, path)
			}
		}
	}
	for path, it := range paths {
		for method, o := range it.(map[string]any) {
			op, ok := o.(map[string]any)
			if !ok || method == "parameters" {
				continue
			}
			where := method + " " + path
			sec, hasSec := op["security"]
			public := !strings.HasPrefix(path, "/v1/")
			if public && (!hasSec || len(asSlice(sec)) != 0) {
				t.Errorf("%s: want security: [] (no token)", where)
			}
			// An operation may add a way to pass the token (the SSE
			// stream's access_token parameter), never drop the bearer.
			if !public && hasSec && !slices.ContainsFunc(asSlice(sec), func(req any) bool {
				_, ok := req.(map[string]any)["bearerAuth"]
				return ok
			}) {
				t.Errorf("%s: overrides the default bearer security", where)
			}
			responses := op["responses"].(map[string]any)
			if _, ok := responses["default"]; !ok {
				t.Errorf("%s: no default (problem) response", where)
			}
			problems := 0
			for code, r := range responses {
				content, _ := deref(t, doc, r).(map[string]any)["content"].(map[string]any)
				if _, ok := content["application/problem+json"]; ok {
					problems++
				} else if code == "default" || code[0] == '4' || code[0] == '5' {
					t.Errorf("%s %s: error response without application/problem+json", where, code)
				}
			}
			if problems == 0 {
				t.Errorf("%s: no application/problem+json response", where)
			}
		}
	}
	// Commands without a body take their command id from the query.
	for _, op := range [][2]string{
		{"delete", "/v1/conversations/{id}/members/{user}"},
		{"delete", "/v1/conversations/{id}/messages/{seq}"},
		{"put", "/v1/conversations/{id}/messages/{seq}/reactions/{emoji}"},
		{"delete", "/v1/conversations/{id}/messages/{seq}/reactions/{emoji}"},
		{"put", "/v1/blocks/{user}"},
		{"delete", "/v1/blocks/{user}"},
	} {
		item := getMap(t, doc, "/paths/"+contractcheck.EscapePointer(op[1]))
		params := append(slices.Clone(asSlice(item["parameters"])), asSlice(getMap(t, item, "/"+op[0])["parameters"])...)
		found := false
		for _, p := range params {
			pm := deref(t, doc, p).(map[string]any)
			found = found || (pm["name"] == "command_id" && pm["in"] == "query")
		}
		if !found {
			t.Errorf("%s %s: no command_id query parameter", op[0], op[1])
		}
	}
	// Problem codes: the WebSocket error codes (the decider's among them,
	// forbidden included) plus the HTTP-only ones (file_type_refused:
	// uploads are HTTP only).
	async := loadYAML(t, "asyncapi.yaml")
	wantCodes := append(slices.Clone(asSlice(get(t, async, "/components/schemas/ErrorFrame/properties/code/enum"))),
		"bad_request", "not_found", "file_type_refused")
	if got := asSlice(get(t, doc, "/components/schemas/Problem/properties/code/enum")); !reflect.DeepEqual(got, wantCodes) {
		t.Errorf("problem codes %v, want %v", got, wantCodes)
	}

	// Every event type of chat.events is an Event the history serves.
	dc := newDocCompiler(t, "openapi.yaml", openapiURL, jsonschema.Draft2020)
	event := dc.schema(t, "/components/schemas/Event")
	for _, typ := range schemas.Types() {
		ev := map[string]any{
			"conversation_id": "g_d0e7b0f3eaa4eee91387e6aeff73f2d0", "seq": 43, "event_type": typ,
			"event_id": "e43", "time": "2025-03-14T09:27:01.130042Z", "data": generic(t, fixture(t, typ)),
		}
		if err := event.Validate(instance(t, ev)); (err == nil) != (topicOf[typ] == schemas.TopicEvents) {
			t.Errorf("Event with %s data: err %v", typ, err)
		}
	}
	const g = `"conversation_id":"g_d0e7b0f3eaa4eee91387e6aeff73f2d0"`
	for _, c := range []struct {
		schema, body string
		ok           bool
	}{
		{"UpdateConversationRequest", `{"title":"Team (Q3)"}`, true},
		{"UpdateConversationRequest", `{"command_id":"a-1","archived":false}`, true},
		{"UpdateConversationRequest", `{"title":"Team","archived":true}`, false},
		{"UpdateConversationRequest", `{"command_id":"a-1"}`, false},
		{"UpdateConversationRequest", `{"title":""}`, false},
		{"AddMembersRequest", `{"user_ids":["dave"]}`, true},
		{"AddMembersRequest", `{"user_ids":[]}`, false},
		{"AddMembersRequest", `{"user_ids":["dave smith"]}`, false},
		{"SetRoleRequest", `{"command_id":"r-1","role":"owner"}`, true},
		{"SetRoleRequest", `{"role":"moderator"}`, false},
		{"EditMessageRequest", `{"body":"fixed"}`, true},
		{"EditMessageRequest", `{"body":""}`, false},
		{"SendMessageRequest", `{"command_id":"c-1","body":"yes","reply_to":17}`, true},
		{"SendMessageRequest", `{"command_id":"c-1","body":"yes","reply_to":-1}`, false},
		{"ReadRequest", `{}`, true},
		{"ReadRequest", `{"seq":17}`, true},
		{"ReadRequest", `{"seq":17,"command_id":"c-1"}`, false},
		{"ReadMarker", `{` + g + `,"read_seq":0}`, true},
		{"Receipts", `{` + g + `,"seq":480,"members":2,"delivered":2,"read":1}`, true},
		{"Receipts", `{` + g + `,"seq":480,"members":2,"delivered":2}`, false},
		{"ConversationList", `{"conversations":[],"unread_total":0,"unread_conversations":0}`, true},
		{"ConversationList", `{"conversations":[]}`, false},
		// A conversation of the inbox has the caller's read_seq and unread.
		{"ConversationList", `{"conversations":[{` + g + `,"kind":"group","title":"T","created_by":"alice","created_at":"2025-03-14T09:26:53Z",` +
			`"members":[{"user_id":"alice","role":"owner"}],"last_seq":0,"last_activity":"2025-03-14T09:26:53Z","archived":false,"messages":0}],` +
			`"unread_total":0,"unread_conversations":0}`, false},
		{"MessageState", `{"body":"","deleted":true,"deleted_by":"bob","reactions":[]}`, true},
		{"MessageState", `{"body":"x","deleted":false}`, false},
		{"MessageState", `{"body":"x","deleted":false,"reactions":[{"emoji":"👍","users":[]}]}`, false},
	} {
		if err := dc.schema(t, "/components/schemas/"+c.schema).Validate(instance(t, generic(t, []byte(c.body)))); (err == nil) != c.ok {
			t.Errorf("%s %s: err %v, want ok=%v", c.schema, c.body, err, c.ok)
		}
	}
}

// TestOpenAPISchemas compiles the OpenAPI schemas (JSON Schema 2020-12 in
// OpenAPI 3.1) and validates every example in the document, plus
// responses built from the fixtures.
func TestOpenAPISchemas(t *testing.T) {
	t.Parallel()
	doc := loadYAML(t, "openapi.yaml")
	dc := newDocCompiler(t, "openapi.yaml", openapiURL, jsonschema.Draft2020)
	n := 0
	var walk func(v any, ptr string)
	walk = func(v any, ptr string) {
		m, ok := v.(map[string]any)
		if !ok {
			if s, ok := v.([]any); ok {
				for i, e := range s {
					walk(e, ptr+"/"+strconv.Itoa(i))
				}
			}
			return
		}
		if _, ok := m["schema"]; ok {
			s := dc.schema(t, ptr+"/schema")
			var examples []any
			if e, ok := m["example"]; ok {
				examples = append(examples, e)
			}
			if es, ok := m["examples"].(map[string]any); ok {
				for _, e := range es {
					examples = append(examples, e.(map[string]any)["value"])
				}
			}
			for _, e := range examples {
				n++
				if err := s.Validate(instance(t, e)); err != nil {
					t.Errorf("%s: example %v: %v", ptr, e, err)
				}
			}
		}
		for k, e := range m {
			walk(e, ptr+"/"+contractcheck.EscapePointer(k))
		}
	}
	walk(doc["paths"], "/paths")
	walk(doc["components"].(map[string]any)["responses"], "/components/responses")
	for name, s := range getMap(t, doc, "/components/schemas") {
		cs := dc.schema(t, "/components/schemas/"+contractcheck.EscapePointer(name))
		if e, ok := s.(map[string]any)["example"]; ok {
			n++
			if err := cs.Validate(instance(t, e)); err != nil {
				t.Errorf("schema %s: example: %v", name, err)
			}
		}
	}
	if n < 5 {
		t.Errorf("only %d examples validated", n)
	}

	event := func(typ string, seq int) map[string]any {
		return map[string]any{
			"conversation_id": "g_d0e7b0f3eaa4eee91387e6aeff73f2d0", "seq": seq, "event_type": typ,
			"event_id": "e" + strconv.Itoa(seq), "time": "2025-03-14T09:27:01.130042Z",
			"data": generic(t, fixture(t, typ)),
		}
	}
	page := dc.schema(t, "/components/schemas/HistoryPage")
	good := map[string]any{
		"conversation_id": "g_d0e7b0f3eaa4eee91387e6aeff73f2d0", "has_more": false,
		"events": []any{event(schemas.TypeConversationCreated, 0), event(schemas.TypeMessageSent, 17)},
	}
	if err := page.Validate(instance(t, good)); err != nil {
		t.Errorf("history page: %v", err)
	}
	bad := maps.Clone(good)
	bad["events"] = []any{event(schemas.TypeSendMessage, 1)}
	if err := page.Validate(instance(t, bad)); err == nil {
		t.Error("history page with a command as event data accepted")
	}
	create := dc.schema(t, "/components/schemas/CreateConversationRequest")
	for body, ok := range map[string]bool{
		`{"kind":"direct","members":["bob"]}`:                                          true,
		`{"kind":"group","title":"Team","members":["bob","carol"],"command_id":"c-1"}`: true,
		`{"kind":"direct","members":["bob","carol"]}`:                                  false,
		`{"kind":"channel","members":["bob"]}`:                                         false,
		`{"kind":"group","members":["bob smith"]}`:                                     false,
	} {
		if err := create.Validate(instance(t, generic(t, []byte(body)))); (err == nil) != ok {
			t.Errorf("create %s: err %v, want ok=%v", body, err, ok)
		}
	}
}

// TestAsyncAPIDescribesEveryTopic holds the AsyncAPI document to the
// topics as Parley creates them: every topic of the default topology
// (and a node's delivery topic) has a channel whose Kafka binding has the
// topic's cleanup.policy and retention.ms, a key (x-parley-key) and its
// readers (x-parley-consumers), and every consumer group is named as a
// reader of some channel.
func TestAsyncAPIDescribesEveryTopic(t *testing.T) {
	t.Parallel()
	doc := loadYAML(t, "asyncapi.yaml")
	byTopic := map[string]map[string]any{}
	for _, c := range getMap(t, doc, "/channels") {
		ch := c.(map[string]any)
		bindings, _ := ch["bindings"].(map[string]any)
		if _, ok := bindings["kafka"]; ok {
			byTopic[ch["address"].(string)] = ch // the topic's name
		}
	}
	topo := kafkalog.Topology{}.WithDefaults()
	configs := append(topo.Topics(), topo.NodeTopic("{node}"))
	consumers := ""
	for _, tc := range configs {
		ch, ok := byTopic[tc.Topic]
		if !ok {
			t.Errorf("no channel has the Kafka topic %s", tc.Topic)
			continue
		}
		want := map[string]string{}
		for _, e := range tc.ConfigEntries {
			want[e.ConfigName] = e.ConfigValue
		}
		conf := get(t, ch, "/bindings/kafka/topicConfiguration").(map[string]any)
		if got := fmt.Sprint(conf["cleanup.policy"]); got != "["+want["cleanup.policy"]+"]" {
			t.Errorf("%s: cleanup.policy %s; the topic is created with %s", tc.Topic, got, want["cleanup.policy"])
		}
		if want["cleanup.policy"] == "delete" && fmt.Sprint(conf["retention.ms"]) != want["retention.ms"] {
			t.Errorf("%s: retention.ms %v; the topic is created with %s", tc.Topic, conf["retention.ms"], want["retention.ms"])
		}
		if k, _ := ch["x-parley-key"].(string); k == "" {
			t.Errorf("%s: no x-parley-key", tc.Topic)
		}
		list, _ := ch["x-parley-consumers"].([]any)
		if len(list) == 0 {
			t.Errorf("%s: no x-parley-consumers", tc.Topic)
		}
		for _, c := range list {
			consumers += fmt.Sprint(c) + "\n"
		}
		// The groups that read a topic beside their main one
		// (internal/app wires them).
		if tc.Topic == schemas.TopicAudit {
			for _, g := range []string{schemas.GroupHistory, schemas.GroupSearch, schemas.GroupPush} {
				if !strings.Contains(fmt.Sprint(list), g) {
					t.Errorf("%s: x-parley-consumers lacks %s, which applies its erasures", tc.Topic, g)
				}
			}
		}
	}
	for _, g := range []string{schemas.GroupDecider, schemas.GroupHistory, schemas.GroupSearch, schemas.GroupReceipts,
		schemas.GroupRouter, schemas.GroupFiles, schemas.GroupThumbnails, schemas.GroupPush} {
		if !strings.Contains(consumers, g) {
			t.Errorf("consumer group %s reads no channel of the AsyncAPI document", g)
		}
	}
}
