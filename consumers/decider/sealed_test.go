package decider_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/parley-chat/parley/consumers/decider"
	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/contentkeys/pebblekeys"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/schemas"
)

// Commands sealed by the writer are opened by the decider, which seals
// the events in turn; a command whose author was erased before it was
// decided opens blank and is refused (a reply, not a dead letter).
func TestDeciderOpensSealedCommands(t *testing.T) {
	t.Parallel()
	k := startBroker(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := pebblekeys.Open(t.TempDir(), discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	kek := make([]byte, contentkeys.KEKSize)
	_, _ = rand.Read(kek)
	keys, err := contentkeys.New(store, kek)
	if err != nil {
		t.Fatal(err)
	}
	events := startTail(t, k, schemas.TopicEvents, 1)
	replies := startTail(t, k, schemas.TopicReplies, 1)
	cw := producers.NewCommandWriter(k.Cluster, k.Names, discard, producers.Sealing(keys))
	t.Cleanup(func() { _ = cw.Close() })

	conv := schemas.GroupConversationID("ann", "c0")
	now := time.Now().UTC()
	for _, c := range []struct {
		typ string
		v   any
	}{
		{schemas.TypeCreateConversation, schemas.CreateConversationV1{CommandID: "c0", UserID: "ann", ConversationID: conv, Kind: schemas.KindGroup, Title: "Quiet Room", Members: []string{"ben"}, IssuedAt: now}},
		{schemas.TypeSendMessage, schemas.SendMessageV1{CommandID: "c1", UserID: "ann", ConversationID: conv, Body: "a quiet word", IssuedAt: now}},
	} {
		if err := cw.Append(ctx, c.typ, conv, c.v, ""); err != nil {
			t.Fatal(err)
		}
	}
	// Ben's command is appended sealed, then Ben is erased before the
	// decider runs.
	if err := cw.Append(ctx, schemas.TypeSendMessage, conv, schemas.SendMessageV1{CommandID: "c2", UserID: "ben", ConversationID: conv, Body: "bens word", IssuedAt: now}, ""); err != nil {
		t.Fatal(err)
	}
	if err := keys.Erase(ctx, "ben"); err != nil {
		t.Fatal(err)
	}
	start(t, decider.Config{Kafka: k.Cluster, Names: k.Names, Sealer: keys, Opener: keys})

	waitFor(t, 20*time.Second, "two events and a reply", func() bool { return events.len() >= 2 && replies.len() >= 1 })
	for _, m := range events.snapshot() {
		a, err := kafkalog.Decode(m)
		if err != nil {
			t.Fatal(err)
		}
		if !a.Sealed || bytes.Contains(m.Value, []byte("quiet")) || bytes.Contains(m.Value, []byte("Quiet")) {
			t.Errorf("event %s: sealed %v, value %s", a.Type, a.Sealed, m.Value)
		}
		opened, err := keys.OpenEvent(ctx, a, m.Value)
		if err != nil || !bytes.Contains(opened, []byte("Quiet Room")) && !bytes.Contains(opened, []byte("a quiet word")) {
			t.Errorf("event %s opens to %s, %v; want ann's words", a.Type, opened, err)
		}
	}
	r := replies.snapshot()[0]
	a, err := kafkalog.Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	v, err := schemas.Decode(a.Type, r.Value)
	if rej, ok := v.(*schemas.CommandRejectedV1); err != nil || !ok || rej.CommandID != "c2" {
		t.Errorf("reply %s %s, %v; want c2 rejected (its body reads blank)", a.Type, r.Value, err)
	}
}
