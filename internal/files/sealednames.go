package files

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/contentkeys"
)

// Sealed file names. An upload's name is written into its object's
// metadata (MetaName) when the upload is presigned, so that a message
// may attach the upload without repeating it. With crypto-shredding on,
// that copy is content of the uploader like the name in the message's
// event, and is sealed the same way: with the uploader's data key, bound
// to the object's key and conversation. Erasing the uploader makes it
// unreadable in the store, in its replicas and in its backups, with
// nothing to rewrite there.

// sealedNamePrefix starts a sealed name in the metadata; what follows is
// the ciphertext in unpadded base64url, which metadata keeps as it is.
const sealedNamePrefix = "sealed."

// Presigner is the part of a file store that writes and reads an
// upload's name: the gateway's view of it.
type Presigner interface {
	PresignPut(ctx context.Context, p PutRequest) (Upload, error)
	PresignGet(ctx context.Context, key, name, contentType string, ttl time.Duration) (string, error)
	// Head returns an error wrapping ErrNotFound for a missing key.
	Head(ctx context.Context, key string) (Object, error)
}

// Sealer seals and opens content with a user's data key
// (contentkeys.Keyring). Open's error wraps contentkeys.ErrUnreadable for
// content whose key was erased.
type Sealer interface {
	Seal(ctx context.Context, user, eventID, subject string, plaintext []byte) ([]byte, error)
	Open(ctx context.Context, user, eventID, subject string, ciphertext []byte) ([]byte, error)
}

// SealNames returns store with every upload's name sealed by sealer on
// the way in (PresignPut) and opened on the way out (Head). A name whose
// key was erased reads as contentkeys.Redacted; a name written before
// sealing was turned on reads as it is.
func SealNames(store Presigner, sealer Sealer) Presigner {
	return sealedNames{Presigner: store, sealer: sealer}
}

type sealedNames struct {
	Presigner
	sealer Sealer
}

func (s sealedNames) PresignPut(ctx context.Context, p PutRequest) (Upload, error) {
	conv, _, ok := ParseKey(p.Key)
	if !ok {
		return Upload{}, fmt.Errorf("sealing the name of %s: not an upload's key", p.Key)
	}
	ct, err := s.sealer.Seal(ctx, p.Owner, p.Key, conv, []byte(p.Name))
	if err != nil {
		return Upload{}, fmt.Errorf("sealing the name of %s: %w", p.Key, err)
	}
	p.Name = sealedNamePrefix + base64.RawURLEncoding.EncodeToString(ct)
	return s.Presigner.PresignPut(ctx, p)
}

func (s sealedNames) Head(ctx context.Context, key string) (Object, error) {
	o, err := s.Presigner.Head(ctx, key)
	if err != nil {
		return o, err
	}
	enc, sealed := strings.CutPrefix(o.Name, sealedNamePrefix)
	if !sealed {
		return o, nil
	}
	conv, _, _ := ParseKey(key)
	ct, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		o.Name = contentkeys.Redacted
		return o, nil
	}
	name, err := s.sealer.Open(ctx, o.Owner, key, conv, ct)
	switch {
	case errors.Is(err, contentkeys.ErrUnreadable):
		o.Name = contentkeys.Redacted
	case err != nil:
		return Object{}, fmt.Errorf("opening the name of %s: %w", key, err)
	default:
		o.Name = string(name)
	}
	return o, nil
}
