package s3store_test

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/contentkeys/pebblekeys"
	"github.com/parley-chat/parley/internal/disktest"
	"github.com/parley-chat/parley/internal/files"
)

// TestSealedNames: with names sealed, an upload's name goes into the
// real store's metadata as ciphertext of its owner's key — no file of
// the store holds it — and comes back in clear through the same
// decorator; once the owner's key is erased it reads as redacted, while
// the object is still there. A name from before sealing reads as it is.
func TestSealedNames(t *testing.T) {
	t.Parallel()
	raw := newStore(t, "sealednames")
	keyStore, err := pebblekeys.Open(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer keyStore.Close()
	kek := make([]byte, contentkeys.KEKSize)
	_, _ = rand.Read(kek)
	keys, err := contentkeys.New(keyStore, kek)
	if err != nil {
		t.Fatal(err)
	}
	s := files.SealNames(raw, keys)

	const name, key = "Quarterly-Salaries-Confidential.xlsx", "uploads/g_sealed/u_1"
	body := []byte("a spreadsheet")
	u, err := s.PresignPut(t.Context(), files.PutRequest{Key: key, Owner: "alice", Name: name, Size: uint64(len(body)), ContentType: "application/octet-stream", SHA256: sum(body), TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if code, msg := put(t, u, body, nil); code != 200 {
		t.Fatalf("PUT: %d %s", code, msg)
	}
	if o, err := s.Head(t.Context(), key); err != nil || o.Name != name || o.Owner != "alice" || o.Size != uint64(len(body)) {
		t.Fatalf("HEAD through the sealing store: %+v, %v; want the name %q", o, err, name)
	}
	o, err := raw.Head(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(o.Name, "Salaries") || !strings.HasPrefix(o.Name, "sealed.") {
		t.Errorf("the store's metadata holds the name %q; want it sealed", o.Name)
	}
	for k, v := range u.Headers {
		if strings.Contains(v, "Salaries") {
			t.Errorf("the signed header %s holds the name in clear: %q", k, v)
		}
	}
	if strings.Contains(u.URL, "Salaries") {
		t.Errorf("the presigned URL holds the name in clear: %s", u.URL)
	}
	found, read, err := disktest.FilesHolding(serverDir, "Salaries")
	if err != nil || read == 0 {
		t.Fatalf("scanning the store's files: %d files, %v", read, err)
	}
	for _, f := range found {
		t.Errorf("the store holds the name in clear: %s", f)
	}

	// The ciphertext opens for its own object only.
	ct, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(o.Name, "sealed."))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := keys.Open(t.Context(), "alice", key, "g_sealed", ct); err != nil || string(got) != name {
		t.Errorf("opening the sealed name for its object: %q, %v", got, err)
	}
	if _, err := keys.Open(t.Context(), "alice", "uploads/g_sealed/u_2", "g_sealed", ct); !errors.Is(err, contentkeys.ErrUnreadable) {
		t.Errorf("the sealed name opened for another object: %v", err)
	}

	if err := keys.Erase(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	if o, err := s.Head(t.Context(), key); err != nil || o.Name != contentkeys.Redacted || o.Size != uint64(len(body)) {
		t.Errorf("HEAD after the owner's erasure: %+v, %v; want the name %q", o, err, contentkeys.Redacted)
	}

	// An upload presigned before sealing was turned on keeps its name.
	const plainKey = "uploads/g_sealed/u_3"
	u = presignPut(t, raw, plainKey, body, "image/jpeg")
	if code, msg := put(t, u, body, nil); code != 200 {
		t.Fatalf("PUT: %d %s", code, msg)
	}
	if o, err := s.Head(t.Context(), plainKey); err != nil || o.Name != "Grüße/ photo.jpg" {
		t.Errorf("HEAD of an unsealed name: %+v, %v", o, err)
	}
}
