// Signals nobody replays (typing, on chat.ephemeral) and presence (on
// the compacted chat.presence).

package schemas

import (
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/internal/bytepattern"
)

// TypingV1 says that a user is typing in a conversation
// (chat.typing.v1, on chat.ephemeral). It is a signal, not a fact: never
// in chat.events, never in history. It is valid until ExpiresAt; clients
// repeat it while the user keeps typing.
type TypingV1 struct {
	ConversationID string    `json:"conversation_id"`
	UserID         string    `json:"user_id"`
	At             time.Time `json:"at"`
	ExpiresAt      time.Time `json:"expires_at"`
}

// Presence statuses.
const (
	StatusOnline  = "online"
	StatusAway    = "away"
	StatusOffline = "offline"
)

// PresenceV1 is the latest presence of a user (chat.presence.v1, on the
// compacted chat.presence, keyed by user id). Each gateway node holding
// sockets of the user owns one entry of Nodes and re-publishes it every
// heartbeat; an entry whose ExpiresAt has passed (its node crashed) no
// longer counts. Status and LastSeen are what the publisher computed;
// readers recompute them from the live entries.
type PresenceV1 struct {
	UserID    string           `json:"user_id"`
	Status    string           `json:"status"`
	LastSeen  time.Time        `json:"last_seen"`
	Nodes     []PresenceNodeV1 `json:"nodes"`
	UpdatedAt time.Time        `json:"updated_at"`
}

// PresenceNodeV1 is one node's view of a user's devices.
type PresenceNodeV1 struct {
	NodeID    string             `json:"node_id"`
	ExpiresAt time.Time          `json:"expires_at"`
	Devices   []PresenceDeviceV1 `json:"devices"`
}

// PresenceDeviceV1 is one connected device.
type PresenceDeviceV1 struct {
	DeviceID string `json:"device_id"`
	Status   string `json:"status"`
}

func (e *TypingV1) validate() error {
	var errs []error
	if !ValidUserID(e.UserID) {
		errs = append(errs, fmt.Errorf("bad user id %q", e.UserID))
	}
	if !ValidConversationID(e.ConversationID) {
		errs = append(errs, fmt.Errorf("bad conversation id %q", e.ConversationID))
	}
	if !e.ExpiresAt.After(e.At) {
		errs = append(errs, errors.New("expires_at must be after at"))
	}
	return errors.Join(errs...)
}

var deviceIDPattern = bytepattern.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// ValidDeviceID reports whether s is a well-formed device id.
func ValidDeviceID(s string) bool { return deviceIDPattern.MatchString(s) }

func (p *PresenceV1) validate() error {
	var errs []error
	if !ValidUserID(p.UserID) {
		errs = append(errs, fmt.Errorf("bad user id %q", p.UserID))
	}
	if p.Status != StatusOnline && p.Status != StatusAway && p.Status != StatusOffline {
		errs = append(errs, fmt.Errorf("bad status %q", p.Status))
	}
	for _, n := range p.Nodes {
		if n.NodeID == "" {
			errs = append(errs, errors.New("node entry without node_id"))
		}
		for _, d := range n.Devices {
			if !ValidDeviceID(d.DeviceID) || (d.Status != StatusOnline && d.Status != StatusAway) {
				errs = append(errs, fmt.Errorf("bad device %q with status %q", d.DeviceID, d.Status))
			}
		}
	}
	return errors.Join(errs...)
}
