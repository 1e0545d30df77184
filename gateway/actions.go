package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// The conversation commands of the HTTP API beside create, send and
// leave: membership, roles, settings, blocks, edits, deletions and
// reactions. Each validates its input, checks membership and the
// permission matrix against this node's view of the conversation (so a
// request the decider would refuse appends nothing), appends one command
// and answers with the decider's outcome: the seq of the event, or the
// original seq for a retried command id.

// Receipts appends read markers (producers.ReceiptWriter).
type Receipts interface {
	Read(ctx context.Context, conversation, user string, seq uint64) error
}

// commandResponse answers an accepted command.
type commandResponse = sendResponse

// action is one conversation command being served.
type action struct {
	s    *Server
	w    http.ResponseWriter
	r    *http.Request
	me   string
	conv history.Conversation
	id   string // command id
}

// begin decodes the body into req (if not nil), checks the command id and
// membership. It writes the problem and returns nil on failure.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, req commandIDer) *action {
	me := identity(r.Context()).UserID
	commandID := r.URL.Query().Get("command_id")
	if req != nil {
		if e := s.decodeBody(w, r, req); e != nil {
			writeProblem(w, s.reject("gateway", e))
			return nil
		}
		commandID = req.commandID()
	}
	if commandID == "" {
		commandID = kafkalog.NewID()
	}
	if !schemas.ValidCommandID(commandID) {
		writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, "command_id must be 1-64 characters of [A-Za-z0-9._:-]")))
		return nil
	}
	c, e := s.member(r.Context(), me, chi.URLParam(r, "id"))
	if e != nil {
		writeProblem(w, s.reject("gateway", e))
		return nil
	}
	return &action{s: s, w: w, r: r, me: me, conv: c, id: commandID}
}

type commandIDer interface{ commandID() string }

type commandIDField struct {
	CommandID string `json:"command_id"`
}

func (c *commandIDField) commandID() string { return c.CommandID }

// fail answers with a gateway-side refusal.
func (a *action) fail(code, msg string) {
	writeProblem(a.w, a.s.reject("gateway", newError(code, msg)))
}

// check answers a refusal of the conversation rules; false means it
// answered.
func (a *action) check(r *conversation.Refusal) bool {
	if r != nil {
		writeProblem(a.w, a.s.reject("gateway", refused(r)))
		return false
	}
	return true
}

// run appends cmd and answers with its outcome.
func (a *action) run(typ string, cmd schemas.Command, status int) {
	out, e := a.s.command(a.r.Context(), a.me, a.id, typ, a.conv.ID, cmd, a.r.Header.Get("traceparent"))
	if e != nil {
		writeProblem(a.w, e)
		return
	}
	if out.Duplicate {
		status = http.StatusOK
	}
	writeJSON(a.w, status, commandResponse{ConversationID: a.conv.ID, Seq: out.Seq, Duplicate: out.Duplicate})
}

func now() time.Time { return time.Now().UTC() }

// conversationCommand checks the command id, membership and precheck,
// appends cmd and waits for its outcome (the WebSocket message commands).
func (s *Server) conversationCommand(ctx context.Context, user, conv, commandID, typ string, cmd schemas.Command, precheck func(history.Conversation) *conversation.Refusal) (sendResponse, *apiError) {
	if !schemas.ValidCommandID(commandID) {
		return sendResponse{}, s.reject("gateway", newError(codeInvalidRequest, "command_id must be 1-64 characters of [A-Za-z0-9._:-]"))
	}
	c, e := s.member(ctx, user, conv)
	if e != nil {
		return sendResponse{}, s.reject("gateway", e)
	}
	if r := precheck(c); r != nil {
		return sendResponse{}, s.reject("gateway", refused(r))
	}
	out, e := s.command(ctx, user, commandID, typ, conv, cmd, "")
	if e != nil {
		return sendResponse{}, e
	}
	return sendResponse{ConversationID: conv, Seq: out.Seq, Duplicate: out.Duplicate}, nil
}

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

// target parses the {seq} of a message path; false means it answered.
func (a *action) target() (uint64, bool) {
	seq, err := strconv.ParseUint(chi.URLParam(a.r, "seq"), 10, 64)
	if err != nil || seq == 0 {
		a.fail(codeInvalidRequest, "the message seq is a positive integer")
		return 0, false
	}
	return seq, true
}

