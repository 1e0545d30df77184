// Package conversationtest holds the permission matrix of a group as
// data, so that the decider's tests and the API's tests check every
// cell against one table: the README's "Roles and permissions".
package conversationtest

import "github.com/parley-chat/parley/schemas"

// The people of the matrix's group: the owner, an admin, a member and
// someone who is not a member, in the order of Row's outcomes. The group
// also has a second admin, ada, and a second member, max, whom actions
// are done to.
const (
	Owner     = "olga"
	Admin     = "adam"
	Member    = "mia"
	NonMember = "nick"
)

// Actors are the columns of the matrix, in the order of Row's outcomes.
var Actors = [4]string{Owner, Admin, Member, NonMember}

// Outcomes of a cell: accepted, or the code it is refused with.
const (
	Accepted  = ""
	Forbidden = schemas.CodeForbidden
	Invalid   = schemas.CodeInvalidCommand
	NotMember = schemas.CodeNotMember
)

// Row is one action and its outcome for each of Actors.
type Row struct {
	Action   string
	Outcomes [4]string
}

// Matrix is the permission matrix: what each role may do in a group.
// "another's message" and "member" mean max's; "admin" means ada.
func Matrix() []Row {
	const (
		ok   = Accepted
		no   = Forbidden
		self = Invalid
		nm   = NotMember
	)
	return []Row{
		{"send", [4]string{ok, ok, ok, nm}},
		{"reply", [4]string{ok, ok, ok, nm}},
		{"add member", [4]string{ok, ok, no, nm}},
		{"remove member", [4]string{ok, ok, no, nm}},
		{"remove admin", [4]string{ok, no, no, nm}},
		{"remove owner", [4]string{self, no, no, nm}},
		{"promote member to admin", [4]string{ok, no, no, nm}},
		{"demote admin to member", [4]string{ok, no, no, nm}},
		{"transfer ownership", [4]string{ok, no, no, nm}},
		{"rename", [4]string{ok, ok, no, nm}},
		{"archive", [4]string{ok, no, no, nm}},
		{"edit own message", [4]string{ok, ok, ok, nm}},
		{"edit another's message", [4]string{no, no, no, nm}},
		{"delete own message", [4]string{ok, ok, ok, nm}},
		{"delete another's message", [4]string{ok, ok, no, nm}},
		{"react", [4]string{ok, ok, ok, nm}},
		{"leave", [4]string{no, ok, ok, nm}},
	}
}
