// The membership cache fan-out reads and the gateway authorises with.

package delivery

import (
	"context"
	"log/slog"
	"sync"

	"github.com/parley-chat/parley/internal/lru"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// membership caches conversation summaries — members first — by
// conversation id, for at most a bounded number of conversations (the
// least recently used are forgotten, and loaded again when needed). Its
// methods are safe for concurrent use; what they return is a copy.
type membership struct {
	log     *slog.Logger
	history history.Reader

	mu    sync.Mutex
	convs *lru.Map[string, *history.Conversation]
}

func newMembership(h history.Reader, capacity int, log *slog.Logger) *membership {
	return &membership{log: log, history: h, convs: lru.New[string, *history.Conversation](capacity)}
}

// get returns the cached summary of conversation id.
func (m *membership) get(id string) (history.Conversation, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.convs.Get(id)
	if !ok {
		return history.Conversation{}, false
	}
	return *c, true
}

// forgetAll drops every cached summary.
func (m *membership) forgetAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []string
	m.convs.All(func(id string, _ *history.Conversation) bool { ids = append(ids, id); return true })
	for _, id := range ids {
		m.convs.Delete(id)
	}
}

func (m *membership) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.convs.Len()
}

// putIfAbsent caches c as conversation id's summary unless one is
// cached already, and returns the cached one: what the live stream
// brought is newer than what was loaded.
func (m *membership) putIfAbsent(id string, c history.Conversation) history.Conversation {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cached, ok := m.convs.Get(id); ok {
		return *cached
	}
	m.convs.Put(id, &c)
	return c
}

// load returns conversation id's summary, from the cache or else from
// the history store.
func (m *membership) load(ctx context.Context, id string) (history.Conversation, error) {
	if c, ok := m.get(id); ok {
		return c, nil
	}
	loaded, err := m.history.Conversation(ctx, id)
	if err != nil {
		return history.Conversation{}, err
	}
	return m.putIfAbsent(id, loaded), nil
}

// fold applies an event of chat.events to its conversation's cached
// summary, if cached; a creation adds it.
func (m *membership) fold(ev history.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.convs.Get(ev.ConversationID); ok {
		if _, err := history.ApplyToSummary(c, ev); err != nil {
			m.log.Warn("membership", "conversation_id", ev.ConversationID, "err", err)
		}
		return
	}
	if schemas.IsCreation(ev.Type) {
		c := &history.Conversation{}
		if _, err := history.ApplyToSummary(c, ev); err == nil {
			m.convs.Put(ev.ConversationID, c)
		}
	}
}

// applyChange folds a conversation change into the conversation cached,
// if it is (a creation adds it). Under targeted routing a cached summary
// is folded only changes, in order, so its LastSeq is the seq of the last
// change it has: a change whose predecessor (prev) is at or below it
// follows on; one whose predecessor is above it means a change was
// missed. Changes come by two paths, the node's delivery topic and
// chat.changes, in any relative order: a gap seen on the delivery topic
// waits for chat.changes to bring the change in between, while a gap
// seen on chat.changes itself (authoritative: it has every change) drops
// the summary, to be loaded again from history when needed.
func (m *membership) applyChange(ev history.Event, prev uint64, hasPrev, authoritative bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, cached := m.convs.Get(ev.ConversationID)
	switch {
	case schemas.IsCreation(ev.Type):
		if !cached {
			c = &history.Conversation{}
			if _, err := history.ApplyToSummary(c, ev); err == nil {
				m.convs.Put(ev.ConversationID, c)
			}
		}
	case !cached || !hasPrev || ev.Seq <= c.LastSeq:
	case prev <= c.LastSeq:
		if _, err := history.ApplyToSummary(c, ev); err != nil {
			m.log.Warn("conversation change", "conversation_id", ev.ConversationID, "seq", ev.Seq, "err", err)
		}
	case authoritative:
		m.convs.Delete(ev.ConversationID)
	}
}
