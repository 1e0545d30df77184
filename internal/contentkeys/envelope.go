// Sealing and opening event values: the personal fields of an event moved
// into a sealed envelope (schemas.ContentTypeSealed), and back.

package contentkeys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parley-chat/parley/schemas"
)

// Redacted is what a sealed envelope's data has in place of a file name
// or a title: those must not be empty in their schemas.
const Redacted = "redacted"

// envelope is the value of a sealed record.
type envelope struct {
	Owner  string          `json:"owner"`
	Data   json.RawMessage `json:"data"`
	Sealed []byte          `json:"sealed"`
}

// personal is what a type seals: the field naming the content's owner and
// the personal fields.
type personal struct {
	owner string
	// body, title: a string field sealed and blanked ("" for a body;
	// absent or Redacted for a title, as its schema allows).
	body, title   bool
	titleOptional bool
	// files: the names of the attachments.
	files bool
}

// sealedTypes are the event types with personal content.
var sealedTypes = map[string]personal{
	schemas.TypeMessageSent:         {owner: "sender_id", body: true},
	schemas.TypeMessageSentV2:       {owner: "sender_id", body: true},
	schemas.TypeMessageSentV3:       {owner: "sender_id", body: true, files: true},
	schemas.TypeMessageEdited:       {owner: "user_id", body: true},
	schemas.TypeConversationCreated: {owner: "created_by", title: true, titleOptional: true},
	// An encrypted conversation's title is a plain field too (its
	// messages are MLS ciphertext, which needs no sealing).
	schemas.TypeConversationCreatedV2: {owner: "created_by", title: true, titleOptional: true},
	schemas.TypeRenamed:               {owner: "user_id", title: true},

	// Commands carry the same content, for chat.commands' retention (and
	// chat.dlq's, dead-lettered): the gateway seals them as it appends
	// them, under the key of the user who issued them, and the decider
	// opens them.
	schemas.TypeSendMessage:          {owner: "user_id", body: true},
	schemas.TypeSendMessageV2:        {owner: "user_id", body: true},
	schemas.TypeSendMessageV3:        {owner: "user_id", body: true, files: true},
	schemas.TypeEditMessage:          {owner: "user_id", body: true},
	schemas.TypeCreateConversation:   {owner: "user_id", title: true, titleOptional: true},
	schemas.TypeCreateConversationV2: {owner: "user_id", title: true, titleOptional: true},
	schemas.TypeRename:               {owner: "user_id", title: true},
}

// Sealable reports whether events of type typ carry personal content that
// SealEvent seals.
func Sealable(typ string) bool { _, ok := sealedTypes[typ]; return ok }

// fields are the sealed personal fields, as JSON.
type fields struct {
	Body  *string  `json:"body,omitempty"`
	Title *string  `json:"title,omitempty"`
	Files []string `json:"files,omitempty"`
}

// SealEvent returns the sealed envelope of value, an event of attrs.Type
// for event attrs.ID of conversation attrs.Subject, and true; or value
// and false for a type without personal content (see Sealable). The
// caller sets attrs.Sealed on the record it writes.
func (k *Keyring) SealEvent(ctx context.Context, attrs schemas.Attributes, value []byte) ([]byte, bool, error) {
	p, ok := sealedTypes[attrs.Type]
	if !ok {
		return value, false, nil
	}
	m, owner, f, err := blank(p, attrs.Type, value)
	if err != nil {
		return nil, false, fmt.Errorf("contentkeys: sealing %w", err)
	}
	plain, err := json.Marshal(f)
	if err != nil {
		return nil, false, err
	}
	ct, err := k.Seal(ctx, owner, attrs.ID, attrs.Subject, plain)
	if err != nil {
		return nil, false, err
	}
	data, err := json.Marshal(m)
	if err != nil {
		return nil, false, err
	}
	out, err := json.Marshal(envelope{Owner: owner, Data: data, Sealed: ct})
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// blank parses value, an event of type typ that p describes, and blanks
// its personal fields: it returns the event's fields with them blanked,
// their owner and what they held.
func blank(p personal, typ string, value []byte) (map[string]json.RawMessage, string, fields, error) {
	var f fields
	var m map[string]json.RawMessage
	if err := json.Unmarshal(value, &m); err != nil {
		return nil, "", f, fmt.Errorf("%s: %w", typ, err)
	}
	var owner string
	if err := json.Unmarshal(m[p.owner], &owner); err != nil || owner == "" {
		return nil, "", f, fmt.Errorf("%s: no %s", typ, p.owner)
	}
	if p.body {
		var body string
		if err := json.Unmarshal(m["body"], &body); err == nil {
			f.Body = &body
		}
		m["body"] = json.RawMessage(`""`)
	}
	if raw, ok := m["title"]; p.title && ok {
		var title string
		if err := json.Unmarshal(raw, &title); err == nil {
			f.Title = &title
		}
		if p.titleOptional {
			delete(m, "title")
		} else {
			m["title"] = json.RawMessage(`"` + Redacted + `"`)
		}
	}
	if raw, ok := m["attachments"]; p.files && ok {
		var atts []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &atts); err != nil {
			return nil, "", f, fmt.Errorf("%s: %w", typ, err)
		}
		for _, a := range atts {
			var name string
			_ = json.Unmarshal(a["name"], &name)
			f.Files = append(f.Files, name)
			a["name"] = json.RawMessage(`"` + Redacted + `"`)
		}
		b, err := json.Marshal(atts)
		if err != nil {
			return nil, "", f, err
		}
		m["attachments"] = b
	}
	return m, owner, f, nil
}

