package app

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/projections/history/scyllastore/cqlfake"
)

// On ScyllaDB the key store is shared: what one process seals, another
// opens, and an erasure in one reaches the other (here at once, told
// with Forget, as a new process would be).
func TestKeyringsShareTheScyllaKeyStore(t *testing.T) {
	t.Parallel()
	srv := cqlfake.Start(t)
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	cfg, err := Load("test", []string{
		"-data-dir", t.TempDir(), "-scylla-hosts", fmt.Sprintf("%s:%d", srv.Host(), srv.Port()), "-scylla-keyspace", "parley_keys_test",
		"-scylla-consistency", "ONE", "-content-kek", base64.StdEncoding.EncodeToString(kek),
	}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	open := func() *contentkeys.Keyring {
		keys, closeKeys, err := OpenKeyring(ctx, cfg, cfg.Logger(io.Discard))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = closeKeys() })
		return keys
	}
	a, b := open(), open()
	ct, err := a.Seal(ctx, "erin", "ev", "g_1", []byte("erin's"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := b.Open(ctx, "erin", "ev", "g_1", ct); err != nil || string(pt) != "erin's" {
		t.Fatalf("the other process opens %q, %v", pt, err)
	}
	if err := a.Erase(ctx, "erin"); err != nil {
		t.Fatal(err)
	}
	b.Forget("erin")
	if _, err := b.Open(ctx, "erin", "ev", "g_1", ct); !errors.Is(err, contentkeys.ErrUnreadable) {
		t.Errorf("after the erasure, the other process opens it: %v", err)
	}
}
