// Decoding request bodies and query parameters.

package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// decodeBody decodes a JSON request body strictly.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) *apiError {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return newError(codeBadRequest, "Content-Type must be application/json")
	}
	limit := int64(4*s.cfg.Limits.MaxBodyBytes + 4096)
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return newError(codeTooLarge, "request body too large")
		case errors.Is(err, io.EOF):
			return newError(codeBadRequest, "request body is empty")
		default:
			return newError(codeBadRequest, "malformed JSON body: "+err.Error())
		}
	}
	if dec.More() {
		return newError(codeBadRequest, "request body has trailing data")
	}
	return nil
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
