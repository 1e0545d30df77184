package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

type ctxKey struct{}

func identity(ctx context.Context) Identity { id, _ := ctx.Value(ctxKey{}).(Identity); return id }

// authenticate requires a valid bearer token.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok {
			writeProblem(w, s.reject("gateway", newError(codeUnauthorized, "an Authorization: Bearer token is required")))
			return
		}
		id, err := s.cfg.Auth.Verify(token)
		if err != nil {
			code := codeUnauthorized
			if errors.Is(err, ErrTokenExpired) {
				code = codeTokenExpired
			}
			writeProblem(w, s.reject("gateway", newError(code, err.Error())))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:]), true
	}
	return "", false
}

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
		Archived: c.Archived, BlockedBy: c.BlockedBy, Messages: c.Messages,
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
	out, e := s.command(r.Context(), me.UserID, cmd.CommandID, schemas.TypeCreateConversation, cmd.ConversationID, cmd, r.Header.Get("traceparent"))
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
	switch req.Kind {
	case schemas.KindDirect:
		if len(req.Members) != 1 || req.Members[0] == me {
			return nil, newError(codeInvalidRequest, "a direct conversation names exactly one other user in members")
		}
		cmd.ConversationID = schemas.DirectConversationID(me, req.Members[0])
	case schemas.KindGroup:
		cmd.ConversationID = schemas.GroupConversationID(me, req.CommandID)
	}
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

// eventJSON is the HTTP representation of an event.
type eventJSON struct {
	ConversationID string          `json:"conversation_id"`
	Seq            uint64          `json:"seq"`
	EventType      string          `json:"event_type"`
	EventID        string          `json:"event_id"`
	Time           time.Time       `json:"time"`
	Data           json.RawMessage `json:"data"`
	// Message is the current state of a message event that later events
	// changed (edited, deleted, reacted to).
	Message *messageStateJSON `json:"message,omitempty"`
}

type messageStateJSON struct {
	Body      string         `json:"body"`
	EditedAt  *time.Time     `json:"edited_at,omitempty"`
	Deleted   bool           `json:"deleted"`
	DeletedBy string         `json:"deleted_by,omitempty"`
	Reactions []reactionJSON `json:"reactions"`
}

type reactionJSON struct {
	Emoji string   `json:"emoji"`
	Users []string `json:"users"`
}

func toEventJSON(ev history.Event) eventJSON {
	out := eventJSON{ev.ConversationID, ev.Seq, ev.Type, ev.ID, ev.Time.UTC(), ev.Data, nil}
	if m := ev.Message; m != nil {
		st := &messageStateJSON{Body: m.Body, Deleted: m.Deleted, DeletedBy: m.DeletedBy, Reactions: []reactionJSON{}}
		if !m.EditedAt.IsZero() {
			at := m.EditedAt.UTC()
			st.EditedAt = &at
		}
		for _, r := range m.Reactions {
			st.Reactions = append(st.Reactions, reactionJSON{r.Emoji, r.Users})
		}
		out.Message = st
	}
	return out
}

