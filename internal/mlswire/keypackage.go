// Package mlswire reads as much of the Messaging Layer Security wire
// format (RFC 9420) as Parley, the delivery service, must check: the
// KeyPackages devices publish. Everything else MLS is opaque to the
// server.
//
// A KeyPackage arrives framed as an MLSMessage (RFC 9420 §6) with
// wire_format mls_key_package, which is how MLS clients transmit one.
// ParseKeyPackage reads its protocol version, cipher suite, the leaf
// node's credential and lifetime, checks the KeyPackage's signature with
// the leaf node's signature key (Ed25519 suites), and computes its
// KeyPackageRef (§5.2). It reads untrusted bytes: every length is
// bounds-checked and nothing is allocated beyond the input's size.
//
// Everything here is pure computation and safe for concurrent use.
package mlswire

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Protocol constants of RFC 9420.
const (
	// VersionMLS10 is protocol version mls10.
	VersionMLS10 = 1
	// WireFormatKeyPackage is the wire_format of an MLSMessage holding a
	// KeyPackage.
	WireFormatKeyPackage = 5
	// CredentialBasic is the credential_type of a BasicCredential.
	CredentialBasic = 1
	// leafSourceKeyPackage is the leaf_node_source of a KeyPackage's
	// leaf node.
	leafSourceKeyPackage = 1
)

// CipherSuite is an MLS cipher suite (RFC 9420 §17.1).
type CipherSuite uint16

// Cipher suites Parley knows by name.
const (
	// X25519AES128GCMSHA256Ed25519 is MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
	// the suite every MLS implementation must support.
	X25519AES128GCMSHA256Ed25519 CipherSuite = 1
	// X25519ChaCha20SHA256Ed25519 is MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519.
	X25519ChaCha20SHA256Ed25519 CipherSuite = 3
)

// ErrMalformed is returned for bytes that are not a well-formed
// KeyPackage, or whose signature does not verify.
var ErrMalformed = errors.New("malformed MLS key package")

// Lifetime is a leaf node's validity interval (RFC 9420 §7.2).
type Lifetime struct {
	NotBefore, NotAfter time.Time
}

// KeyPackage is what the delivery service reads of a KeyPackage.
type KeyPackage struct {
	Version     uint16
	CipherSuite CipherSuite
	// CredentialType is the leaf node's credential type; Identity is the
	// identity of a BasicCredential (nil for other types).
	CredentialType uint16
	Identity       []byte
	// SignatureKey is the leaf node's signature public key.
	SignatureKey []byte
	Lifetime     Lifetime
	// Ref is the KeyPackageRef (RFC 9420 §5.2), the hash the group's
	// members name this KeyPackage by.
	Ref []byte
}

