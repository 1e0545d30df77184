// Typing indicators: the typing frame, coalesced, to chat.ephemeral.

package gateway

import (
	"context"
	"sync"
	"time"
)

// Signaler appends ephemeral signals (producers.SignalWriter).
type Signaler interface {
	Typing(ctx context.Context, conversation, user string, ttl time.Duration) error
}

// Typing indicators: how long one holds, and how often one user's
// indicators for one conversation are passed on.
const (
	typingTTL      = 6 * time.Second
	typingInterval = 2 * time.Second
)

// limiter passes at most one event per key per interval. It is safe for
// concurrent use and bounded: entries older than the interval are dropped
// when the map grows.
type limiter struct {
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
}

func newLimiter(interval time.Duration) *limiter {
	return &limiter{interval: interval, last: make(map[string]time.Time)}
}

// allow reports whether an event for key may pass now.
func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.interval {
		return false
	}
	if len(l.last) >= 10000 {
		for k, t := range l.last {
			if now.Sub(t) >= l.interval {
				delete(l.last, k)
			}
		}
	}
	l.last[key] = now
	return true
}

// typing handles a client's typing frame: members only, coalesced per
// user and conversation, appended to chat.ephemeral, never to the log.
func (k *socket) typing(ctx context.Context, f clientFrame) error {
	if k.s.cfg.Signals == nil {
		return k.writeError(ctx, f.ID, k.s.reject("gateway", newError(codeUnknownType, "typing indicators are not enabled on this node")))
	}
	if _, e := k.s.member(ctx, k.id.UserID, f.ConversationID); e != nil {
		return k.writeError(ctx, f.ID, k.s.reject("gateway", e))
	}
	if !k.s.typing.allow(k.id.UserID+"\x00"+f.ConversationID, time.Now()) {
		return nil // coalesced: the last indicator still holds
	}
	if err := k.s.cfg.Signals.Typing(ctx, f.ConversationID, k.id.UserID, typingTTL); err != nil {
		k.s.log.Warn("appending typing indicator", "conversation_id", f.ConversationID, "err", err)
	}
	return nil
}
