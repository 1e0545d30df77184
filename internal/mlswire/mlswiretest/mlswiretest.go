// Package mlswiretest makes MLS KeyPackages for tests of the Go side:
// well-formed, signed with a fresh Ed25519 key in suite
// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, with the identity and
// lifetime a test asks for. Its packages are real enough for everything
// the server checks; the end-to-end tests use ts-mls's own.
package mlswiretest

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"time"
)

// KeyPackage returns an MLSMessage holding a KeyPackage of a basic
// credential with identity, valid from notBefore to notAfter, in suite
// suite (1 for the usual one), signed by a fresh key.
func KeyPackage(identity string, notBefore, notAfter time.Time, suite uint16) []byte {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	initKey := x25519()
	encKey := x25519()
	var leaf []byte
	leaf = vec(leaf, encKey)
	leaf = vec(leaf, pub)
	leaf = binary.BigEndian.AppendUint16(leaf, 1) // basic credential
	leaf = vec(leaf, []byte(identity))
	for range 5 { // capabilities: empty vectors
		leaf = vec(leaf, nil)
	}
	leaf = append(leaf, 1) // leaf_node_source key_package
	leaf = binary.BigEndian.AppendUint64(leaf, uint64(notBefore.Unix()))
	leaf = binary.BigEndian.AppendUint64(leaf, uint64(notAfter.Unix()))
	leaf = vec(leaf, nil) // leaf extensions
	leaf = vec(leaf, ed25519.Sign(priv, signContent("LeafNodeTBS", leaf)))

	var tbs []byte
	tbs = binary.BigEndian.AppendUint16(tbs, 1)
	tbs = binary.BigEndian.AppendUint16(tbs, suite)
	tbs = vec(tbs, initKey)
	tbs = append(tbs, leaf...)
	tbs = vec(tbs, nil) // extensions
	kp := vec(tbs, ed25519.Sign(priv, signContent("KeyPackageTBS", tbs)))

	out := []byte{0, 1, 0, 5} // mls10, mls_key_package
	return append(out, kp...)
}

func x25519() []byte {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return k.PublicKey().Bytes()
}

func vec(out, b []byte) []byte {
	switch n := len(b); {
	case n < 64:
		out = append(out, byte(n))
	case n < 1<<14:
		out = append(out, byte(n>>8)|0x40, byte(n))
	default:
		out = append(out, byte(n>>24)|0x80, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, b...)
}

func signContent(label string, content []byte) []byte {
	return vec(vec(nil, []byte("MLS 1.0 "+label)), content)
}
