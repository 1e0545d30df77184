// What the push store holds that the log alone decides, for a verified
// rebuild (internal/rebuild): the conversations with their members, last
// seq and messages, and each user's read markers and unread counts.

package push

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-chat/parley/consumers"
)

// ConversationState is what the store holds of one conversation.
type ConversationState struct {
	Members   []string `json:"members"`
	LastSeq   uint64   `json:"last_seq"`
	Encrypted bool     `json:"encrypted,omitempty"`
	// Messages are the seqs of its messages, in order: what unread
	// counts count.
	Messages []uint64 `json:"messages"`
}

// UserConversation is one user's state in one conversation: a member's,
// or a former member's whose read marker is kept.
type UserConversation struct {
	ConversationID string `json:"conversation_id"`
	Member         bool   `json:"member"`
	ReadSeq        uint64 `json:"read_seq"`
	// Unread is how many messages follow ReadSeq.
	Unread uint64 `json:"unread"`
}

// UserState is what the store holds of one user: every conversation the
// user is a member of or has a read marker in, by id, and the badge (the
// unread total over the conversations the user is a member of).
type UserState struct {
	Conversations []UserConversation `json:"conversations"`
	Badge         uint64             `json:"badge"`
}

// Conversation returns what the store holds of conv; false if it knows
// nothing of it.
func (s *Store) Conversation(conv string) (ConversationState, bool, error) {
	var c convState
	found, err := getJSON(s.db, key(prefixConv, conv), &c)
	if err != nil || !found {
		return ConversationState{}, false, err
	}
	out := ConversationState{Members: c.Members, LastSeq: c.LastSeq, Encrypted: c.Encrypted, Messages: []uint64{}}
	err = scan(s.db, string(key(prefixMessage, conv))+"\x00", func(k, _ []byte) (bool, error) {
		if len(k) < 8 {
			return false, fmt.Errorf("bad message key %q", k)
		}
		out.Messages = append(out.Messages, binary.BigEndian.Uint64(k[len(k)-8:]))
		return true, nil
	})
	return out, true, err
}

// User returns what the store holds of user.
func (s *Store) User(user string) (UserState, error) {
	byConv := map[string]*UserConversation{}
	note := func(conv string) *UserConversation {
		uc := byConv[conv]
		if uc == nil {
			uc = &UserConversation{ConversationID: conv}
			byConv[conv] = uc
		}
		return uc
	}
	err := scan(s.db, string(key(prefixRead, user))+"\x00", func(k, v []byte) (bool, error) {
		parts := splitKey(k, prefixRead)
		if len(v) != 8 {
			return false, fmt.Errorf("bad value of %q", k)
		}
		note(parts[len(parts)-1]).ReadSeq = binary.BigEndian.Uint64(v)
		return true, nil
	})
	if err != nil {
		return UserState{}, err
	}
	err = scan(s.db, string(key(prefixMember, user))+"\x00", func(k, _ []byte) (bool, error) {
		parts := splitKey(k, prefixMember)
		note(parts[len(parts)-1]).Member = true
		return true, nil
	})
	if err != nil {
		return UserState{}, err
	}
	out := UserState{Conversations: make([]UserConversation, 0, len(byConv))}
	for _, conv := range slices.Sorted(maps.Keys(byConv)) {
		uc := byConv[conv]
		if uc.Unread, err = s.unread(conv, uc.ReadSeq); err != nil {
			return UserState{}, err
		}
		out.Conversations = append(out.Conversations, *uc)
	}
	if out.Badge, err = s.badge(user); err != nil {
		return UserState{}, err
	}
	return out, nil
}

// unread returns how many messages of conv follow seq read.
func (s *Store) unread(conv string, read uint64) (uint64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: messageKey(conv, read+1), UpperBound: append(key(prefixMessage, conv), 1)})
	if err != nil {
		return 0, err
	}
	var n uint64
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n, it.Close()
}

// RebuildProjection returns a projection that folds chat.events and
// chat.receipts into store as the push role's does, but for a role that
// knows no device: it marks nothing due and sends nothing. A verified
// rebuild replays the log through it into a fresh store.
func RebuildProjection(store *Store) consumers.Projection[Item] {
	return Projection{p: &Push{cfg: Config{}.withDefaults(), store: store, settings: NewSettings(), wakeup: make(chan struct{}, 1)}}
}

// ConversationOf returns the conversation it concerns, "" for a record
// the projection has nothing to do with.
func (it Item) ConversationOf() string {
	conv, _ := position(it.Value)
	return conv
}
