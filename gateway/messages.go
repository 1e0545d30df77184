// The message endpoints and their pre-checks: send (shared with the
// WebSocket), edit, delete, react, history pages and threads.

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

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
		writeProblem(w, refused(conversation.NotFound()))
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
		if ev.Type == schemas.TypeMLSCommitted {
			ev.Data, _ = stripWelcome(ev.Data, me.UserID, r.URL.Query().Get("device_id"))
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

type sendRequest struct {
	CommandID   string              `json:"command_id"`
	Body        string              `json:"body"`
	ReplyTo     uint64              `json:"reply_to"`
	Attachments []attachmentRequest `json:"attachments"`
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
	out, e := s.send(r.Context(), me.UserID, chi.URLParam(r, "id"), req.CommandID, req.Body, req.ReplyTo, req.Attachments, r.Header.Get("traceparent"))
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
// replyTo, if not 0, is the seq of the message it answers; files are its
// attachments, checked against the file store before anything is
// appended.
func (s *Server) send(ctx context.Context, user, conversation, commandID, body string, replyTo uint64, files []attachmentRequest, traceParent string) (sendResponse, *apiError) {
	if !schemas.ValidCommandID(commandID) {
		return sendResponse{}, s.reject("gateway", newError(codeInvalidRequest, "command_id must be 1-64 characters of [A-Za-z0-9._:-]"))
	}
	if body != "" || len(files) == 0 {
		if e := s.checkBody(body); e != nil {
			return sendResponse{}, s.reject("gateway", e)
		}
	}
	c, e := s.member(ctx, user, conversation)
	if e != nil {
		return sendResponse{}, s.reject("gateway", e)
	}
	if r := s.cfg.Limits.SendFiles(&c.State, user, body, replyTo, s.message(ctx, c, replyTo), len(files)); r != nil {
		return sendResponse{}, s.reject("gateway", refused(r))
	}
	typ := schemas.TypeSendMessageV2
	var cmd any = &schemas.SendMessageV2{CommandID: commandID, UserID: user, ConversationID: conversation, Body: body, ReplyTo: replyTo, IssuedAt: time.Now().UTC()}
	if len(files) > 0 {
		attached, e := s.attachments(ctx, user, conversation, files)
		if e != nil {
			return sendResponse{}, s.reject("gateway", e)
		}
		typ = schemas.TypeSendMessageV3
		cmd = &schemas.SendMessageV3{CommandID: commandID, UserID: user, ConversationID: conversation, Body: body, ReplyTo: replyTo, Attachments: attached, IssuedAt: time.Now().UTC()}
	}
	out, e := s.command(ctx, user, commandID, typ, conversation, cmd, traceParent)
	if e != nil {
		return sendResponse{}, e
	}
	return sendResponse{ConversationID: conversation, Seq: out.Seq, Duplicate: out.Duplicate}, nil
}

// target parses the {seq} of a message path; false means it answered.
func (a *action) target() (uint64, bool) {
	seq, e := messageSeq(a.r)
	if e != nil {
		a.fail(e.Code, e.Message)
		return 0, false
	}
	return seq, true
}

// messageSeq is the {seq} of a message path: a positive integer.
func messageSeq(r *http.Request) (uint64, *apiError) {
	seq, err := strconv.ParseUint(chi.URLParam(r, "seq"), 10, 64)
	if err != nil || seq == 0 {
		return 0, newError(codeInvalidRequest, "the message seq is a positive integer")
	}
	return seq, nil
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

// message returns what the conversation rules need of the message at
// seq of c, from the history store's copy: a Message with no author when
// seq is no message of c, nil when the store cannot tell (it may lag
// behind the decider, which then decides alone). Reactions are left
// unknown: the store's may lag, and a pre-check must never refuse what
// the decider would accept.
func (s *Server) message(ctx context.Context, c history.Conversation, seq uint64) *conversation.Message {
	if seq == 0 {
		// Seq 0 is the conversation's creation, never a message: a send
		// that replies to nothing asks for it, and needs no look-up.
		return nil
	}
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
	seq, e := messageSeq(r)
	if e != nil {
		writeProblem(w, s.reject("gateway", e))
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
