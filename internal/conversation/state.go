// Package conversation is the one home of a conversation's state and
// rules: the fold of chat.events into what a conversation is (kind,
// title, members and their roles, archive, blocks, last seq), and the
// rules every command is judged by (the permission matrix, content
// rules and limits).
//
// The decider decides with it, against the state it folds from the log;
// the gateway pre-checks requests with the same calls, against its view
// of the same state (the history store's summary, which may lag the
// log), so that a request the decider would refuse appends nothing. The
// history projection folds its summaries with State.Fold. No rule and no
// refusal text lives anywhere else.
//
// Everything here is pure computation: no I/O, no clock, no goroutines.
// A State is a value; it is not safe for concurrent mutation.
package conversation

import (
	"cmp"
	"slices"
	"time"

	"github.com/parley-chat/parley/schemas"
)

// State is a conversation as its events make it.
type State struct {
	ID        string
	Kind      schemas.Kind
	Title     string
	CreatedBy string
	CreatedAt time.Time
	// Members are sorted by user id, one entry per user. Fold replaces
	// the slice rather than changing it in place, so a copy of a State
	// never sees a later fold.
	Members []schemas.Member
	// LastSeq is the seq of the newest event folded.
	LastSeq uint64
	// Archived is set while a group is archived (read-only).
	Archived bool
	// BlockedBy lists, in a direct conversation, the members who block
	// the other one, sorted; nil when nobody does.
	BlockedBy []string
	// Encrypted is set for ever on an end-to-end encrypted (MLS)
	// conversation.
	Encrypted bool `json:",omitempty"`
	// Epoch is the MLS epoch of an encrypted conversation's group.
	Epoch uint64 `json:",omitempty"`
	// Devices are the devices in an encrypted conversation's group,
	// sorted by schemas.CompareDevices.
	Devices []schemas.DeviceRef `json:",omitempty"`
	// Leaving are the members who proposed their own removal in the
	// current epoch, sorted; a commit clears it.
	Leaving []string `json:",omitempty"`
}

// Fold applies v, a decoded event of the conversation with seq seq, to
// s. Events that change a conversation beyond its messages (creation,
// membership, roles, title, archive, blocks) change the fields above;
// every event, of any type (v may be nil for a type this version does
// not know), advances LastSeq to seq when it is newer. Callers fold in
// seq order and decide themselves what to do with an event at or below
// LastSeq; Fold does not judge it.
func (s *State) Fold(seq uint64, v any) {
	if seq > s.LastSeq {
		s.LastSeq = seq
	}
	if e, ok := schemas.AsCreation(v); ok {
		s.ID = e.ConversationID
		s.Kind = e.Kind
		s.Title = e.Title
		s.CreatedBy = e.CreatedBy
		s.CreatedAt = e.CreatedAt.UTC()
		s.Members = SortMembers(e.Members)
		s.Encrypted = e.Encrypted
		s.Devices = slices.SortedFunc(slices.Values(e.Devices), schemas.CompareDevices)
		return
	}
	switch e := v.(type) {
	case *schemas.MLSCommittedV1:
		s.foldCommit(e)
	case *schemas.MLSProposedV1:
		s.foldProposal(e)
	case *schemas.MembersAddedV1:
		s.Members = SortMembers(append(slices.Clone(s.Members), e.Members...))
	case *schemas.MemberLeftV1:
		s.Members = withoutMember(s.Members, e.UserID)
	case *schemas.MemberRemovedV1:
		s.Members = withoutMember(s.Members, e.MemberID)
	case *schemas.RolesChangedV1:
		members := slices.Clone(s.Members)
		for _, ch := range e.Changes {
			if i, ok := findMember(members, ch.UserID); ok {
				members[i].Role = ch.Role
			}
		}
		s.Members = members
	case *schemas.RenamedV1:
		s.Title = e.Title
	case *schemas.ArchivedV1:
		s.Archived = e.Archived
	case *schemas.BlockedV1:
		blocked := slices.DeleteFunc(slices.Clone(s.BlockedBy), func(u string) bool { return u == e.UserID })
		if e.Blocked {
			blocked = append(blocked, e.UserID)
			slices.Sort(blocked)
		}
		if len(blocked) == 0 {
			blocked = nil
		}
		s.BlockedBy = blocked
	}
}

// ChangesConversation reports whether events of type typ change a
// conversation beyond its messages: the types Fold reads.
func ChangesConversation(typ string) bool {
	switch typ {
	case schemas.TypeConversationCreated, schemas.TypeMembersAdded, schemas.TypeMemberLeft,
		schemas.TypeMemberRemoved, schemas.TypeRolesChanged, schemas.TypeRenamed,
		schemas.TypeArchived, schemas.TypeBlocked,
		schemas.TypeConversationCreatedV2, schemas.TypeMLSCommitted, schemas.TypeMLSProposed:
		return true
	}
	return false
}

// Role returns user's role and whether user is a member.
func (s *State) Role(user string) (schemas.Role, bool) {
	if i, ok := findMember(s.Members, user); ok {
		return s.Members[i].Role, true
	}
	return "", false
}

// IsMember reports whether user is a member.
func (s *State) IsMember(user string) bool {
	_, ok := findMember(s.Members, user)
	return ok
}

// findMember finds user in members, sorted by user id.
func findMember(members []schemas.Member, user string) (int, bool) {
	return slices.BinarySearchFunc(members, user, func(m schemas.Member, u string) int {
		return cmp.Compare(m.UserID, u)
	})
}

func withoutMember(members []schemas.Member, user string) []schemas.Member {
	return slices.DeleteFunc(slices.Clone(members), func(m schemas.Member) bool { return m.UserID == user })
}

// SortMembers returns a copy of members sorted by user id with one entry
// per user, the first one given for it.
func SortMembers(members []schemas.Member) []schemas.Member {
	out := slices.Clone(members)
	slices.SortStableFunc(out, func(a, b schemas.Member) int {
		return cmp.Compare(a.UserID, b.UserID)
	})
	return slices.CompactFunc(out, func(a, b schemas.Member) bool {
		return a.UserID == b.UserID
	})
}
