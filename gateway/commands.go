// Serving a conversation command over HTTP: each validates its input,
// checks membership and pre-checks the conversation rules against this
// node's view of the conversation (so a request the decider would refuse
// appends nothing), appends one command and answers with the decider's
// outcome: the seq of the event, or the original seq for a retried
// command id.

package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

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