func (s *Server) editMessage(w http.ResponseWriter, r *http.Request) {
	var req struct {
		commandIDField
		Body string `json:"body"`
	}
	a := s.begin(w, r, &req)
	if a == nil {
		return
	}
	if e := s.checkBody(req.Body); e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	seq, ok := a.target()
	if !ok || !a.check(s.cfg.Limits.Edit(&a.conv.State, a.me, seq, s.message(r.Context(), a.conv, seq), req.Body, time.Now())) {
		return
	}
	a.run(schemas.TypeEditMessage, &schemas.EditMessageV1{CommandID: a.id, UserID: a.me, ConversationID: a.conv.ID, MessageSeq: seq, Body: req.Body, IssuedAt: now()}, http.StatusOK)
}

func (s *Server) deleteMessage(w http.ResponseWriter, r *http.Request) {
	a := s.begin(w, r, nil)
	if a == nil {
		return
	}
	seq, ok := a.target()
	if !ok || !a.check(a.conv.Delete(a.me, seq, s.message(r.Context(), a.conv, seq))) {
		return
	}
	a.run(schemas.TypeDeleteMessage, &schemas.DeleteMessageV1{CommandID: a.id, UserID: a.me, ConversationID: a.conv.ID, MessageSeq: seq, IssuedAt: now()}, http.StatusOK)
}

