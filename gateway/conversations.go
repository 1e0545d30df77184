// The conversation endpoints: create, list (the inbox), read, leave,
// change the title or archive, and block or unblock a user.

package gateway

import (
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// conversationJSON is the HTTP representation of a conversation.
type conversationJSON struct {
	ConversationID string           `json:"conversation_id"`
	Kind           schemas.Kind     `json:"kind"`
	Title          string           `json:"title,omitempty"`
	CreatedBy      string           `json:"created_by"`
	CreatedAt      time.Time        `json:"created_at"`
	Members        []schemas.Member `json:"members"`
	LastSeq        uint64           `json:"last_seq"`
	LastActivity   time.Time        `json:"last_activity"`
	Archived       bool             `json:"archived"`
	BlockedBy      []string         `json:"blocked_by,omitempty"`
	Encrypted      bool             `json:"encrypted,omitempty"`
	Messages       uint64           `json:"messages"`
	LastMessage    *previewJSON     `json:"last_message,omitempty"`
	// ReadSeq and Unread are the caller's, in the conversation list only.
	ReadSeq *uint64 `json:"read_seq,omitempty"`
	Unread  *uint64 `json:"unread,omitempty"`
}

// previewJSON is the newest message of a conversation, for an inbox.
type previewJSON struct {
	Seq      uint64    `json:"seq"`
	SenderID string    `json:"sender_id"`
	Body     string    `json:"body"`
	Edited   bool      `json:"edited"`
	Deleted  bool      `json:"deleted"`
	SentAt   time.Time `json:"sent_at"`
}

func toJSON(c history.Conversation) conversationJSON {
	members := c.Members
	if members == nil {
		members = []schemas.Member{}
	}
	out := conversationJSON{
		ConversationID: c.ID, Kind: c.Kind, Title: c.Title, CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt.UTC(),
		Members: members, LastSeq: c.LastSeq, LastActivity: c.LastActivity.UTC(),
		Archived: c.Archived, BlockedBy: c.BlockedBy, Encrypted: c.Encrypted, Messages: c.Messages,
	}
	if p := c.LastMessage; p != nil {
		out.LastMessage = &previewJSON{Seq: p.Seq, SenderID: p.SenderID, Body: p.Body, Edited: p.Edited, Deleted: p.Deleted, SentAt: p.SentAt.UTC()}
	}
	return out
}

type createRequest struct {
	Kind      schemas.Kind `json:"kind"`
	Title     string       `json:"title"`
	Members   []string     `json:"members"`
	CommandID string       `json:"command_id"`
	// Encrypted asks for an end-to-end encrypted conversation, whose MLS
	// group DeviceID, a device of the creator's, makes.
	Encrypted bool   `json:"encrypted"`
	DeviceID  string `json:"device_id"`
}

func (s *Server) createConversation(w http.ResponseWriter, r *http.Request) {
	me := identity(r.Context())
	var req createRequest
	if e := s.decodeBody(w, r, &req); e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	cmd, e := s.validateCreate(me.UserID, req)
	if e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	typ, command := schemas.TypeCreateConversation, any(cmd)
	if req.Encrypted || req.DeviceID != "" {
		v2 := &schemas.CreateConversationV2{CommandID: cmd.CommandID, UserID: cmd.UserID, ConversationID: cmd.ConversationID, Kind: cmd.Kind,
			Title: cmd.Title, Members: cmd.Members, Encrypted: req.Encrypted, DeviceID: req.DeviceID, IssuedAt: cmd.IssuedAt}
		if err := schemas.Validate(schemas.TypeCreateConversationV2, v2); err != nil {
			writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, err.Error())))
			return
		}
		typ, command = schemas.TypeCreateConversationV2, v2
	}
	out, e := s.command(r.Context(), me.UserID, cmd.CommandID, typ, cmd.ConversationID, command, r.Header.Get("traceparent"))
	if e != nil {
		writeProblem(w, e)
		return
	}
	if out.Event != nil {
		c := history.Conversation{}
		if _, err := history.ApplyToSummary(&c, *out.Event); err == nil {
			writeJSON(w, http.StatusCreated, toJSON(c))
			return
		}
	}
	c, err := s.cfg.Hub.Conversation(r.Context(), cmd.ConversationID)
	if err != nil {
		writeProblem(w, newError(codeUnavailable, "the conversation exists but could not be read; retry"))
		return
	}
	writeJSON(w, http.StatusOK, toJSON(c))
}

