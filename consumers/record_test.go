package consumers_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/contentkeys/pebblekeys"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// DecodeRecord, the one decoding of records: a plain record as it is; a
// sealed one opened with the keyring, redacted without one or after the
// erasure, an error when the key store cannot be read; Original gives
// back the sealed record to copy.
func TestDecodeRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	value, err := os.ReadFile(filepath.Join("..", "schemas", "testdata", schemas.TypeMessageSentV2+".json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	store, err := pebblekeys.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	kek := make([]byte, contentkeys.KEKSize)
	_, _ = rand.Read(kek)
	keys, err := contentkeys.New(store, kek)
	if err != nil {
		t.Fatal(err)
	}
	attrs := kafkalog.NewAttributes(schemas.TypeMessageSentV2, "g_1", time.Now())
	attrs.Seq, attrs.HasSeq = 44, true
	plain := kafkalog.Encode(attrs, value)
	env, ok, err := keys.SealEvent(ctx, attrs, value)
	if err != nil || !ok {
		t.Fatalf("sealing: %v", err)
	}
	sa := attrs
	sa.Sealed = true
	sealed := kafkalog.Encode(sa, env)
	body := []byte(`"body":"`)

	rec, err := consumers.DecodeRecord(ctx, plain, keys)
	if err != nil || !bytes.Equal(rec.Message.Value, value) || rec.Attrs.Sealed || !bytes.Equal(rec.Original().Value, value) {
		t.Errorf("a plain record: %v, %s", err, rec.Message.Value)
	}
	rec, err = consumers.DecodeRecord(ctx, sealed, keys)
	if err != nil || !rec.Attrs.Sealed || len(bodyOf(t, value)) == 0 || !bytes.Contains(rec.Message.Value, bodyOf(t, value)) {
		t.Errorf("a sealed record with the keyring: %v, %s", err, rec.Message.Value)
	}
	if !bytes.Equal(rec.Original().Value, env) {
		t.Error("Original does not give back the sealed envelope")
	}
	if _, err := schemas.Decode(rec.Attrs.Type, rec.Message.Value); err != nil {
		t.Errorf("the opened value does not decode: %v", err)
	}
	rec, err = consumers.DecodeRecord(ctx, sealed, nil)
	if err != nil || !bytes.Contains(rec.Message.Value, append(body, '"')) {
		t.Errorf("a sealed record without a keyring: %v, %s; want the body blank", err, rec.Message.Value)
	}
	if err := keys.Erase(ctx, ownerOf(t, value)); err != nil {
		t.Fatal(err)
	}
	rec, err = consumers.DecodeRecord(ctx, sealed, keys)
	if err != nil || !bytes.Contains(rec.Message.Value, append(body, '"')) {
		t.Errorf("a sealed record after the erasure: %v, %s; want the body blank", err, rec.Message.Value)
	}
	// Another user's sealed record, with the key store closed: an error,
	// never the record redacted by mistake.
	other := attrs
	other.ID = "ev-2"
	env2, _, err := keys.SealEvent(ctx, other, bytes.Replace(value, []byte(ownerOf(t, value)), []byte("zed"), 1))
	if err != nil {
		t.Fatal(err)
	}
	other.Sealed = true
	keys.Forget("zed")
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := consumers.DecodeRecord(ctx, kafkalog.Encode(other, env2), keys); err == nil || errors.Is(err, contentkeys.ErrUnreadable) {
		t.Errorf("with the key store closed: %v; want an error that is not an erasure", err)
	}
}

func ownerOf(t *testing.T, value []byte) string {
	t.Helper()
	v, err := schemas.Decode(schemas.TypeMessageSentV2, value)
	if err != nil {
		t.Fatal(err)
	}
	return v.(*schemas.MessageSentV2).SenderID
}

func bodyOf(t *testing.T, value []byte) []byte {
	t.Helper()
	v, err := schemas.Decode(schemas.TypeMessageSentV2, value)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(v.(*schemas.MessageSentV2).Body)
}
