// The rules of end-to-end encrypted conversations: which MLS commits,
// proposals and application messages the delivery service accepts, and
// which plain commands an encrypted conversation refuses.

package conversation

import (
	"fmt"
	"maps"
	"slices"

	"github.com/parley-chat/parley/schemas"
)

// Plain refuses a command that carries or changes readable content or
// membership in an encrypted conversation: messages, edits, reactions,
// files, and member changes, which there go through MLS commits. kind
// says what the command is, for the refusal.
func (s *State) Plain(kind string) *Refusal {
	if s.Encrypted {
		return refuse(schemas.CodeInvalidCommand, "an encrypted conversation takes MLS messages only: "+kind+" is not possible in it")
	}
	return nil
}

// mls refuses an MLS message of user's device in epoch: the conversation
// must be encrypted and writable, the device in its group, and the epoch
// the current one.
func (s *State) mls(user, device string, epoch uint64) *Refusal {
	if !s.Encrypted {
		return refuse(schemas.CodeInvalidCommand, "not an encrypted conversation: MLS messages are for encrypted conversations")
	}
	if r := s.Writable(user); r != nil {
		return r
	}
	if !s.HasDevice(schemas.DeviceRef{UserID: user, DeviceID: device}) {
		return refuse(schemas.CodeForbidden, "your device "+device+" is not in the conversation's group")
	}
	if epoch != s.Epoch {
		return refuse(schemas.CodeStaleEpoch, fmt.Sprintf("the group is at epoch %d, not %d: process the commits you missed and try again", s.Epoch, epoch))
	}
	return nil
}

// HasDevice reports whether d is in the encrypted conversation's group.
func (s *State) HasDevice(d schemas.DeviceRef) bool {
	_, ok := slices.BinarySearchFunc(s.Devices, d, schemas.CompareDevices)
	return ok
}

// MLSMessage refuses an MLS application message of user's device in
// epoch.
func (s *State) MLSMessage(user, device string, epoch uint64) *Refusal {
	return s.mls(user, device, epoch)
}

// Propose refuses an MLS proposal of user's device in epoch; leave marks
// it as the user's own departure, which the rules of leaving govern.
func (s *State) Propose(user, device string, epoch uint64, leave bool) *Refusal {
	if r := s.mls(user, device, epoch); r != nil || !leave {
		return r
	}
	return s.Leave(user)
}

// Commit refuses an MLS commit of user's device made in epoch that adds
// and removes the devices given, or returns the conversation's member
// changes it makes: the users of added devices who are not members join
// as members (group members may add; a direct conversation has its two
// members for ever), and users whose every device is removed leave. A
// member's devices may be removed by the member (not all of them: MLS
// does not let a member commit its own removal — propose it, leave, and
// another member commits it), by a member allowed to remove them, or by
// anyone once the member proposed to leave in this epoch.
func (l Limits) Commit(s *State, user, device string, epoch uint64, add, remove []schemas.DeviceRef) (added []schemas.Member, removed []string, r *Refusal) {
	if r := s.mls(user, device, epoch); r != nil {
		return nil, nil, r
	}
	for _, d := range add {
		if s.HasDevice(d) {
			return nil, nil, refuse(schemas.CodeInvalidCommand, "device "+d.UserID+"/"+d.DeviceID+" is in the group already")
		}
		if slices.Contains(remove, d) {
			return nil, nil, refuse(schemas.CodeInvalidCommand, "device "+d.UserID+"/"+d.DeviceID+" is both added and removed")
		}
		if !s.IsMember(d.UserID) && !slices.ContainsFunc(added, func(m schemas.Member) bool { return m.UserID == d.UserID }) {
			added = append(added, schemas.Member{UserID: d.UserID, Role: schemas.RoleMember})
		}
	}
	if len(added) > 0 {
		if r := s.AddMembers(user); r != nil {
			return nil, nil, r
		}
		if r := l.Size(len(s.Members) + len(added)); r != nil {
			return nil, nil, r
		}
	}
	left := map[string]int{} // devices each user keeps
	for _, d := range s.Devices {
		left[d.UserID]++
	}
	touched := map[string]bool{}
	for _, d := range remove {
		if !s.HasDevice(d) {
			return nil, nil, refuse(schemas.CodeInvalidCommand, "device "+d.UserID+"/"+d.DeviceID+" is not in the group")
		}
		left[d.UserID]--
		touched[d.UserID] = true
	}
	for _, u := range slices.Sorted(maps.Keys(touched)) {
		gone := left[u] == 0 && s.IsMember(u)
		switch {
		case u == user && gone:
			return nil, nil, refuse(schemas.CodeInvalidCommand, "a member cannot commit their own removal: propose it (leave) and another member commits it")
		case u == user:
		case slices.Contains(s.Leaving, u):
		default:
			if s.Kind != schemas.KindGroup {
				return nil, nil, refuse(schemas.CodeForbidden, "in a direct conversation only a member removes their own devices")
			}
			role, _ := s.Role(u)
			if r := s.permit(user, ActionRemoveMember, role); r != nil {
				return nil, nil, r
			}
		}
		if gone {
			removed = append(removed, u)
		}
	}
	return SortMembers(added), removed, nil
}

// foldCommit applies an accepted commit to s.
func (s *State) foldCommit(e *schemas.MLSCommittedV1) {
	s.Epoch = e.Epoch
	devices := slices.DeleteFunc(slices.Clone(s.Devices), func(d schemas.DeviceRef) bool {
		return slices.Contains(e.RemovedDevices, d)
	})
	devices = append(devices, e.AddedDevices...)
	slices.SortFunc(devices, schemas.CompareDevices)
	s.Devices = slices.Compact(devices)
	if len(e.MembersAdded) > 0 {
		s.Members = SortMembers(append(slices.Clone(s.Members), e.MembersAdded...))
	}
	for _, u := range e.MembersRemoved {
		s.Members = withoutMember(s.Members, u)
	}
	s.Leaving = nil
}

// foldProposal applies an accepted proposal to s.
func (s *State) foldProposal(e *schemas.MLSProposedV1) {
	if e.Leave && !slices.Contains(s.Leaving, e.UserID) {
		leaving := append(slices.Clone(s.Leaving), e.UserID)
		slices.Sort(leaving)
		s.Leaving = leaving
	}
}