func (s *Server) validateCreate(me string, req createRequest) (*schemas.CreateConversationV1, *apiError) {
	if req.CommandID == "" {
		req.CommandID = kafkalog.NewID()
	}
	if !schemas.ValidCommandID(req.CommandID) {
		return nil, newError(codeInvalidRequest, "command_id must be 1-64 characters of [A-Za-z0-9._:-]")
	}
	for _, m := range req.Members {
		if !schemas.ValidUserID(m) {
			return nil, newError(codeInvalidRequest, "invalid member id "+strconv.Quote(m))
		}
	}
	cmd := &schemas.CreateConversationV1{
		CommandID: req.CommandID, UserID: me, Kind: req.Kind, Title: req.Title, Members: req.Members, IssuedAt: time.Now().UTC(),
	}
	cmd.ConversationID = conversation.IDFor(cmd)
	if _, r := s.cfg.Limits.Create(cmd); r != nil {
		return nil, invalid(r)
	}
	if cmd.Members == nil {
		cmd.Members = []string{}
	}
	return cmd, nil
}

// inboxCap is the most conversations of one user the inbox considers:
// its totals count them all, its pages walk them by last activity.
const inboxCap = 10000

// listConversations serves GET /v1/conversations: the caller's inbox,
// most recent activity first, with each conversation's title, preview of
// the newest message and unread count, the unread totals, and a cursor
// for the next page.
func (s *Server) listConversations(w http.ResponseWriter, r *http.Request) {
	me := identity(r.Context())
	limit, e := intParam(r, "limit", 50, 1, 200)
	if e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	after, e := parseInboxCursor(r.URL.Query().Get("cursor"))
	if e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	convs, err := s.cfg.History.Conversations(r.Context(), me.UserID, inboxCap)
	if err != nil {
		s.log.Error("listing conversations", "user_id", me.UserID, "err", err)
		writeProblem(w, newError(codeUnavailable, "history store unavailable"))
		return
	}
	// The stores list by last activity; ties are put in id order here so
	// that cursors are exact.
	slices.SortStableFunc(convs, func(a, b history.Conversation) int {
		if c := b.LastActivity.Compare(a.LastActivity); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	var total, unreadConvs uint64
	start := 0
	for i, c := range convs {
		if u := c.Unread(); u > 0 {
			total += u
			unreadConvs++
		}
		if after != nil && after.before(c) {
			start = i + 1
		}
	}
	page := convs[min(start, len(convs)):]
	var next string
	if len(page) > limit {
		page = page[:limit]
		next = inboxCursorOf(page[len(page)-1])
	}
	out := make([]conversationJSON, len(page))
	for i, c := range page {
		out[i] = toJSON(c)
		read, unread := c.ReadSeq, c.Unread()
		out[i].ReadSeq, out[i].Unread = &read, &unread
	}
	writeJSON(w, http.StatusOK, inboxJSON{Conversations: out, UnreadTotal: total, UnreadConversations: unreadConvs, NextCursor: next})
}

type inboxJSON struct {
	Conversations       []conversationJSON `json:"conversations"`
	UnreadTotal         uint64             `json:"unread_total"`
	UnreadConversations uint64             `json:"unread_conversations"`
	// NextCursor, when set, asks for the next page (cursor=...).
	NextCursor string `json:"next_cursor,omitempty"`
}

// inboxCursor is the position after a conversation in the inbox order:
// last activity descending, then conversation id ascending.
type inboxCursor struct {
	activity int64 // Unix nanoseconds
	id       string
}

func inboxCursorOf(c history.Conversation) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.LastActivity.UnixNano(), 10) + ":" + c.ID))
}

func parseInboxCursor(v string) (*inboxCursor, *apiError) {
	if v == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	ns, id, ok := strings.Cut(string(raw), ":")
	n, perr := strconv.ParseInt(ns, 10, 64)
	if err != nil || !ok || perr != nil || !schemas.ValidConversationID(id) {
		return nil, newError(codeInvalidRequest, "malformed cursor")
	}
	return &inboxCursor{activity: n, id: id}, nil
}

// before reports whether c comes at or before the cursor's position, so
// that the page after the cursor starts after c.
func (k *inboxCursor) before(c history.Conversation) bool {
	a := c.LastActivity.UnixNano()
	return a > k.activity || (a == k.activity && c.ID <= k.id)
}

func (s *Server) getConversation(w http.ResponseWriter, r *http.Request) {
	c, e := s.member(r.Context(), identity(r.Context()).UserID, chi.URLParam(r, "id"))
	if e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	writeJSON(w, http.StatusOK, toJSON(c))
}

type leaveRequest struct {
	CommandID string `json:"command_id"`
}

