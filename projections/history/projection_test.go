package history_test

import (
	"errors"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

func TestProjectionDecode(t *testing.T) {
	t.Parallel()
	good := schemas.Attributes{ID: "e1", Type: schemas.TypeMessageSent, Source: "parley", Subject: "d_1", Time: time.Unix(1, 0), Seq: 1, HasSeq: true}
	value := []byte(`{"conversation_id":"d_1","seq":1,"sender_id":"alice","body":"hi","command_id":"c1","sent_at":"2026-01-01T00:00:00Z"}`)
	for _, c := range []struct {
		name  string
		edit  func(*schemas.Attributes)
		value string
		ok    bool
	}{
		{"a valid event is kept", func(*schemas.Attributes) {}, "", true},
		{"an unknown type is kept for later versions", func(a *schemas.Attributes) { a.Type = "chat.future.v9" }, `{"anything":1}`, true},
		{"no seq is dead-lettered", func(a *schemas.Attributes) { a.HasSeq = false }, "", false},
		{"no subject is dead-lettered", func(a *schemas.Attributes) { a.Subject = "" }, "", false},
		{"a malformed conversation id is dead-lettered", func(a *schemas.Attributes) { a.Subject = "no spaces allowed" }, "", false},
		{"invalid UTF-8 in ce_id is dead-lettered", func(a *schemas.Attributes) { a.ID = "\xff" }, "", false},
		{"a known type breaking its schema is dead-lettered", func(*schemas.Attributes) {}, `{"seq":"one"}`, false},
		{"an unknown type that is not JSON is dead-lettered", func(a *schemas.Attributes) { a.Type = "chat.future.v9" }, `{`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := good
			c.edit(&a)
			v := value
			if c.value != "" {
				v = []byte(c.value)
			}
			ev, err := history.Projection{}.Decode(consumers.Record{Message: kafka.Message{Value: v}, Attrs: a})
			if c.ok != (err == nil) {
				t.Fatalf("Decode error %v, want ok=%v", err, c.ok)
			}
			if err != nil && !errors.Is(err, schemas.ErrInvalid) {
				t.Errorf("error %v does not wrap schemas.ErrInvalid", err)
			}
			if c.ok && (ev.ConversationID != a.Subject || ev.Seq != a.Seq || string(ev.Data) != string(v)) {
				t.Errorf("decoded %+v", ev)
			}
		})
	}
}
