// Errors: stable codes and RFC 9457 problem responses; WebSocket error
// frames carry the same codes.

package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/schemas"
)

// Stable error codes of the HTTP API and the WebSocket protocol, beside
// the decider's (schemas.Code*). Never change one: clients branch on them.
const (
	codeBadRequest     = "bad_request"
	codeBadFrame       = "bad_frame"
	codeUnknownType    = "unknown_type"
	codeInvalidRequest = "invalid_request"
	codeTooLarge       = "too_large"
	codeUnauthorized   = "unauthorized"
	codeTokenExpired   = "token_expired"
	codeForbidden      = "forbidden"
	codeNotFound       = "not_found"
	codeTimeout        = "timeout"
	codeUnavailable    = "unavailable"
	codeOverloaded     = "overloaded"
	codeRateLimited    = "rate_limited"
	codeInternal       = "internal"
	codeConflict       = "conflict"
)

// apiError is an error with a stable code, for a problem response or an
// error frame.
type apiError struct {
	Code      string
	Message   string
	Status    int
	Retryable bool
	// RetryAfter, if set, is sent as the Retry-After header of a problem
	// response, in whole seconds rounded up, and as the retry_after_ms of
	// an error frame.
	RetryAfter time.Duration
}

// overloadRetryAfter is how long a client is asked to wait before
// retrying a command refused because Parley is saturated.
const overloadRetryAfter = time.Second

// overloaded is the answer to a command refused because too many
// commands already wait for the log, or for their answer (the log and the
// decider): Parley is saturated right now. It comes at once, not after a
// timeout, and nothing was appended, so the same command id can be sent
// again after RetryAfter.
func overloaded() *apiError {
	e := newError(codeOverloaded, "Parley is overloaded: nothing was appended; retry with the same command id in a second")
	e.RetryAfter = overloadRetryAfter
	return e
}

// diskRetryAfter is how long a client is asked to wait before retrying a
// write refused because the server's disk is nearly full: space comes
// back when an operator frees it, not in a second.
const diskRetryAfter = 30 * time.Second

// lowOnDisk is the answer to a write refused because the file system the
// node appends to has less free space than PARLEY_DISK_RESERVE. Nothing
// was appended, so the same request (the same command id) can be sent
// again once space is freed.
func lowOnDisk() *apiError {
	e := newError(codeUnavailable, "the server's disk is nearly full: nothing was stored; retry later with the same request")
	e.RetryAfter = diskRetryAfter
	return e
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newError(code, msg string) *apiError {
	status, retry := http.StatusBadRequest, false
	switch code {
	case codeUnauthorized, codeTokenExpired:
		status = http.StatusUnauthorized
	case schemas.CodeNotMember, codeForbidden, schemas.CodeBlocked:
		status = http.StatusForbidden
	case schemas.CodeConversationNotFound, codeNotFound, schemas.CodeMessageNotFound:
		status = http.StatusNotFound
	case schemas.CodeConversationExists, codeConflict, schemas.CodeArchived, schemas.CodeEditWindowClosed, schemas.CodeNoChange, schemas.CodeStaleEpoch:
		status = http.StatusConflict
	case schemas.CodeLimitExceeded:
		status = http.StatusUnprocessableEntity
	case codeTooLarge:
		status = http.StatusRequestEntityTooLarge
	case schemas.CodeInvalidCommand, codeUploadInvalid:
		status = http.StatusUnprocessableEntity
	case codeFileTypeRefused:
		status = http.StatusUnsupportedMediaType
	case codeTimeout:
		status, retry = http.StatusGatewayTimeout, true
	case codeUnavailable, codeOverloaded:
		status, retry = http.StatusServiceUnavailable, true
	case codeRateLimited:
		status, retry = http.StatusTooManyRequests, true
	case codeInternal:
		status, retry = http.StatusInternalServerError, true
	}
	return &apiError{Code: code, Message: msg, Status: status, Retryable: retry}
}

// problem is an RFC 9457 problem details object.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Code      string `json:"code"`
	Retryable bool   `json:"retryable"`
}

func writeProblem(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(problem{
		Type:      "urn:parley:problem:" + e.Code,
		Title:     http.StatusText(e.Status),
		Status:    e.Status,
		Detail:    e.Message,
		Code:      e.Code,
		Retryable: e.Retryable,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	// JSON, not HTML: snippets carry <mark> for clients to render, and
	// \u003c escapes would only make them harder to read.
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// refused is the answer to a request the conversation rules refuse.
func refused(r *conversation.Refusal) *apiError { return newError(r.Code, r.Reason) }

// invalid is the answer to a request whose own content the conversation
// rules refuse (a title, a body, the members of a new conversation): the
// request is invalid, whatever the conversation.
func invalid(r *conversation.Refusal) *apiError {
	if r.Code == schemas.CodeInvalidCommand {
		return newError(codeInvalidRequest, r.Reason)
	}
	return refused(r)
}
