package decider

import "github.com/parley-chat/parley/schemas"

// Action is something a member may or may not do in a group, depending
// on roles: the rows of the permission matrix (README "Roles and
// permissions"). What depends on more than roles — editing only one's
// own messages, the edit window, blocks, archives — the decider checks
// beside it.
type Action string

// Actions of the permission matrix.
const (
	ActionAddMembers   Action = "add members"
	ActionRemoveMember Action = "remove a member"
	ActionSetRole      Action = "change a role or transfer the ownership"
	ActionRename       Action = "rename"
	ActionArchive      Action = "archive or unarchive"
	ActionDeleteOthers Action = "delete another member's message"
	ActionLeave        Action = "leave"
)

// Permit reports whether a member with role actor may do action in a
// group, to a member with role target where the action has one (remove
// a member), with the reason for a refusal. others is how many members
// besides the actor the group has (an owner may leave only alone).
// Everything else a member may do — send, reply, react, edit and delete
// their own messages — every member may.
func Permit(action Action, actor, target schemas.Role, others int) (ok bool, reason string) {
	owner, admin := actor == schemas.RoleOwner, actor == schemas.RoleAdmin
	switch action {
	case ActionAddMembers:
		return owner || admin, "only the owner and admins can add members"
	case ActionRemoveMember:
		switch target {
		case schemas.RoleOwner:
			return false, "the owner cannot be removed"
		case schemas.RoleAdmin:
			return owner, "only the owner can remove an admin"
		}
		return owner || admin, "only the owner and admins can remove members"
	case ActionSetRole:
		return owner, "only the owner can change roles"
	case ActionRename:
		return owner || admin, "only the owner and admins can rename the group"
	case ActionArchive:
		return owner, "only the owner can archive or unarchive the group"
	case ActionDeleteOthers:
		return owner || admin, "only the author, or the owner and admins of a group, can delete a message"
	case ActionLeave:
		return !owner || others == 0, "the owner must transfer the ownership before leaving"
	}
	return false, "unknown action"
}