// leaveConversation serves POST /v1/conversations/{id}/leave: a member
// leaves a group. From the departure on, the user receives nothing of the
// conversation and can no longer read or search it.
func (s *Server) leaveConversation(w http.ResponseWriter, r *http.Request) {
	me := identity(r.Context())
	var req leaveRequest
	if e := s.decodeBody(w, r, &req); e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	if !schemas.ValidCommandID(req.CommandID) {
		writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, "command_id must be 1-64 characters of [A-Za-z0-9._:-]")))
		return
	}
	id := chi.URLParam(r, "id")
	c, e := s.member(r.Context(), me.UserID, id)
	if e != nil && !(e.Code == schemas.CodeNotMember && c.ID != "") {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	// A non-member may be retrying a leave that already happened: the
	// decider answers that with the original seq, or refuses it.
	cmd := &schemas.LeaveConversationV1{CommandID: req.CommandID, UserID: me.UserID, ConversationID: id, IssuedAt: time.Now().UTC()}
	out, e := s.command(r.Context(), me.UserID, req.CommandID, schemas.TypeLeaveConversation, id, cmd, r.Header.Get("traceparent"))
	if e != nil {
		writeProblem(w, e)
		return
	}
	writeJSON(w, http.StatusOK, sendResponse{ConversationID: id, Seq: out.Seq, Duplicate: out.Duplicate})
}

// updateConversation serves PATCH /v1/conversations/{id}: a new title or
// archived flag, one per request (each is one command and one event).
func (s *Server) updateConversation(w http.ResponseWriter, r *http.Request) {
	var req struct {
		commandIDField
		Title    *string `json:"title"`
		Archived *bool   `json:"archived"`
	}
	a := s.begin(w, r, &req)
	if a == nil {
		return
	}
	switch {
	case (req.Title == nil) == (req.Archived == nil):
		a.fail(codeInvalidRequest, "give exactly one of title and archived")
	case req.Title != nil:
		if r := s.cfg.Limits.Title(*req.Title); r != nil {
			writeProblem(w, s.reject("gateway", invalid(r)))
			return
		}
		if a.check(s.cfg.Limits.Rename(&a.conv.State, a.me, *req.Title)) {
			a.run(schemas.TypeRename, &schemas.RenameV1{CommandID: a.id, UserID: a.me, ConversationID: a.conv.ID, Title: *req.Title, IssuedAt: now()}, http.StatusOK)
		}
	default:
		if a.check(a.conv.Archive(a.me)) {
			a.run(schemas.TypeArchive, &schemas.ArchiveV1{CommandID: a.id, UserID: a.me, ConversationID: a.conv.ID, Archived: *req.Archived, IssuedAt: now()}, http.StatusOK)
		}
	}
}

// block serves PUT (block) and DELETE (unblock) of /v1/blocks/{user}:
// blocking is a state of the direct conversation of the pair, which a
// block creates if it does not exist yet, so that the blocked user
// cannot start it afterwards.
func (s *Server) block(blocked bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		me := identity(r.Context()).UserID
		other := chi.URLParam(r, "user")
		commandID := r.URL.Query().Get("command_id")
		if commandID == "" {
			commandID = kafkalog.NewID()
		}
		switch {
		case !schemas.ValidUserID(other) || other == me:
			writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, "name another user")))
			return
		case !schemas.ValidCommandID(commandID) || len(commandID) > 60:
			writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, "command_id must be 1-60 characters of [A-Za-z0-9._:-]")))
			return
		}
		conv := schemas.DirectConversationID(me, other)
		if _, err := s.cfg.Hub.Conversation(r.Context(), conv); errors.Is(err, history.ErrNotFound) {
			if !blocked {
				writeProblem(w, s.reject("gateway", newError(schemas.CodeNoChange, "you do not block "+other)))
				return
			}
			create := &schemas.CreateConversationV1{CommandID: commandID + ".c", UserID: me, ConversationID: conv, Kind: schemas.KindDirect, Members: []string{other}, IssuedAt: now()}
			if _, e := s.command(r.Context(), me, create.CommandID, schemas.TypeCreateConversation, conv, create, r.Header.Get("traceparent")); e != nil {
				writeProblem(w, e)
				return
			}
		}
		cmd := &schemas.BlockV1{CommandID: commandID, UserID: me, ConversationID: conv, Blocked: blocked, IssuedAt: now()}
		out, e := s.command(r.Context(), me, commandID, schemas.TypeBlock, conv, cmd, r.Header.Get("traceparent"))
		if e != nil {
			writeProblem(w, e)
			return
		}
		writeJSON(w, http.StatusOK, commandResponse{ConversationID: conv, Seq: out.Seq, Duplicate: out.Duplicate})
	}
}
