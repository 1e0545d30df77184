// Identifiers: which user, conversation and command ids are well formed,
// and how conversation ids are derived.

package schemas

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/parley-chat/parley/internal/bytepattern"
)

var (
	userIDPattern         = bytepattern.MustCompile(`^[A-Za-z0-9._@+-]{1,128}$`)
	conversationIDPattern = bytepattern.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	commandIDPattern      = bytepattern.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
)

// ValidUserID reports whether s is a well-formed user id.
func ValidUserID(s string) bool { return userIDPattern.MatchString(s) }

// ValidConversationID reports whether s is a well-formed conversation id.
func ValidConversationID(s string) bool { return conversationIDPattern.MatchString(s) }

// ValidCommandID reports whether s is a well-formed client command id.
func ValidCommandID(s string) bool { return commandIDPattern.MatchString(s) }

// DirectConversationID is the id of the direct conversation between a and
// b; the same pair in either order always gives the same id.
func DirectConversationID(a, b string) string {
	if b < a {
		a, b = b, a
	}
	sum := sha256.Sum256([]byte("direct\x00" + a + "\x00" + b))
	return "d_" + hex.EncodeToString(sum[:16])
}

// GroupConversationID is the id of the group created by user with the
// client command id commandID, so a retried create yields the same group.
func GroupConversationID(user, commandID string) string {
	sum := sha256.Sum256([]byte("group\x00" + user + "\x00" + commandID))
	return "g_" + hex.EncodeToString(sum[:16])
}

func checkIDs(user, conversation, command string) error {
	var errs []error
	if !ValidUserID(user) {
		errs = append(errs, fmt.Errorf("bad user id %q", user))
	}
	if !ValidConversationID(conversation) {
		errs = append(errs, fmt.Errorf("bad conversation id %q", conversation))
	}
	if !ValidCommandID(command) {
		errs = append(errs, fmt.Errorf("bad command id %q", command))
	}
	return errors.Join(errs...)
}
