// Decoding request bodies and query parameters.

package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// bodyLimiter is a request whose body has a size limit of its own rather
// than one derived from the message body limit: MLS messages and
// KeyPackages, which the MLS limits bound.
type bodyLimiter interface{ bodyLimit() int64 }

// base64Len is the length of n bytes in padded base64.
func base64Len(n int) int64 { return int64((n + 2) / 3 * 4) }

// decodeBody decodes a JSON request body strictly: bad_request for a
// body that is not JSON of the right Content-Type or has fields the
// request does not know; invalid_request, naming the field in plain
// words, for a field of the wrong type or out of range, and for text
// that is not valid UTF-8 (which decoding would silently replace).
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) *apiError {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return newError(codeBadRequest, "Content-Type must be application/json")
	}
	limit := int64(4*s.cfg.Limits.MaxBodyBytes + 4096)
	if l, ok := v.(bodyLimiter); ok {
		limit = l.bodyLimit()
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return newError(codeTooLarge, "request body too large")
	case err != nil:
		return newError(codeBadRequest, "reading the request body: "+err.Error())
	case len(bytes.TrimSpace(raw)) == 0:
		return newError(codeBadRequest, "request body is empty")
	case !utf8.Valid(raw):
		return newError(codeInvalidRequest, "the request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return newError(codeInvalidRequest, typeErr.Field+" must be "+jsonKind(typeErr.Type))
		}
		return newError(codeBadRequest, "malformed JSON body: "+err.Error())
	}
	if dec.More() {
		return newError(codeBadRequest, "request body has trailing data")
	}
	return nil
}

// jsonKind says in words which JSON values a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number, 0 or more"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "an object"
}

func intParam(r *http.Request, name string, def, lo, hi int) (int, *apiError) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, newError(codeInvalidRequest, name+" must be an integer from "+strconv.Itoa(lo)+" to "+strconv.Itoa(hi))
	}
	return n, nil
}
