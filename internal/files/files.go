package files

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
)

// Errors of a file store.
var (
	// ErrNotFound: no object under the key.
	ErrNotFound = errors.New("no such object")
)

// UploadsPrefix is the key prefix of every upload; an upload's object is
// UploadsPrefix + conversation + "/" + upload id.
const UploadsPrefix = "uploads/"

// Key returns the object key of upload id in conversation. The upload id
// is random (NewUploadID), so a key cannot be guessed; whose upload it is
// the object's owner metadata says (MetaOwner).
func Key(conversation, uploadID string) string {
	return UploadsPrefix + conversation + "/" + uploadID
}

// ThumbnailsPrefix is the key prefix of every thumbnail.
const ThumbnailsPrefix = "thumbs/"

// ThumbnailKey returns the object key of the thumbnail of upload id in
// conversation, a JPEG beside the uploads.
func ThumbnailKey(conversation, uploadID string) string {
	return ThumbnailsPrefix + conversation + "/" + uploadID + ".jpg"
}

// ParseKey returns the conversation and upload id of an upload's key, and
// whether key is one.
func ParseKey(key string) (conversation, uploadID string, ok bool) {
	rest, ok := strings.CutPrefix(key, UploadsPrefix)
	if !ok {
		return "", "", false
	}
	conversation, uploadID, ok = strings.Cut(rest, "/")
	return conversation, uploadID, ok && conversation != "" && uploadID != "" && !strings.Contains(uploadID, "/")
}

// NewUploadID returns a new random upload id: "u_" and 32 hex digits.
func NewUploadID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return "u_" + hex.EncodeToString(b[:])
}

// User metadata of an upload's object (x-amz-meta-…), signed into its
// presigned PUT so that the uploader cannot change it.
const (
	// MetaOwner is the user who asked for the upload.
	MetaOwner = "parley-owner"
	// MetaSHA256 is the declared SHA-256 in hex, for stores that keep no
	// checksum of their own.
	MetaSHA256 = "parley-sha256"
	// MetaName is the file name, percent-encoded (metadata is ASCII).
	MetaName = "parley-name"
)

// Object is what a file store reports of an object.
type Object struct {
	Size        uint64
	ContentType string
	// SHA256 is the object's SHA-256 in lowercase hex: the store's own
	// checksum when it keeps one, else the MetaSHA256 metadata; empty when
	// neither is there.
	SHA256 string
	Owner  string
	// Name is the file name given when the upload was presigned.
	Name         string
	LastModified time.Time
}

// Upload is a presigned upload: what a client needs to PUT a file.
type Upload struct {
	UploadID string
	Key      string
	// URL is the presigned PUT URL.
	URL string
	// Headers must be sent with the PUT exactly as given: they are signed.
	Headers map[string]string
	// ExpiresAt is when URL stops working.
	ExpiresAt time.Time
}

// PutRequest is what an upload is presigned for.
type PutRequest struct {
	Key         string
	Owner       string
	Name        string
	Size        uint64
	ContentType string
	SHA256      string // lowercase hex
	TTL         time.Duration
}

// SHA256Base64 converts a hex SHA-256 to the base64 of the digest, the
// form of S3's x-amz-checksum-sha256.
func SHA256Base64(hexDigest string) (string, error) {
	b, err := hex.DecodeString(hexDigest)
	if err != nil || len(b) != 32 {
		return "", fmt.Errorf("not a hex SHA-256: %q", hexDigest)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// SHA256Hex converts S3's base64 x-amz-checksum-sha256 to lowercase hex.
func SHA256Hex(b64 string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != 32 {
		return "", fmt.Errorf("not a base64 SHA-256: %q", b64)
	}
	return hex.EncodeToString(b), nil
}

// Policy is what may be uploaded.
type Policy struct {
	// MaxSize is the largest file in bytes. Default: 100 MiB.
	MaxSize uint64
	// AllowedTypes, when not empty, are the only media types accepted;
	// an entry "type/*" accepts every subtype. Default: empty (any type
	// but DeniedTypes).
	AllowedTypes []string
	// DeniedTypes are refused even when AllowedTypes accepts them.
	// Default: DefaultDeniedTypes, executables and installers.
	DeniedTypes []string
}

// DefaultDeniedTypes are the media types of executables, scripts and
// installers, refused by default.
var DefaultDeniedTypes = []string{
	"application/x-msdownload", "application/x-msdos-program", "application/x-dosexec",
	"application/vnd.microsoft.portable-executable", "application/x-executable",
	"application/x-elf", "application/x-mach-binary", "application/x-sharedlib",
	"application/x-msi", "application/x-ms-installer", "application/vnd.android.package-archive",
	"application/x-apple-diskimage", "application/java-archive", "application/x-sh",
	"application/x-bat", "application/x-msdos-batch", "application/hta",
}

// deniedExtensions are file name extensions of executables, refused
// whatever media type the client declares.
var deniedExtensions = []string{
	".exe", ".com", ".scr", ".msi", ".dll", ".bat", ".cmd", ".ps1", ".vbs", ".js", ".jar",
	".apk", ".app", ".dmg", ".sh", ".elf", ".hta", ".pif", ".cpl", ".msp", ".lnk",
}

// WithDefaults returns p with zero fields set to their defaults.
func (p Policy) WithDefaults() Policy {
	if p.MaxSize == 0 {
		p.MaxSize = 100 << 20
	}
	if p.DeniedTypes == nil {
		p.DeniedTypes = DefaultDeniedTypes
	}
	return p
}

// Refusals of Check.
var (
	ErrTooLarge    = errors.New("file too large")
	ErrTypeRefused = errors.New("file type not accepted")
)

// Check returns why a file of name, size and content type may not be
// uploaded (wrapping ErrTooLarge or ErrTypeRefused), or nil.
func (p Policy) Check(name string, size uint64, contentType string) error {
	if size > p.MaxSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, size, p.MaxSize)
	}
	ct := strings.ToLower(contentType)
	for _, d := range p.DeniedTypes {
		if ct == strings.ToLower(d) {
			return fmt.Errorf("%w: %s", ErrTypeRefused, contentType)
		}
	}
	ext := strings.ToLower(path.Ext(name))
	for _, d := range deniedExtensions {
		if ext == d {
			return fmt.Errorf("%w: %s files", ErrTypeRefused, ext)
		}
	}
	if len(p.AllowedTypes) == 0 {
		return nil
	}
	major, _, _ := strings.Cut(ct, "/")
	for _, a := range p.AllowedTypes {
		a = strings.ToLower(a)
		if a == ct || a == major+"/*" {
			return nil
		}
	}
	return fmt.Errorf("%w: %s", ErrTypeRefused, contentType)
}
