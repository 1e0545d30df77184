package mlswire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// fixture reads a hex file of testdata/. The key package there was made
// by ts-mls 1.6.4 (the client the end-to-end tests use) for identity
// "alice/phone" in suite MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
// with lifetime 1700000000 to 30 days later; the .ref file is the
// KeyPackageRef ts-mls computed for it.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	v, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseKeyPackageReadsWhatTsMLSWrote(t *testing.T) {
	t.Parallel()
	kp, err := ParseKeyPackage(fixture(t, "keypackage-alice-phone.hex"))
	if err != nil {
		t.Fatal(err)
	}
	if kp.Version != VersionMLS10 || kp.CipherSuite != X25519AES128GCMSHA256Ed25519 {
		t.Errorf("version %d suite %d", kp.Version, kp.CipherSuite)
	}
	if kp.CredentialType != CredentialBasic || string(kp.Identity) != "alice/phone" {
		t.Errorf("credential %d %q", kp.CredentialType, kp.Identity)
	}
	nb, na := time.Unix(1700000000, 0).UTC(), time.Unix(1700000000+30*86400, 0).UTC()
	if !kp.Lifetime.NotBefore.Equal(nb) || !kp.Lifetime.NotAfter.Equal(na) {
		t.Errorf("lifetime %v", kp.Lifetime)
	}
	if want := fixture(t, "keypackage-alice-phone.ref"); !bytes.Equal(kp.Ref, want) {
		t.Errorf("ref %x, ts-mls computed %x", kp.Ref, want)
	}
}

func TestParseKeyPackageRefusesTamperingAndBadFraming(t *testing.T) {
	t.Parallel()
	good := fixture(t, "keypackage-alice-phone.hex")
	identity := bytes.Index(good, []byte("alice/phone"))
	if identity < 0 {
		t.Fatal("fixture has no identity")
	}
	cases := []struct {
		name string
		edit func([]byte) []byte
	}{
		{"an identity changed after signing fails the signature", func(b []byte) []byte { b[identity] = 'm'; return b }},
		{"a flipped signature bit fails", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"a truncated package", func(b []byte) []byte { return b[:len(b)-10] }},
		{"trailing bytes", func(b []byte) []byte { return append(b, 0) }},
		{"another wire format", func(b []byte) []byte { b[3] = 1; return b }},
		{"another protocol version", func(b []byte) []byte { b[1] = 2; return b }},
		{"nothing", func([]byte) []byte { return nil }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseKeyPackage(c.edit(bytes.Clone(good)))
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v, want ErrMalformed", err)
			}
		})
	}
}

func TestVarintNeedsTheMinimalEncoding(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   []byte
		want int
		ok   bool
	}{
		{[]byte{0x25}, 37, true},
		{[]byte{0x7b, 0xbd}, 15293, true},
		{[]byte{0x40, 0x25}, 0, false},
		{[]byte{0x9d, 0x7f, 0x3e, 0x7d}, 494878333, true},
		{[]byte{0xc0, 0, 0, 0, 0, 0, 0, 1}, 0, false},
	} {
		r := &reader{b: c.in}
		got := r.varint("v")
		if (r.err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("varint %x = %d, %v; want %d ok=%v", c.in, got, r.err, c.want, c.ok)
		}
	}
}

func FuzzParseKeyPackage(f *testing.F) {
	f.Add(fixture(f, "keypackage-alice-phone.hex"))
	f.Add([]byte{0, 1, 0, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		kp, err := ParseKeyPackage(b)
		if err == nil && kp == nil {
			t.Fatal("no key package and no error")
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v is not ErrMalformed", err)
		}
	})
}
