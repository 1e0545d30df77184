// The membership endpoints of a group: add members, remove one, give one
// a role (or transfer the ownership).

package gateway

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/parley-chat/parley/schemas"
)

func (s *Server) addMembers(w http.ResponseWriter, r *http.Request) {
	var req struct {
		commandIDField
		UserIDs []string `json:"user_ids"`
	}
	a := s.begin(w, r, &req)
	if a == nil {
		return
	}
	if len(req.UserIDs) == 0 {
		a.fail(codeInvalidRequest, "user_ids names the users to add")
		return
	}
	if r := s.cfg.Limits.Size(len(req.UserIDs) + 1); r != nil {
		writeProblem(w, s.reject("gateway", refused(r)))
		return
	}
	for _, u := range req.UserIDs {
		if !schemas.ValidUserID(u) {
			a.fail(codeInvalidRequest, "invalid user id "+strconv.Quote(u))
			return
		}
	}
	if !a.check(a.conv.AddMembers(a.me)) {
		return
	}
	a.run(schemas.TypeAddMembers, &schemas.AddMembersV1{CommandID: a.id, UserID: a.me, ConversationID: a.conv.ID, MemberIDs: req.UserIDs, IssuedAt: now()}, http.StatusOK)
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) {
	a := s.begin(w, r, nil)
	if a == nil {
		return
	}
	target := chi.URLParam(r, "user")
	if !schemas.ValidUserID(target) {
		a.fail(codeInvalidRequest, "malformed user id")
		return
	}
	if !a.check(a.conv.RemoveMember(a.me, target)) {
		return
	}
	a.run(schemas.TypeRemoveMember, &schemas.RemoveMemberV1{CommandID: a.id, UserID: a.me, ConversationID: a.conv.ID, MemberID: target, IssuedAt: now()}, http.StatusOK)
}

func (s *Server) setRole(w http.ResponseWriter, r *http.Request) {
	var req struct {
		commandIDField
		Role schemas.Role `json:"role"`
	}
	a := s.begin(w, r, &req)
	if a == nil {
		return
	}
	target := chi.URLParam(r, "user")
	switch {
	case !schemas.ValidUserID(target):
		a.fail(codeInvalidRequest, "malformed user id")
		return
	case req.Role != schemas.RoleOwner && req.Role != schemas.RoleAdmin && req.Role != schemas.RoleMember:
		a.fail(codeInvalidRequest, `role must be "owner", "admin" or "member"`)
		return
	}
	if !a.check(a.conv.SetRole(a.me, target)) {
		return
	}
	a.run(schemas.TypeSetRole, &schemas.SetRoleV1{CommandID: a.id, UserID: a.me, ConversationID: a.conv.ID, MemberID: target, Role: req.Role, IssuedAt: now()}, http.StatusOK)
}
