// End-to-end encrypted conversations over HTTP: MLS commits, proposals
// and application messages, opaque to the server, appended in the order
// the decider gives them. The decider alone judges their epoch and
// devices: this node's view of a conversation may lag the log, and an
// epoch refused here would be wrong.

package gateway

import (
	"net/http"

	"github.com/parley-chat/parley/schemas"
)

type mlsCommitRequest struct {
	CommandID     string              `json:"command_id"`
	DeviceID      string              `json:"device_id"`
	Epoch         uint64              `json:"epoch"`
	Commit        []byte              `json:"commit"`
	Welcome       []byte              `json:"welcome,omitempty"`
	AddDevices    []schemas.DeviceRef `json:"add_devices,omitempty"`
	RemoveDevices []schemas.DeviceRef `json:"remove_devices,omitempty"`
}

func (r *mlsCommitRequest) commandID() string { return r.CommandID }

// mlsBodyLimit bounds an MLS request: two MLS messages (a commit and its
// welcome) at their largest, base64, and room for the rest.
func mlsBodyLimit() int64 { return 2*base64Len(schemas.MaxMLSBytes) + 16<<10 }

func (*mlsCommitRequest) bodyLimit() int64   { return mlsBodyLimit() }
func (*mlsProposalRequest) bodyLimit() int64 { return mlsBodyLimit() }
func (*mlsMessageRequest) bodyLimit() int64  { return mlsBodyLimit() }

type mlsProposalRequest struct {
	CommandID string `json:"command_id"`
	DeviceID  string `json:"device_id"`
	Epoch     uint64 `json:"epoch"`
	Proposal  []byte `json:"proposal"`
	Leave     bool   `json:"leave,omitempty"`
}

func (r *mlsProposalRequest) commandID() string { return r.CommandID }

type mlsMessageRequest struct {
	CommandID  string `json:"command_id"`
	DeviceID   string `json:"device_id"`
	Epoch      uint64 `json:"epoch"`
	Ciphertext []byte `json:"ciphertext"`
}

func (r *mlsMessageRequest) commandID() string { return r.CommandID }

// validated answers invalid_request for a command that schemas.Decode
// would refuse, so that nothing malformed is appended; false means it
// answered.
func (a *action) validated(typ string, cmd any) bool {
	if err := schemas.Validate(typ, cmd); err != nil {
		a.fail(codeInvalidRequest, err.Error())
		return false
	}
	return true
}

// postMLSCommit serves POST /v1/conversations/{id}/mls/commits.
func (s *Server) postMLSCommit(w http.ResponseWriter, r *http.Request) {
	var req mlsCommitRequest
	a := s.begin(w, r, &req)
	if a == nil {
		return
	}
	cmd := &schemas.MLSCommitV1{
		CommandID: a.id, UserID: a.me, ConversationID: a.conv.ID, DeviceID: req.DeviceID, Epoch: req.Epoch,
		Commit: req.Commit, Welcome: req.Welcome, AddDevices: req.AddDevices, RemoveDevices: req.RemoveDevices, IssuedAt: now(),
	}
	if a.validated(schemas.TypeMLSCommit, cmd) {
		a.run(schemas.TypeMLSCommit, cmd, http.StatusCreated)
	}
}

// postMLSProposal serves POST /v1/conversations/{id}/mls/proposals.
func (s *Server) postMLSProposal(w http.ResponseWriter, r *http.Request) {
	var req mlsProposalRequest
	a := s.begin(w, r, &req)
	if a == nil {
		return
	}
	cmd := &schemas.MLSProposeV1{
		CommandID: a.id, UserID: a.me, ConversationID: a.conv.ID, DeviceID: req.DeviceID, Epoch: req.Epoch,
		Proposal: req.Proposal, Leave: req.Leave, IssuedAt: now(),
	}
	if a.validated(schemas.TypeMLSPropose, cmd) {
		a.run(schemas.TypeMLSPropose, cmd, http.StatusCreated)
	}
}

// postMLSMessage serves POST /v1/conversations/{id}/mls/messages.
func (s *Server) postMLSMessage(w http.ResponseWriter, r *http.Request) {
	var req mlsMessageRequest
	a := s.begin(w, r, &req)
	if a == nil {
		return
	}
	cmd := &schemas.MLSSendV1{
		CommandID: a.id, UserID: a.me, ConversationID: a.conv.ID, DeviceID: req.DeviceID, Epoch: req.Epoch,
		Ciphertext: req.Ciphertext, IssuedAt: now(),
	}
	if a.validated(schemas.TypeMLSSend, cmd) {
		a.run(schemas.TypeMLSSend, cmd, http.StatusCreated)
	}
}