// reader reads TLS presentation language values from untrusted bytes.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated or bad %s at byte %d", ErrMalformed, what, r.off)
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil || n < 0 || n > len(r.b)-r.off {
		r.fail(what)
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8(what string) uint8 {
	v := r.take(1, what)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) u16(what string) uint16 {
	v := r.take(2, what)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint16(v)
}

func (r *reader) u64(what string) uint64 {
	v := r.take(8, what)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// varint reads a variable-length integer (RFC 9420 §2.1.2): the top two
// bits of the first byte give its length, 1, 2 or 4 bytes; the minimum
// encoding is required.
func (r *reader) varint(what string) int {
	first := r.take(1, what)
	if first == nil {
		return 0
	}
	switch first[0] >> 6 {
	case 0:
		return int(first[0])
	case 1:
		rest := r.take(1, what)
		if rest == nil {
			return 0
		}
		v := int(first[0]&0x3f)<<8 | int(rest[0])
		if v < 64 {
			r.fail(what + " (non-minimal length)")
		}
		return v
	case 2:
		rest := r.take(3, what)
		if rest == nil {
			return 0
		}
		v := int(first[0]&0x3f)<<24 | int(rest[0])<<16 | int(rest[1])<<8 | int(rest[2])
		if v < 1<<14 {
			r.fail(what + " (non-minimal length)")
		}
		return v
	}
	r.fail(what + " (length prefix)")
	return 0
}

// vector reads an opaque<V>.
func (r *reader) vector(what string) []byte {
	return r.take(r.varint(what), what)
}

// ParseKeyPackage reads an MLSMessage holding a KeyPackage. It checks the
// framing, that the leaf node is a KeyPackage leaf with a lifetime, that
// nothing follows the message, and — for the Ed25519 suites — the
// KeyPackage's signature. Cipher suite, credential and lifetime are the
// caller's to judge.
func ParseKeyPackage(b []byte) (*KeyPackage, error) {
	r := &reader{b: b}
	if v := r.u16("version"); r.err == nil && v != VersionMLS10 {
		return nil, fmt.Errorf("%w: protocol version %d, want mls10", ErrMalformed, v)
	}
	if wf := r.u16("wire_format"); r.err == nil && wf != WireFormatKeyPackage {
		return nil, fmt.Errorf("%w: wire_format %d, want mls_key_package (%d)", ErrMalformed, wf, WireFormatKeyPackage)
	}
	start := r.off
	kp := &KeyPackage{}
	kp.Version = r.u16("key package version")
	kp.CipherSuite = CipherSuite(r.u16("cipher_suite"))
	r.vector("init_key")
	// LeafNode.
	r.vector("encryption_key")
	kp.SignatureKey = r.vector("signature_key")
	kp.CredentialType = r.u16("credential_type")
	switch kp.CredentialType {
	case CredentialBasic:
		kp.Identity = r.vector("identity")
	default:
		// x509 and others: a vector of certificates, skipped whole.
		r.vector("credential")
	}
	for _, field := range []string{"capabilities.versions", "capabilities.cipher_suites", "capabilities.extensions", "capabilities.proposals", "capabilities.credentials"} {
		r.vector(field)
	}
	if src := r.u8("leaf_node_source"); r.err == nil && src != leafSourceKeyPackage {
		return nil, fmt.Errorf("%w: leaf_node_source %d, want key_package", ErrMalformed, src)
	}
	kp.Lifetime.NotBefore = unixTime(r.u64("not_before"))
	kp.Lifetime.NotAfter = unixTime(r.u64("not_after"))
	r.vector("leaf extensions")
	r.vector("leaf signature")
	// KeyPackage extensions, then its signature over everything before.
	r.vector("extensions")
	tbsEnd := r.off
	sig := r.vector("signature")
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(b) {
		return nil, fmt.Errorf("%w: %d bytes after the key package", ErrMalformed, len(b)-r.off)
	}
	if kp.Version != VersionMLS10 {
		return nil, fmt.Errorf("%w: key package version %d, want mls10", ErrMalformed, kp.Version)
	}
	switch kp.CipherSuite {
	case X25519AES128GCMSHA256Ed25519, X25519ChaCha20SHA256Ed25519:
		if len(kp.SignatureKey) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: Ed25519 signature key of %d bytes", ErrMalformed, len(kp.SignatureKey))
		}
		if !ed25519.Verify(kp.SignatureKey, signContent("KeyPackageTBS", b[start:tbsEnd]), sig) {
			return nil, fmt.Errorf("%w: the signature does not verify", ErrMalformed)
		}
		kp.Ref = refHash("MLS 1.0 KeyPackage Reference", b[start:])
	}
	return kp, nil
}

// unixTime is a lifetime bound, seconds since the epoch, as a time;
// values beyond what time.Time holds are clamped to the far future.
func unixTime(s uint64) time.Time {
	const maxUnix = 1 << 62
	if s > maxUnix {
		s = maxUnix
	}
	return time.Unix(int64(s), 0).UTC()
}

// appendVector appends b as an opaque<V>.
func appendVector(out, b []byte) []byte {
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

// signContent is the SignContent that SignWithLabel signs (RFC 9420
// §5.1.2).
func signContent(label string, content []byte) []byte {
	out := appendVector(nil, []byte("MLS 1.0 "+label))
	return appendVector(out, content)
}

// refHash is RefHash (RFC 9420 §5.2) with SHA-256, the hash of the
// Ed25519 suites Parley reads.
func refHash(label string, value []byte) []byte {
	in := appendVector(nil, []byte(label))
	in = appendVector(in, value)
	h := sha256.Sum256(in)
	return h[:]
}
