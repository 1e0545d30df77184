// Attachments: the files a message carries, as metadata of objects in the
// file store. A file's bytes never enter the log.

package schemas

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/internal/bytepattern"
)

// Attachment is a file a message carries: the metadata of an object the
// sender uploaded to the file store, never its bytes. The object's key is
// derived from the conversation, the sender and UploadID, so an
// attachment can only name an upload of its own sender.
type Attachment struct {
	// UploadID is the upload the gateway issued (POST …/uploads).
	UploadID string `json:"upload_id"`
	// Name is the file's name as the sender gave it, at most
	// MaxFileNameBytes of UTF-8 without path separators.
	Name string `json:"name"`
	// Size is the object's size in bytes.
	Size uint64 `json:"size"`
	// ContentType is the object's media type.
	ContentType string `json:"content_type"`
	// SHA256 is the object's SHA-256, 64 lowercase hex digits.
	SHA256 string `json:"sha256"`
}

// MaxFileNameBytes is the longest file name of an attachment, in bytes.
const MaxFileNameBytes = 255

var (
	uploadIDPattern    = bytepattern.MustCompile(`^u_[0-9a-f]{32}$`)
	sha256Pattern      = bytepattern.MustCompile(`^[0-9a-f]{64}$`)
	contentTypePattern = bytepattern.MustCompile(`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`)
)

// ValidUploadID reports whether s is an upload id: "u_" and 32 lowercase
// hex digits.
func ValidUploadID(s string) bool { return uploadIDPattern.MatchString(s) }

// ValidSHA256 reports whether s is a SHA-256 in 64 lowercase hex digits.
func ValidSHA256(s string) bool { return sha256Pattern.MatchString(s) }

// ValidContentType reports whether s is a bare media type (type/subtype,
// no parameters).
func ValidContentType(s string) bool { return contentTypePattern.MatchString(s) }

// ValidFileName reports whether s can name an attachment: 1 to
// MaxFileNameBytes of UTF-8, no path separators or control characters,
// and not "." or "..".
func ValidFileName(s string) bool {
	if s == "" || len(s) > MaxFileNameBytes || !utf8.ValidString(s) || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return r == '/' || r == '\\' || r < 0x20 || r == 0x7f
	})
}

// Validate reports what is wrong with a, if anything.
func (a Attachment) Validate() error {
	var errs []error
	if !ValidUploadID(a.UploadID) {
		errs = append(errs, fmt.Errorf("bad upload_id %q", a.UploadID))
	}
	if !ValidFileName(a.Name) {
		errs = append(errs, fmt.Errorf("bad file name %q", a.Name))
	}
	if !ValidContentType(a.ContentType) {
		errs = append(errs, fmt.Errorf("bad content_type %q", a.ContentType))
	}
	if !ValidSHA256(a.SHA256) {
		errs = append(errs, fmt.Errorf("bad sha256 %q", a.SHA256))
	}
	return errors.Join(errs...)
}

func validAttachments(as []Attachment) error {
	var errs []error
	seen := make(map[string]bool, len(as))
	for i, a := range as {
		if err := a.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("attachment %d: %w", i, err))
		}
		if seen[a.UploadID] {
			errs = append(errs, fmt.Errorf("attachment %d: upload %s attached twice", i, a.UploadID))
		}
		seen[a.UploadID] = true
	}
	return errors.Join(errs...)
}

// AddThumbnailV1 asks to record the thumbnail the files projection made
// of a message's image (chat.thumbnail.add.v1). The files projection
// appends it on behalf of the message's sender (UserID); no client can.
type AddThumbnailV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	MessageSeq     uint64    `json:"message_seq"`
	UploadID       string    `json:"upload_id"`
	Width          uint64    `json:"width"`
	Height         uint64    `json:"height"`
	Size           uint64    `json:"size"`
	IssuedAt       time.Time `json:"issued_at"`
}

// ThumbnailAddedV1 is a thumbnail of a message's image, stored in the
// file store beside it (chat.thumbnail.added.v1): a JPEG of Width×Height
// and Size bytes.
type ThumbnailAddedV1 struct {
	ConversationID string    `json:"conversation_id"`
	Seq            uint64    `json:"seq"`
	UserID         string    `json:"user_id"`
	MessageSeq     uint64    `json:"message_seq"`
	UploadID       string    `json:"upload_id"`
	Width          uint64    `json:"width"`
	Height         uint64    `json:"height"`
	Size           uint64    `json:"size"`
	CommandID      string    `json:"command_id"`
	AddedAt        time.Time `json:"added_at"`
}

func (c *AddThumbnailV1) validate() error {
	err := errors.Join(checkIDs(c.UserID, c.ConversationID, c.CommandID), needSeq("message_seq", c.MessageSeq))
	if !ValidUploadID(c.UploadID) {
		err = errors.Join(err, fmt.Errorf("bad upload_id %q", c.UploadID))
	}
	return err
}

// IDs implements Command.
func (c *AddThumbnailV1) IDs() (commandID, userID, conversationID string) {
	return c.CommandID, c.UserID, c.ConversationID
}

func (e *ThumbnailAddedV1) validate() error {
	err := errors.Join(checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq), needSeq("message_seq", e.MessageSeq))
	if !ValidUploadID(e.UploadID) {
		err = errors.Join(err, fmt.Errorf("bad upload_id %q", e.UploadID))
	}
	return err
}