// Owner returns the user whose content value, an event of type typ,
// carries, and whether typ carries any (see Sealable). It decodes the
// owner fields only, not the whole event.
func Owner(typ string, value []byte) (string, bool) {
	p, ok := sealedTypes[typ]
	if !ok {
		return "", false
	}
	var f ownerFields
	var owner string
	if json.Unmarshal(value, &f) != nil || json.Unmarshal(f.named(p.owner), &owner) != nil || owner == "" {
		return "", false
	}
	return owner, true
}

// ownerFields are the fields that name the owner of a sealed type's
// content (personal.owner), as they are in the event.
type ownerFields struct {
	SenderID  json.RawMessage `json:"sender_id"`
	UserID    json.RawMessage `json:"user_id"`
	CreatedBy json.RawMessage `json:"created_by"`
}

// named returns the field of that JSON name, or nil for none of them.
func (f ownerFields) named(name string) json.RawMessage {
	switch name {
	case "sender_id":
		return f.SenderID
	case "user_id":
		return f.UserID
	case "created_by":
		return f.CreatedBy
	}
	return nil
}

// Blank returns value, an event of type typ, with its personal content
// blanked exactly as a reader without the key reads it once its owner
// is erased (the data of its sealed envelope: body "", file names and a
// rename's title Redacted, a creation's title absent), so that a store
// that blanks what it holds ends where a rebuild from the log ends. A
// type without personal content is returned as it is.
func Blank(typ string, value []byte) ([]byte, error) {
	p, ok := sealedTypes[typ]
	if !ok {
		return value, nil
	}
	m, _, _, err := blank(p, typ, value)
	if err != nil {
		return nil, fmt.Errorf("contentkeys: blanking %w", err)
	}
	return json.Marshal(m)
}

// ErrNotSealed is returned by OpenEvent for a value that is not a sealed
// envelope.
var ErrNotSealed = errors.New("not a sealed envelope")

// Redact returns the data of a sealed envelope: the event with its
// personal fields blanked, what a reader without the key reads.
func Redact(value []byte) ([]byte, error) {
	var e envelope
	if err := json.Unmarshal(value, &e); err != nil || len(e.Data) == 0 {
		return nil, fmt.Errorf("%w: %v", ErrNotSealed, err)
	}
	return e.Data, nil
}

// OpenEvent returns the event a sealed envelope holds, its personal fields
// put back. When they cannot be opened (the owner's key is erased), it
// returns the redacted event (see Redact) and an error wrapping
// ErrUnreadable; for a value that is no envelope, ErrNotSealed.
func (k *Keyring) OpenEvent(ctx context.Context, attrs schemas.Attributes, value []byte) ([]byte, error) {
	var e envelope
	if err := json.Unmarshal(value, &e); err != nil || len(e.Data) == 0 {
		return nil, fmt.Errorf("%w: %v", ErrNotSealed, err)
	}
	plain, err := k.Open(ctx, e.Owner, attrs.ID, attrs.Subject, e.Sealed)
	if err != nil {
		return e.Data, err
	}
	var f fields
	if err := json.Unmarshal(plain, &f); err != nil {
		return e.Data, fmt.Errorf("%w: sealed fields: %v", ErrUnreadable, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(e.Data, &m); err != nil {
		return e.Data, fmt.Errorf("%w: data: %v", ErrNotSealed, err)
	}
	put := func(field string, v any) error {
		b, err := json.Marshal(v)
		m[field] = b
		return err
	}
	if f.Body != nil {
		if err := put("body", *f.Body); err != nil {
			return e.Data, err
		}
	}
	if f.Title != nil {
		if err := put("title", *f.Title); err != nil {
			return e.Data, err
		}
	}
	if raw, ok := m["attachments"]; ok && len(f.Files) > 0 {
		var atts []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &atts); err != nil {
			return e.Data, fmt.Errorf("%w: attachments: %v", ErrNotSealed, err)
		}
		for i := range atts {
			if i < len(f.Files) {
				b, _ := json.Marshal(f.Files[i])
				atts[i]["name"] = b
			}
		}
		b, err := json.Marshal(atts)
		if err != nil {
			return e.Data, err
		}
		m["attachments"] = b
	}
	out, err := json.Marshal(m)
	if err != nil {
		return e.Data, err
	}
	return out, nil
}
