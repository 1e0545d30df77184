// Presence: who may see whose, the WebSocket presence frames and GET
// /v1/presence.

package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/parley-chat/parley/projections/presence"
	"github.com/parley-chat/parley/schemas"
)

// PresenceTracker is this node's presence projection (presence.Tracker).
type PresenceTracker interface {
	Connect(ctx context.Context, user, device string) (disconnect func())
	SetStatus(ctx context.Context, user, device, status string) error
	Get(users []string) []presence.State
	Watch(users []string, notify func([]presence.State)) (*presence.Watch, []presence.State)
}

// maxWatched is the most users one socket (or one query) follows.
const maxWatched = 500

// maxSharedConversations bounds the conversations looked at to decide
// whose presence a user may see: the most recently active ones.
const maxSharedConversations = 1000

type presenceFrame struct {
	Type  string           `json:"type"`
	ID    string           `json:"id,omitempty"`
	Users []presence.State `json:"users"`
}

// visible returns the users of want that user shares a conversation with
// (and user itself): presence is only shown to people who talk.
func (s *Server) visible(ctx context.Context, user string, want []string) ([]string, *apiError) {
	if len(want) > maxWatched {
		return nil, newError(codeInvalidRequest, "at most 500 users at once")
	}
	for _, u := range want {
		if !schemas.ValidUserID(u) {
			return nil, newError(codeInvalidRequest, "invalid user id "+u)
		}
	}
	convs, err := s.cfg.History.Conversations(ctx, user, maxSharedConversations)
	if err != nil {
		s.log.Error("listing conversations", "user_id", user, "err", err)
		return nil, newError(codeUnavailable, "conversation store unavailable")
	}
	shared := map[string]bool{user: true}
	for _, c := range convs {
		for _, m := range c.Members {
			shared[m.UserID] = true
		}
	}
	out := make([]string, 0, len(want))
	for _, u := range want {
		if shared[u] && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out, nil
}

func (k *socket) presenceSet(ctx context.Context, f clientFrame) error {
	p := k.s.cfg.Presence
	if p == nil {
		return k.writeError(ctx, f.ID, k.s.reject("gateway", newError(codeUnknownType, "presence is not enabled on this node")))
	}
	if err := p.SetStatus(ctx, k.id.UserID, k.device, f.Status); err != nil {
		return k.writeError(ctx, f.ID, k.s.reject("gateway", newError(codeInvalidRequest, err.Error())))
	}
	return nil
}

func (k *socket) presenceWatch(ctx context.Context, sess Session, f clientFrame) error {
	p := k.s.cfg.Presence
	if p == nil {
		return k.writeError(ctx, f.ID, k.s.reject("gateway", newError(codeUnknownType, "presence is not enabled on this node")))
	}
	users, e := k.s.visible(ctx, k.id.UserID, f.UserIDs)
	if e != nil {
		return k.writeError(ctx, f.ID, k.s.reject("gateway", e))
	}
	k.unwatch()
	w, states := p.Watch(users, func(changes []presence.State) {
		b, err := json.Marshal(presenceFrame{Type: "presence", Users: changes})
		if err == nil {
			sess.Signal(b)
		}
	})
	k.mu.Lock()
	k.watch = w
	k.mu.Unlock()
	return k.writeJSON(ctx, presenceFrame{Type: "presence", ID: f.ID, Users: states})
}

func (k *socket) unwatch() {
	k.mu.Lock()
	w := k.watch
	k.watch = nil
	k.mu.Unlock()
	if w != nil {
		w.Close()
	}
}

// getPresence serves GET /v1/presence?user_ids=a,b,c.
func (s *Server) getPresence(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Presence == nil {
		writeProblem(w, newError(codeNotFound, "presence is not enabled on this node"))
		return
	}
	var want []string
	for _, u := range strings.Split(r.URL.Query().Get("user_ids"), ",") {
		if u = strings.TrimSpace(u); u != "" {
			want = append(want, u)
		}
	}
	if len(want) == 0 {
		writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, "user_ids is required: a comma-separated list")))
		return
	}
	users, e := s.visible(r.Context(), identity(r.Context()).UserID, want)
	if e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": s.cfg.Presence.Get(users)})
}
