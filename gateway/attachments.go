// Files: presigned uploads, the check of a message's attachments against
// the file store before its command is appended, and presigned downloads.
// Bytes never pass through the gateway.

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/parley-chat/parley/internal/files"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// FileStore is the file store as the gateway uses it (s3store.Store):
// presigning uploads and downloads, and reading what it holds of an
// upload. Its methods are safe for concurrent use.
type FileStore interface {
	PresignPut(ctx context.Context, p files.PutRequest) (files.Upload, error)
	PresignGet(ctx context.Context, key, name, contentType string, ttl time.Duration) (string, error)
	// Head returns an error wrapping files.ErrNotFound for a missing key.
	Head(ctx context.Context, key string) (files.Object, error)
}

// Error codes of files.
const (
	// codeFileTypeRefused: the upload's media type or file name extension
	// is not accepted (executables by default).
	codeFileTypeRefused = "file_type_refused"
	// codeUploadInvalid: an attachment names an upload that does not
	// exist, is not the sender's, is incomplete, or does not match what
	// the message declares of it.
	codeUploadInvalid = "upload_invalid"
)

type uploadRequest struct {
	Name        string  `json:"name"`
	Size        *uint64 `json:"size"`
	ContentType string  `json:"content_type"`
	SHA256      string  `json:"sha256"`
}

