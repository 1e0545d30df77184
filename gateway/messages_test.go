package gateway

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// countingPages is a history that counts its page look-ups and has one
// message, seq 1 by alice.
type countingPages struct {
	*searchHistory
	pages atomic.Int64
}

func (h *countingPages) Page(_ context.Context, conv string, q history.PageQuery) (history.Page, error) {
	h.pages.Add(1)
	if q.Forward && q.After == 0 {
		return history.Page{Events: []history.Event{{ConversationID: conv, Seq: 1, Type: schemas.TypeMessageSent, Data: []byte(`{"sender_id":"alice","sent_at":"2026-01-02T03:04:05Z"}`)}}}, nil
	}
	return history.Page{}, nil
}

// TestMessageOfNoReplyLooksNothingUp: a send that replies to nothing
// (reply_to 0) costs no history look-up; a reply to seq 1 costs one and
// finds its author.
func TestMessageOfNoReplyLooksNothingUp(t *testing.T) {
	t.Parallel()
	auth, err := NewAuthenticator(AuthConfig{Secret: wsSecret})
	if err != nil {
		t.Fatal(err)
	}
	conv := searchConv("g_ab", "alice", "bob")
	conv.LastSeq = 1
	hist := &countingPages{searchHistory: &searchHistory{convs: map[string]history.Conversation{"g_ab": conv}}}
	s, err := New(Config{Auth: auth, Commands: saturatedLog{}, Hub: memberHub{searchHub{hist.convs}}, History: hist})
	if err != nil {
		t.Fatal(err)
	}
	if m := s.message(context.Background(), conv, 0); m != nil {
		t.Errorf("message(0) = %+v, want nil", m)
	}
	if n := hist.pages.Load(); n != 0 {
		t.Errorf("message(0) made %d page look-ups, want 0", n)
	}
	m := s.message(context.Background(), conv, 1)
	if m == nil || m.Author != "alice" {
		t.Errorf("message(1) = %+v, want alice's", m)
	}
	if n := hist.pages.Load(); n != 1 {
		t.Errorf("message(1) made %d page look-ups, want 1", n)
	}
}
