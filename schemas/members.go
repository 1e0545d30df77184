// Conversation kinds, roles and members.

package schemas

// Kind is the kind of a conversation.
type Kind string

// Conversation kinds.
const (
	// KindDirect is a conversation between exactly two users; the pair
	// determines its id (see DirectConversationID).
	KindDirect Kind = "direct"
	// KindGroup is a conversation with a title and any number of members.
	KindGroup Kind = "group"
)

// Role is a member's role in a conversation.
type Role string

// Roles, from most to least privileged.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// Member is a user's membership of a conversation.
type Member struct {
	UserID string `json:"user_id"`
	Role   Role   `json:"role"`
}

func validRole(r Role) bool { return r == RoleOwner || r == RoleAdmin || r == RoleMember }
