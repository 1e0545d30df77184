package files_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/files"
	"github.com/parley-chat/parley/schemas"
)

// TestPolicy: the default policy takes any type up to 100 MiB but
// executables, by media type or by name; a list of allowed types, with
// type/* wildcards, refuses the rest.
func TestPolicy(t *testing.T) {
	t.Parallel()
	def := files.Policy{}.WithDefaults()
	images := files.Policy{AllowedTypes: []string{"image/*", "application/pdf"}}.WithDefaults()
	for _, tt := range []struct {
		name   string
		p      files.Policy
		file   string
		size   uint64
		typ    string
		refuse error
	}{
		{"a photo", def, "photo.jpg", 5 << 20, "image/jpeg", nil},
		{"exactly the limit", def, "big.bin", 100 << 20, "application/octet-stream", nil},
		{"over the limit", def, "big.bin", 100<<20 + 1, "application/octet-stream", files.ErrTooLarge},
		{"a Windows executable by type", def, "tool", 10, "application/x-msdownload", files.ErrTypeRefused},
		{"an executable by name, whatever its type", def, "Setup.EXE", 10, "application/octet-stream", files.ErrTypeRefused},
		{"a shell script by name", def, "install.sh", 10, "text/plain", files.ErrTypeRefused},
		{"an Android package by type", def, "app", 10, "application/vnd.android.package-archive", files.ErrTypeRefused},
		{"an allowed wildcard", images, "a.png", 10, "image/png", nil},
		{"an allowed type", images, "a.pdf", 10, "application/pdf", nil},
		{"a type outside the list", images, "a.txt", 10, "text/plain", files.ErrTypeRefused},
		{"executables stay refused with a list", files.Policy{AllowedTypes: []string{"application/*"}}.WithDefaults(), "x", 10, "application/x-msdownload", files.ErrTypeRefused},
	} {
		err := tt.p.Check(tt.file, tt.size, tt.typ)
		if (tt.refuse == nil) != (err == nil) || (tt.refuse != nil && !errors.Is(err, tt.refuse)) {
			t.Errorf("%s: Check = %v, want %v", tt.name, err, tt.refuse)
		}
	}
}

// TestKeysAndDigests: keys round-trip, upload ids are new each time and
// valid, and the two SHA-256 forms convert into each other.
func TestKeysAndDigests(t *testing.T) {
	t.Parallel()
	id := files.NewUploadID()
	if !schemas.ValidUploadID(id) || id == files.NewUploadID() {
		t.Fatalf("upload id %q", id)
	}
	conv, got, ok := files.ParseKey(files.Key("g_1", id))
	if !ok || conv != "g_1" || got != id {
		t.Errorf("ParseKey(Key) = %q %q %v", conv, got, ok)
	}
	for _, bad := range []string{"thumbs/g_1/x.jpg", "uploads/g_1", "uploads//u", "uploads/g_1/u/x"} {
		if _, _, ok := files.ParseKey(bad); ok {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
	hex := strings.Repeat("0f", 32)
	b64, err := files.SHA256Base64(hex)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := files.SHA256Hex(b64); err != nil || back != hex {
		t.Errorf("round trip: %q %v", back, err)
	}
	if _, err := files.SHA256Base64("abc"); err == nil {
		t.Error("a short digest converted")
	}
}
