package history_test

import (
	"errors"
	"reflect"
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

// TestDecodedEventFoldsOnce: an event from Decode folds into a summary
// exactly as the same event read back from a store, without decoding its
// value a second time (fewer allocations).
func TestDecodedEventFoldsOnce(t *testing.T) {
	a := schemas.Attributes{ID: "e1", Type: schemas.TypeMessageSent, Source: "parley", Subject: "d_1", Time: time.Unix(1, 0), Seq: 1, HasSeq: true}
	value := []byte(`{"conversation_id":"d_1","seq":1,"sender_id":"alice","body":"hi","command_id":"c1","sent_at":"2026-01-01T00:00:00Z"}`)
	decoded, err := history.Projection{}.Decode(consumers.Record{Message: kafka.Message{Value: value}, Attrs: a})
	if err != nil {
		t.Fatal(err)
	}
	stored := history.Event{ConversationID: decoded.ConversationID, Seq: decoded.Seq, ID: decoded.ID, Type: decoded.Type, Time: decoded.Time, Data: decoded.Data}
	var fromDecoded, fromStored history.Conversation
	if _, err := history.ApplyToSummary(&fromDecoded, decoded); err != nil {
		t.Fatal(err)
	}
	if _, err := history.ApplyToSummary(&fromStored, stored); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromDecoded, fromStored) {
		t.Errorf("folded from Decode %+v, from the stored event %+v", fromDecoded, fromStored)
	}
	if fromDecoded.LastMessage == nil || fromDecoded.LastMessage.Body != "hi" || fromDecoded.Messages != 1 {
		t.Errorf("summary %+v, want one message, hi", fromDecoded)
	}
	allocs := func(ev history.Event) float64 {
		return testing.AllocsPerRun(50, func() {
			var c history.Conversation
			_, _ = history.ApplyToSummary(&c, ev)
		})
	}
	if d, s := allocs(decoded), allocs(stored); d >= s {
		t.Errorf("folding the decoded event allocates %.0f times, the stored one %.0f: decoded again", d, s)
	}
}
