// Package fold is what both history store adapters compute when they
// apply a batch of a conversation's events, so that pebblestore and
// scyllastore agree on it: the summary after the batch with what changed
// in it and at which seq (scyllastore writes each change with a timestamp
// derived from that seq), the number of messages through each folded seq,
// the senders' read marks, and the message states that edits, deletions
// and reactions change, with the bodies a deletion erases.
//
// Everything here is pure computation over values the caller passes in;
// the package has no state and is safe for concurrent use.
package fold

import (
	"encoding/json"
	"slices"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// Count is how many chat messages a conversation had through Seq,
// included.
type Count struct {
	Seq      uint64
	Messages uint64
}

// MemberChange is the last change of one user's membership in a batch.
type MemberChange struct {
	Seq     uint64       // the event that made it
	Role    schemas.Role // the role after it, unless Removed
	Removed bool
}

// BlockChange is the last change of one user's block in a batch.
type BlockChange struct {
	Seq     uint64
	Blocked bool
}

// Summary is what a batch did to its conversation's summary.
type Summary struct {
	// Conversation is the summary after the batch.
	Conversation history.Conversation
	// Changed reports whether the batch changed the summary at all.
	Changed bool
	// Created reports whether the batch folded a valid creation.
	Created bool
	// Counts are the messages through the seq of every event folded, in
	// seq order (a creation's is 0).
	Counts []Count
	// Read maps each sender of a message of the batch to the newest seq
	// they sent: sending reads the conversation up to one's own message.
	Read map[string]uint64
	// Members holds, by user, the last membership change of the batch
	// made by an event after the creation (members added or removed,
	// departures, roles).
	Members map[string]MemberChange
	// Blocks holds, by user, the last block or unblock of the batch.
	Blocks map[string]BlockChange
	// Encryption reports whether the batch changed the state of an
	// encrypted conversation (Encrypted, Epoch, Devices, Leaving), and
	// EncryptionSeq is the seq of the last event that did (0 for the
	// creation).
	Encryption    bool
	EncryptionSeq uint64
	// TitleSeq, ArchivedSeq and PreviewSeq are the seqs of the last
	// events of the batch that renamed the conversation, archived or
	// unarchived it, and changed its LastMessage; 0 when none did.
	TitleSeq, ArchivedSeq, PreviewSeq uint64
}

// Folds reports whether history.ApplyToSummary folds ev into c: c has
// no event yet, ev is newer than every event folded, or ev is a creation
// and c has none.
func Folds(c history.Conversation, ev history.Event) bool {
	return c.ID == "" || ev.Seq > c.LastSeq || (ev.Seq == 0 && c.Kind == "")
}

// Conversation folds events, the events of one conversation that a store
// applies for the first time, in ascending seq order, into base, the
// conversation's summary before them (the zero value when it has none).
// An event at or below what base has folded (a gap filled late, which
// Kafka's order rules out but concurrent applies do not) is left out of
// the summary, as history.ApplyToSummary leaves it. warn is called for
// every event the summary cannot interpret; such an event is still
// counted as folded.
func Conversation(base history.Conversation, events []history.Event, warn func(history.Event, error)) Summary {
	s := Summary{
		Conversation: base,
		Read:         map[string]uint64{},
		Members:      map[string]MemberChange{},
		Blocks:       map[string]BlockChange{},
	}
	c := &s.Conversation
	read := func(ev history.Event, sender string) {
		if sender != "" && ev.Seq > s.Read[sender] {
			s.Read[sender] = ev.Seq
		}
	}
	for _, ev := range events {
		if !Folds(*c, ev) {
			read(ev, sender(ev))
			continue
		}
		var roles map[string]schemas.Role
		if isMembership(ev.Type) {
			roles = roleMap(c.Members)
		}
		blocked := c.BlockedBy
		preview := c.LastMessage
		encryption := encryptionOf(c)
		changed, err := history.ApplyToSummary(c, ev)
		s.Changed = s.Changed || changed
		count := c.Messages
		if ev.Seq == 0 {
			count = 0
		}
		s.Counts = append(s.Counts, Count{Seq: ev.Seq, Messages: count})
		if schemas.IsInboxMessage(ev.Type) {
			// A message the summary folded is the newest: its preview
			// has the sender decoded already.
			if p := c.LastMessage; err == nil && p != nil && p.Seq == ev.Seq {
				read(ev, p.SenderID)
			} else {
				read(ev, sender(ev))
			}
		}
		if err != nil {
			warn(ev, err)
			continue
		}
		switch ev.Type {
		case schemas.TypeConversationCreated, schemas.TypeConversationCreatedV2:
			s.Created = true
		case schemas.TypeRenamed:
			s.TitleSeq = ev.Seq
		case schemas.TypeArchived:
			s.ArchivedSeq = ev.Seq
		case schemas.TypeBlocked:
			for _, u := range symmetricDifference(blocked, c.BlockedBy) {
				s.Blocks[u] = BlockChange{Seq: ev.Seq, Blocked: slices.Contains(c.BlockedBy, u)}
			}
		}
		if roles != nil {
			after := roleMap(c.Members)
			for u := range roles {
				if _, ok := after[u]; !ok {
					s.Members[u] = MemberChange{Seq: ev.Seq, Removed: true}
				}
			}
			for u, r := range after {
				if old, ok := roles[u]; !ok || old != r {
					s.Members[u] = MemberChange{Seq: ev.Seq, Role: r}
				}
			}
		}
		if c.LastMessage != preview {
			s.PreviewSeq = ev.Seq
		}
		if !encryption.equal(encryptionOf(c)) {
			s.Encryption, s.EncryptionSeq = true, ev.Seq
		}
	}
	return s
}

// encryption is the state of an encrypted conversation in its summary.
type encryption struct {
	encrypted bool
	epoch     uint64
	devices   []schemas.DeviceRef
	leaving   []string
}

func encryptionOf(c *history.Conversation) encryption {
	return encryption{c.Encrypted, c.Epoch, c.Devices, c.Leaving}
}

func (e encryption) equal(o encryption) bool {
	return e.encrypted == o.encrypted && e.epoch == o.epoch && slices.Equal(e.devices, o.devices) && slices.Equal(e.leaving, o.leaving)
}

// sender returns the sender of a chat message event (any version), or ""
// for other events and for a value without one.
func sender(ev history.Event) string {
	if !schemas.IsInboxMessage(ev.Type) {
		return ""
	}
	var m struct {
		SenderID string `json:"sender_id"`
	}
	if json.Unmarshal(ev.Data, &m) != nil {
		return ""
	}
	return m.SenderID
}

func isMembership(typ string) bool {
	switch typ {
	case schemas.TypeMembersAdded, schemas.TypeMemberRemoved, schemas.TypeMemberLeft, schemas.TypeRolesChanged, schemas.TypeMLSCommitted:
		return true
	}
	return false
}

func roleMap(members []schemas.Member) map[string]schemas.Role {
	m := make(map[string]schemas.Role, len(members))
	for _, mem := range members {
		m[mem.UserID] = mem.Role
	}
	return m
}

// symmetricDifference returns the strings in exactly one of a and b.
func symmetricDifference(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	for _, s := range b {
		if !slices.Contains(a, s) {
			out = append(out, s)
		}
	}
	return out
}
