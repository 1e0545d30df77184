// The audit trail: records of administrative actions on chat.audit.

package schemas

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// UserErasedV1 records that a user's personal content was erased: their
// data key destroyed (crypto-shredding), so that what they wrote is
// unreadable in the log and blank in every projection rebuilt from it.
// It names the user only by reference (ErasureRef), so that the record
// itself carries no personal data, yet whoever knows a user id can tell
// whether that user was erased, and when (chat.user.erased.v1 on
// chat.audit, keyed by the reference).
type UserErasedV1 struct {
	SubjectRef string    `json:"subject_ref"`
	ErasedBy   string    `json:"erased_by"`
	ErasedAt   time.Time `json:"erased_at"`
}

// ErasureRef is the reference of a user in the audit trail: the SHA-256,
// in hex, of a fixed prefix and the user id.
func ErasureRef(user string) string {
	h := sha256.Sum256([]byte("parley erasure v1\x00" + user))
	return hex.EncodeToString(h[:])
}

func (e *UserErasedV1) validate() error {
	var errs []error
	if b, err := hex.DecodeString(e.SubjectRef); err != nil || len(b) != sha256.Size {
		errs = append(errs, fmt.Errorf("bad subject_ref %q", e.SubjectRef))
	}
	if !ValidUserID(e.ErasedBy) {
		errs = append(errs, fmt.Errorf("bad erased_by %q", e.ErasedBy))
	}
	if e.ErasedAt.IsZero() {
		errs = append(errs, errors.New("no erased_at"))
	}
	return errors.Join(errs...)
}