func (s *Server) getHistory(w http.ResponseWriter, r *http.Request) {
	me := identity(r.Context())
	id := chi.URLParam(r, "id")
	if _, e := s.member(r.Context(), me.UserID, id); e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	q, e := pageQuery(r)
	if e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	page, err := s.cfg.History.Page(r.Context(), id, q)
	switch {
	case errors.Is(err, history.ErrNotFound):
		writeProblem(w, newError(schemas.CodeConversationNotFound, "no such conversation"))
		return
	case err != nil:
		s.log.Error("reading history", "conversation_id", id, "err", err)
		writeProblem(w, newError(codeUnavailable, "history store unavailable"))
		return
	}
	events := make([]eventJSON, len(page.Events))
	for i, ev := range page.Events {
		j := i
		if !q.Forward {
			j = len(events) - 1 - i // always ascending
		}
		events[j] = toEventJSON(ev)
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversation_id": id, "events": events, "has_more": page.HasMore})
}

func pageQuery(r *http.Request) (history.PageQuery, *apiError) {
	limit, e := intParam(r, "limit", 50, 1, 200)
	if e != nil {
		return history.PageQuery{}, e
	}
	q := history.PageQuery{Limit: limit}
	after, before := r.URL.Query().Get("after"), r.URL.Query().Get("before")
	if after != "" && before != "" {
		return q, newError(codeInvalidRequest, "give after or before, not both")
	}
	var err error
	switch {
	case after != "":
		q.Forward = true
		q.After, err = strconv.ParseUint(after, 10, 64)
	case before != "":
		q.Before, err = strconv.ParseUint(before, 10, 64)
		if err == nil && q.Before == 0 {
			// Nothing precedes seq 0; an empty page, not "the newest".
			return q, newError(codeInvalidRequest, "before must be at least 1")
		}
	}
	if err != nil {
		return q, newError(codeInvalidRequest, "after and before are sequence numbers")
	}
	return q, nil
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

type sendRequest struct {
	CommandID string `json:"command_id"`
	Body      string `json:"body"`
	ReplyTo   uint64 `json:"reply_to"`
}

type sendResponse struct {
	ConversationID string `json:"conversation_id"`
	Seq            uint64 `json:"seq"`
	Duplicate      bool   `json:"duplicate"`
}

func (s *Server) postMessage(w http.ResponseWriter, r *http.Request) {
	me := identity(r.Context())
	var req sendRequest
	if e := s.decodeBody(w, r, &req); e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	out, e := s.send(r.Context(), me.UserID, chi.URLParam(r, "id"), req.CommandID, req.Body, req.ReplyTo, r.Header.Get("traceparent"))
	if e != nil {
		writeProblem(w, e)
		return
	}
	status := http.StatusCreated
	if out.Duplicate {
		status = http.StatusOK
	}
	writeJSON(w, status, sendResponse{ConversationID: out.ConversationID, Seq: out.Seq, Duplicate: out.Duplicate})
}

// checkBody validates a message body: a request whose body is over the
// limit is too large, one that is empty or not UTF-8 is invalid.
func (s *Server) checkBody(body string) *apiError {
	if r := s.cfg.Limits.Body(body); r != nil {
		if body != "" {
			return newError(codeTooLarge, r.Reason)
		}
		return invalid(r)
	}
	if !utf8.ValidString(body) {
		return newError(codeInvalidRequest, "body is not valid UTF-8")
	}
	return nil
}

// send validates a message and appends it; shared by HTTP and WebSocket.
// replyTo, if not 0, is the seq of the message it answers.
func (s *Server) send(ctx context.Context, user, conversation, commandID, body string, replyTo uint64, traceParent string) (sendResponse, *apiError) {
	if !schemas.ValidCommandID(commandID) {
		return sendResponse{}, s.reject("gateway", newError(codeInvalidRequest, "command_id must be 1-64 characters of [A-Za-z0-9._:-]"))
	}
	if e := s.checkBody(body); e != nil {
		return sendResponse{}, s.reject("gateway", e)
	}
	c, e := s.member(ctx, user, conversation)
	if e != nil {
		return sendResponse{}, s.reject("gateway", e)
	}
	if r := s.cfg.Limits.Send(&c.State, user, body, replyTo, s.message(ctx, c, replyTo)); r != nil {
		return sendResponse{}, s.reject("gateway", refused(r))
	}
	cmd := &schemas.SendMessageV2{CommandID: commandID, UserID: user, ConversationID: conversation, Body: body, ReplyTo: replyTo, IssuedAt: time.Now().UTC()}
	out, e := s.command(ctx, user, commandID, schemas.TypeSendMessageV2, conversation, cmd, traceParent)
	if e != nil {
		return sendResponse{}, e
	}
	return sendResponse{ConversationID: conversation, Seq: out.Seq, Duplicate: out.Duplicate}, nil
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