type uploadResponse struct {
	UploadID  string            `json:"upload_id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	ExpiresAt time.Time         `json:"expires_at"`
}

// postUpload serves POST /v1/conversations/{id}/uploads: a presigned PUT
// for one file of a member, within the upload policy and the user's
// upload rate.
func (s *Server) postUpload(w http.ResponseWriter, r *http.Request) {
	me := identity(r.Context()).UserID
	var req uploadRequest
	if e := s.decodeBody(w, r, &req); e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	c, e := s.member(r.Context(), me, chi.URLParam(r, "id"))
	if e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	if e := checkUpload(req); e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	if err := s.cfg.FilePolicy.Check(req.Name, *req.Size, req.ContentType); err != nil {
		code := codeFileTypeRefused
		if errors.Is(err, files.ErrTooLarge) {
			code = codeTooLarge
		}
		writeProblem(w, s.reject("gateway", newError(code, err.Error())))
		return
	}
	if rf := c.Writable(me); rf != nil {
		writeProblem(w, s.reject("gateway", refused(rf)))
		return
	}
	if s.cfg.Files == nil {
		writeProblem(w, newError(codeUnavailable, "no file store is configured"))
		return
	}
	if e := s.diskLow(); e != nil {
		writeProblem(w, e)
		return
	}
	if wait := s.userUploads.take(me); wait > 0 {
		writeProblem(w, s.reject("gateway", rateLimited("uploads", wait)))
		return
	}
	id := files.NewUploadID()
	up, err := s.cfg.Files.PresignPut(r.Context(), files.PutRequest{
		Key: files.Key(c.ID, id), Owner: me, Name: req.Name, Size: *req.Size,
		ContentType: req.ContentType, SHA256: req.SHA256, TTL: s.cfg.UploadURLTTL,
	})
	if err != nil {
		s.log.Error("presigning an upload", "conversation_id", c.ID, "err", err)
		writeProblem(w, newError(codeUnavailable, "file store unavailable"))
		return
	}
	writeJSON(w, http.StatusCreated, uploadResponse{UploadID: id, Method: http.MethodPut, URL: up.URL, Headers: up.Headers, ExpiresAt: up.ExpiresAt})
}

func checkUpload(req uploadRequest) *apiError {
	switch {
	case !schemas.ValidFileName(req.Name):
		return newError(codeInvalidRequest, "name must be 1-255 bytes of UTF-8 without '/', '\\' or control characters")
	case req.Size == nil || *req.Size == 0:
		return newError(codeInvalidRequest, "size is required, at least 1 byte")
	case !schemas.ValidContentType(req.ContentType):
		return newError(codeInvalidRequest, "content_type must be a media type (type/subtype, no parameters)")
	case !schemas.ValidSHA256(req.SHA256):
		return newError(codeInvalidRequest, "sha256 must be 64 lowercase hex digits")
	}
	return nil
}

// attachmentRequest is an attachment of a send: the upload, and
// optionally what the sender declares of it, which must match the file
// store's object.
type attachmentRequest struct {
	UploadID    string  `json:"upload_id"`
	Name        string  `json:"name,omitempty"`
	Size        *uint64 `json:"size,omitempty"`
	ContentType string  `json:"content_type,omitempty"`
	SHA256      string  `json:"sha256,omitempty"`
}

// attachments checks each attachment of a message of user to conv
// against the file store (a HEAD each) and returns their metadata for
// the command. The object must exist under the conversation's key for
// its upload id, be user's upload, carry a SHA-256, be within the upload
// policy and young enough not to be swept, and match every declared
// field.
func (s *Server) attachments(ctx context.Context, user, conv string, reqs []attachmentRequest) ([]schemas.Attachment, *apiError) {
	if len(reqs) == 0 {
		return nil, nil
	}
	if len(reqs) > s.cfg.Limits.MaxAttachments {
		return nil, newError(schemas.CodeLimitExceeded, "a message carries at most "+strconv.Itoa(s.cfg.Limits.MaxAttachments)+" files")
	}
	if s.cfg.Files == nil {
		return nil, newError(codeUnavailable, "no file store is configured")
	}
	out := make([]schemas.Attachment, 0, len(reqs))
	seen := make(map[string]bool, len(reqs))
	for i, a := range reqs {
		bad := func(why string) *apiError {
			return newError(codeUploadInvalid, "attachment "+strconv.Itoa(i)+": "+why)
		}
		if !schemas.ValidUploadID(a.UploadID) {
			return nil, bad("upload_id must be an id from POST /v1/conversations/{id}/uploads")
		}
		if seen[a.UploadID] {
			return nil, bad("upload " + a.UploadID + " is attached twice")
		}
		seen[a.UploadID] = true
		o, err := s.cfg.Files.Head(ctx, files.Key(conv, a.UploadID))
		switch {
		case errors.Is(err, files.ErrNotFound):
			return nil, bad("no upload " + a.UploadID + " in this conversation: upload the file first")
		case err != nil:
			s.log.Error("reading an upload", "conversation_id", conv, "err", err)
			return nil, newError(codeUnavailable, "file store unavailable")
		}
		if o.Owner != user {
			// Not telling whose: as if it did not exist.
			return nil, bad("no upload " + a.UploadID + " in this conversation: upload the file first")
		}
		name := a.Name
		if name == "" {
			name = o.Name
		}
		at := schemas.Attachment{UploadID: a.UploadID, Name: name, Size: o.Size, ContentType: o.ContentType, SHA256: o.SHA256}
		switch {
		case a.Size != nil && *a.Size != o.Size:
			return nil, bad("size " + strconv.FormatUint(*a.Size, 10) + " declared, the upload has " + strconv.FormatUint(o.Size, 10))
		case a.ContentType != "" && a.ContentType != o.ContentType:
			return nil, bad("content_type " + a.ContentType + " declared, the upload has " + o.ContentType)
		case a.SHA256 != "" && a.SHA256 != o.SHA256:
			return nil, bad("sha256 declared does not match the upload's")
		case s.cfg.Now().Sub(o.LastModified) > s.cfg.UploadMaxAge:
			return nil, bad("the upload is too old to attach; upload the file again")
		case s.cfg.FilePolicy.Check(name, o.Size, o.ContentType) != nil:
			return nil, bad("the upload is outside the upload policy")
		}
		if err := at.Validate(); err != nil {
			return nil, bad(err.Error())
		}
		out = append(out, at)
	}
	return out, nil
}

// getAttachment serves GET
// /v1/conversations/{id}/messages/{seq}/attachments/{n}: a redirect (302)
// to a short-lived presigned download of the message's file n (from 0),
// for current members only; ?redirect=false answers the URL as JSON.
func (s *Server) getAttachment(w http.ResponseWriter, r *http.Request) { s.download(w, r, false) }

// getThumbnail serves GET
// /v1/conversations/{id}/messages/{seq}/attachments/{n}/thumbnail: the
// same for the file's thumbnail, once the thumbnail projection has made
// it (404 not_found before, and for files that get none).
func (s *Server) getThumbnail(w http.ResponseWriter, r *http.Request) { s.download(w, r, true) }

func (s *Server) download(w http.ResponseWriter, r *http.Request, thumbnail bool) {
	me := identity(r.Context()).UserID
	c, e := s.member(r.Context(), me, chi.URLParam(r, "id"))
	if e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	seq, e := messageSeq(r)
	if e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	n, err := strconv.Atoi(chi.URLParam(r, "n"))
	if err != nil || n < 0 {
		writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, "the attachment number is an integer from 0")))
		return
	}
	redirect := true
	switch r.URL.Query().Get("redirect") {
	case "", "true":
	case "false":
		redirect = false
	default:
		writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, "redirect is true or false")))
		return
	}
	a, e := s.attachment(r.Context(), c, seq, n)
	if e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	if s.cfg.Files == nil {
		writeProblem(w, newError(codeUnavailable, "no file store is configured"))
		return
	}
	key, name, contentType, size := files.Key(c.ID, a.UploadID), a.Name, a.ContentType, a.Size
	if thumbnail {
		key, name, contentType = files.ThumbnailKey(c.ID, a.UploadID), strings.TrimSuffix(a.Name, path.Ext(a.Name))+".thumbnail.jpg", "image/jpeg"
		o, err := s.cfg.Files.Head(r.Context(), key)
		switch {
		case errors.Is(err, files.ErrNotFound):
			writeProblem(w, s.reject("gateway", newError(codeNotFound, "the file has no thumbnail (yet): only JPEG, PNG and GIF images get one")))
			return
		case err != nil:
			s.log.Error("reading a thumbnail", "conversation_id", c.ID, "err", err)
			writeProblem(w, newError(codeUnavailable, "file store unavailable"))
			return
		}
		size = o.Size
	}
	link, err := s.cfg.Files.PresignGet(r.Context(), key, name, contentType, s.cfg.DownloadURLTTL)
	if err != nil {
		s.log.Error("presigning a download", "conversation_id", c.ID, "err", err)
		writeProblem(w, newError(codeUnavailable, "file store unavailable"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if !redirect {
		writeJSON(w, http.StatusOK, map[string]any{"url": link, "expires_at": s.cfg.Now().Add(s.cfg.DownloadURLTTL).UTC(), "name": name, "size": size, "content_type": contentType})
		return
	}
	// No body: http.Redirect's HTML would only repeat the URL.
	w.Header().Set("Location", link)
	w.WriteHeader(http.StatusFound)
}

// attachment returns file n of the message at seq of c, from history: a
// deleted message has none.
func (s *Server) attachment(ctx context.Context, c history.Conversation, seq uint64, n int) (schemas.Attachment, *apiError) {
	notFound := newError(schemas.CodeMessageNotFound, "no message with seq "+strconv.FormatUint(seq, 10))
	if seq > c.LastSeq {
		return schemas.Attachment{}, notFound
	}
	page, err := s.cfg.History.Page(ctx, c.ID, history.PageQuery{Forward: true, After: seq - 1, Limit: 1})
	if err != nil {
		s.log.Error("reading history", "conversation_id", c.ID, "err", err)
		return schemas.Attachment{}, newError(codeUnavailable, "history store unavailable")
	}
	if len(page.Events) == 0 || page.Events[0].Seq != seq || !schemas.IsMessage(page.Events[0].Type) {
		return schemas.Attachment{}, notFound
	}
	ev := page.Events[0]
	if ev.Message != nil && ev.Message.Deleted {
		return schemas.Attachment{}, notFound
	}
	var m struct {
		Attachments []schemas.Attachment `json:"attachments"`
	}
	if json.Unmarshal(ev.Data, &m) != nil || n >= len(m.Attachments) {
		return schemas.Attachment{}, newError(codeNotFound, "the message has no attachment "+strconv.Itoa(n))
	}
	return m.Attachments[n], nil
}
