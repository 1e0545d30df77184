// Command waiters: requests waiting for the answer to their command.

package delivery

import (
	"cmp"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// Outcome is the answer to a command this node appended.
type Outcome struct {
	ConversationID string
	// Seq of the event the command produced (now, or before for a
	// duplicate).
	Seq       uint64
	Duplicate bool
	// Code and Reason are set when the command was rejected.
	Code, Reason string
	// Event is the event the command produced; nil for replies.
	Event *history.Event
}

// waiterKey names a command: client command ids are the user's, per
// conversation (as the decider dedupes them).
type waiterKey struct{ user, conversation, command string }

// waiters are the requests of this node waiting for an Outcome, by user
// and command id. The same command may be awaited by several requests at
// once (a client that sends it twice without waiting): each appends it,
// the decider answers the first append with the event (or a rejection)
// and every later one with a duplicate (or a rejection again), and the
// answers go to the waiters in the order they registered — one answer
// each. Its methods are safe for concurrent use.
type waiters struct {
	log *slog.Logger

	mu sync.Mutex
	m  map[waiterKey][]chan Outcome
}

func newWaiters(log *slog.Logger) *waiters {
	return &waiters{log: log, m: make(map[waiterKey][]chan Outcome)}
}

// await registers interest in the outcome of user's command commandID
// (see Hub.Await).
func (w *waiters) await(user, conversation, commandID string) (outcome <-chan Outcome, cancel func()) {
	key := waiterKey{user, conversation, commandID}
	ch := make(chan Outcome, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.m[key] = append(w.m[key], ch)
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		q := slices.DeleteFunc(w.m[key], func(c chan Outcome) bool { return c == ch })
		if len(q) == 0 {
			delete(w.m, key)
			return
		}
		w.m[key] = q
	}
}

// answer hands out to the first waiter of key, if any, and forgets it;
// it reports whether there was one.
func (w *waiters) answer(key waiterKey, out Outcome) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.m[key]
	if len(q) == 0 {
		return false
	}
	q[0] <- out // buffered, and answered once: never blocks
	if len(q) == 1 {
		delete(w.m, key)
		return true
	}
	w.m[key] = q[1:]
	return true
}

// answerEvent hands an event to the request of this node waiting for it,
// if any: the one that appended the command it answers, and reports
// whether there was one. The event names who issued that command: the
// sender, the creator or the acting user.
func (w *waiters) answerEvent(ev *history.Event) bool {
	var issuer struct {
		SenderID  string `json:"sender_id"`
		CreatedBy string `json:"created_by"`
		UserID    string `json:"user_id"`
		CommandID string `json:"command_id"`
	}
	if json.Unmarshal(ev.Data, &issuer) != nil || issuer.CommandID == "" {
		return false
	}
	return w.answer(waiterKey{cmp.Or(issuer.SenderID, issuer.CreatedBy, issuer.UserID), ev.ConversationID, issuer.CommandID},
		Outcome{ConversationID: ev.ConversationID, Seq: ev.Seq, Event: ev})
}

// answerReply hands a record of chat.replies (a rejection or a
// duplicate) to the request waiting for it, if any.
func (w *waiters) answerReply(attrs schemas.Attributes, value []byte) {
	v, err := schemas.Decode(attrs.Type, value)
	if err != nil {
		w.log.Warn("skipping reply", "type", attrs.Type, "err", err)
		return
	}
	switch r := v.(type) {
	case *schemas.CommandRejectedV1:
		w.answer(waiterKey{r.UserID, r.ConversationID, r.CommandID}, Outcome{ConversationID: r.ConversationID, Code: r.Code, Reason: r.Reason})
	case *schemas.CommandDuplicateV1:
		w.answer(waiterKey{r.UserID, r.ConversationID, r.CommandID}, Outcome{ConversationID: r.ConversationID, Seq: r.Seq, Duplicate: true})
	}
}