// react serves PUT (add) and DELETE (remove) of
// /v1/conversations/{id}/messages/{seq}/reactions/{emoji}.
func (s *Server) react(add bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a := s.begin(w, r, nil)
		if a == nil {
			return
		}
		emoji, err := url.PathUnescape(chi.URLParam(r, "emoji"))
		if err != nil || !schemas.ValidEmoji(emoji) {
			a.fail(codeInvalidRequest, "a reaction is one emoji (URL-encoded), up to 64 bytes")
			return
		}
		typ := schemas.TypeRemoveReaction
		if add {
			typ = schemas.TypeAddReaction
		}
		seq, ok := a.target()
		if !ok || !a.check(s.cfg.Limits.React(&a.conv.State, a.me, seq, s.message(r.Context(), a.conv, seq), emoji, add)) {
			return
		}
		a.run(typ, &schemas.ReactV1{CommandID: a.id, UserID: a.me, ConversationID: a.conv.ID, MessageSeq: seq, Emoji: emoji, IssuedAt: now()}, http.StatusOK)
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

// message returns what the conversation rules need of the message at
// seq of c, from the history store's copy: a Message with no author when
// seq is no message of c, nil when the store cannot tell (it may lag
// behind the decider, which then decides alone). Reactions are left
// unknown: the store's may lag, and a pre-check must never refuse what
// the decider would accept.
func (s *Server) message(ctx context.Context, c history.Conversation, seq uint64) *conversation.Message {
	if seq > c.LastSeq {
		return &conversation.Message{}
	}
	page, err := s.cfg.History.Page(ctx, c.ID, history.PageQuery{Forward: true, After: seq - 1, Limit: 1})
	if err != nil || len(page.Events) == 0 || page.Events[0].Seq != seq {
		return nil
	}
	ev := page.Events[0]
	if !schemas.IsMessage(ev.Type) {
		return &conversation.Message{}
	}
	var m struct {
		SenderID string    `json:"sender_id"`
		SentAt   time.Time `json:"sent_at"`
	}
	if json.Unmarshal(ev.Data, &m) != nil {
		return nil
	}
	return &conversation.Message{Author: m.SenderID, SentAt: m.SentAt, Deleted: ev.Message != nil && ev.Message.Deleted}
}

// markRead serves POST /v1/conversations/{id}/read: the caller has read
// up to seq. Markers only move forward: a lower one than recorded is
// answered with the recorded one and appends nothing.
func (s *Server) markRead(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Seq *uint64 `json:"seq"`
	}
	me := identity(r.Context()).UserID
	if r.ContentLength != 0 { // no body: read everything
		if e := s.decodeBody(w, r, &req); e != nil {
			writeProblem(w, s.reject("gateway", e))
			return
		}
	}
	read, e := s.read(r.Context(), me, chi.URLParam(r, "id"), req.Seq)
	if e != nil {
		writeProblem(w, e)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversation_id": chi.URLParam(r, "id"), "read_seq": read})
}

// read records user's read marker at *seq (the conversation's last seq
// if nil) and returns the marker now recorded; shared by HTTP and
// WebSocket.
func (s *Server) read(ctx context.Context, user, conv string, seq *uint64) (uint64, *apiError) {
	c, e := s.member(ctx, user, conv)
	if e != nil {
		return 0, s.reject("gateway", e)
	}
	if s.cfg.Receipts == nil {
		return 0, newError(codeUnavailable, "receipts are not enabled on this node")
	}
	want := c.LastSeq
	if seq != nil {
		want = *seq
	}
	if want > c.LastSeq {
		return 0, s.reject("gateway", newError(codeInvalidRequest, "seq "+strconv.FormatUint(want, 10)+" is beyond the conversation's last seq "+strconv.FormatUint(c.LastSeq, 10)))
	}
	if cur := s.recordedRead(ctx, conv, user); cur >= want {
		return cur, nil
	}
	if err := s.cfg.Receipts.Read(ctx, conv, user, want); err != nil {
		s.log.Error("appending read marker", "conversation_id", conv, "err", err)
		return 0, newError(codeUnavailable, "could not record the read marker; retry")
	}
	return want, nil
}

// recordedRead is user's read seq in conv as the history store has it,
// or 0.
func (s *Server) recordedRead(ctx context.Context, conv, user string) uint64 {
	rs, err := s.cfg.History.Receipts(ctx, conv)
	if err != nil {
		return 0
	}
	for _, r := range rs {
		if r.UserID == user {
			return r.ReadSeq
		}
	}
	return 0
}

// receiptsJSON answers GET /v1/conversations/{id}/receipts.
type receiptsJSON struct {
	ConversationID string `json:"conversation_id"`
	// Seq is the message the counts are about.
	Seq       uint64 `json:"seq"`
	Members   int    `json:"members"`
	Delivered int    `json:"delivered"`
	Read      int    `json:"read"`
	// Receipts are every member's markers, in a direct conversation only.
	Receipts []memberReceiptJSON `json:"receipts,omitempty"`
}

type memberReceiptJSON struct {
	UserID       string `json:"user_id"`
	DeliveredSeq uint64 `json:"delivered_seq"`
	ReadSeq      uint64 `json:"read_seq"`
}

// getReceipts serves GET /v1/conversations/{id}/receipts?seq=N: how many
// of the other members have had message seq (default: the newest
// message) delivered and have read it; in a direct conversation, also the
// markers of both members.
func (s *Server) getReceipts(w http.ResponseWriter, r *http.Request) {
	me := identity(r.Context()).UserID
	c, e := s.member(r.Context(), me, chi.URLParam(r, "id"))
	if e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	var seq uint64
	if c.LastMessage != nil {
		seq = c.LastMessage.Seq
	}
	if v := r.URL.Query().Get("seq"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, "seq is a sequence number")))
			return
		}
		seq = n
	}
	rs, err := s.cfg.History.Receipts(r.Context(), c.ID)
	if err != nil {
		s.log.Error("reading receipts", "conversation_id", c.ID, "err", err)
		writeProblem(w, newError(codeUnavailable, "history store unavailable"))
		return
	}
	out := receiptsJSON{ConversationID: c.ID, Seq: seq, Members: len(c.Members) - 1}
	for _, rc := range rs {
		if !c.IsMember(rc.UserID) {
			continue
		}
		if c.Kind == schemas.KindDirect {
			out.Receipts = append(out.Receipts, memberReceiptJSON{rc.UserID, max(rc.DeliveredSeq, rc.ReadSeq), rc.ReadSeq})
		}
		if rc.UserID == me || seq == 0 {
			continue
		}
		if max(rc.DeliveredSeq, rc.ReadSeq) >= seq {
			out.Delivered++
		}
		if rc.ReadSeq >= seq {
			out.Read++
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// getThread serves GET /v1/conversations/{id}/messages/{seq}/thread: the
// reply chain from the first message to the one given, oldest first
// (each message's reply_to is the one before it), at most 100 long.
func (s *Server) getThread(w http.ResponseWriter, r *http.Request) {
	me := identity(r.Context()).UserID
	c, e := s.member(r.Context(), me, chi.URLParam(r, "id"))
	if e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	seq, err := strconv.ParseUint(chi.URLParam(r, "seq"), 10, 64)
	if err != nil || seq == 0 {
		writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, "the message seq is a positive integer")))
		return
	}
	chain, err := history.Thread(r.Context(), s.cfg.History, c.ID, seq, 100)
	switch {
	case errors.Is(err, history.ErrNotFound):
		writeProblem(w, s.reject("gateway", newError(schemas.CodeMessageNotFound, "no message with seq "+strconv.FormatUint(seq, 10))))
		return
	case err != nil:
		s.log.Error("reading thread", "conversation_id", c.ID, "err", err)
		writeProblem(w, newError(codeUnavailable, "history store unavailable"))
		return
	}
	events := make([]eventJSON, len(chain))
	for i, ev := range chain {
		events[i] = toEventJSON(ev)
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversation_id": c.ID, "events": events})
}
