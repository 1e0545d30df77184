// Erasing a user: POST /v1/users/{id}/erase, for administrators.

package gateway

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/parley-chat/parley/schemas"
)

// Eraser erases a user's personal content by destroying their data key
// (crypto-shredding) and records the erasure (chat.user.erased.v1). It
// returns when the key is gone and the record appended. Erasing a user
// again is harmless: it appends another record.
type Eraser interface {
	Erase(ctx context.Context, user, by string) (time.Time, error)
}

// eraseUser is POST /v1/users/{id}/erase. Only the users of
// Config.Admins may call it; the gateway identifies them by their
// verified token's user id, as every request.
func (s *Server) eraseUser(w http.ResponseWriter, r *http.Request) {
	me := identity(r.Context()).UserID
	id := chi.URLParam(r, "id")
	if !schemas.ValidUserID(id) {
		writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, "the user id is not valid")))
		return
	}
	if !slices.Contains(s.cfg.Admins, me) {
		writeProblem(w, s.reject("gateway", newError(codeForbidden, "only an administrator (PARLEY_ADMIN_USERS) may erase a user")))
		return
	}
	if s.cfg.Erasure == nil {
		e := newError(codeUnavailable, "content is not sealed on this deployment (PARLEY_CONTENT_KEK is not set): there is no key to destroy")
		e.Retryable = false
		writeProblem(w, s.reject("gateway", e))
		return
	}
	at, err := s.cfg.Erasure.Erase(r.Context(), id, me)
	if err != nil {
		s.log.Error("erasing a user", "user_id", id, "err", err)
		writeProblem(w, s.reject("gateway", newError(codeUnavailable, "the erasure did not complete; send it again")))
		return
	}
	s.log.Info("user erased", "subject_ref", schemas.ErasureRef(id), "erased_by", me)
	writeJSON(w, http.StatusOK, map[string]any{"user_id": id, "subject_ref": schemas.ErasureRef(id), "erased_at": at.UTC()})
}
