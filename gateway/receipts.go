// Read markers and receipts: mark a conversation read (HTTP and
// WebSocket), and the members' delivered and read markers.

package gateway

import (
	"context"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/parley-chat/parley/schemas"
)

// Receipts appends read markers (producers.ReceiptWriter).
type Receipts interface {
	Read(ctx context.Context, conversation, user string, seq uint64) error
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
	if e := s.diskLow(); e != nil {
		return 0, e
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
		return 0, s.reject("gateway", newError(codeUnavailable, "could not record the read marker; retry"))
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
