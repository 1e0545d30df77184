package contentkeys_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// The cost the decider pays per message it seals, and a reader per
// message it opens: a chat.message.sent.v3 with one file, its owner's
// key already unwrapped.
func BenchmarkSealEvent_MessageWithOneFile(b *testing.B) {
	r, value, attrs := benchSetup(b)
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := r.SealEvent(ctx, attrs, value); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenEvent_MessageWithOneFile(b *testing.B) {
	r, value, attrs := benchSetup(b)
	ctx := context.Background()
	env, _, err := r.SealEvent(ctx, attrs, value)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := r.OpenEvent(ctx, attrs, env); err != nil {
			b.Fatal(err)
		}
	}
}

// The cost a history store pays per message to learn whose it is.
func BenchmarkOwner_MessageWithOneFile(b *testing.B) {
	value, err := os.ReadFile(filepath.Join("..", "..", "schemas", "testdata", schemas.TypeMessageSentV3+".json"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, ok := contentkeys.Owner(schemas.TypeMessageSentV3, value); !ok {
			b.Fatal("no owner")
		}
	}
}

func benchSetup(b *testing.B) (*contentkeys.Keyring, []byte, schemas.Attributes) {
	b.Helper()
	value, err := os.ReadFile(filepath.Join("..", "..", "schemas", "testdata", schemas.TypeMessageSentV3+".json"))
	if err != nil {
		b.Fatal(err)
	}
	return keyringFor(b), value, kafkalog.NewAttributes(schemas.TypeMessageSentV3, "g_1", time.Now())
}
