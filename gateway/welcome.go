// Welcome routing: an MLS Welcome, carried by the chat.mls.committed.v1
// event of the commit that adds devices, reaches only the devices it
// welcomes. Every member's socket gets the commit; the others get it
// without the welcome.

package gateway

import (
	"bytes"
	"encoding/json"
	"slices"
	"time"

	"github.com/parley-chat/parley/projections/delivery"
	"github.com/parley-chat/parley/schemas"
)

// committedFrameMark is how an "event" frame of a commit starts to
// differ from others: delivery.EncodeEvent writes event_type after the
// conversation id and seq, so frames without it are passed on unparsed.
var committedFrameMark = []byte(`"event_type":"` + schemas.TypeMLSCommitted + `"`)

// withoutForeignWelcome returns frame for the device of user: as it is,
// unless it is the "event" frame of a commit whose welcome is for other
// devices, which it returns without the welcome.
func withoutForeignWelcome(frame []byte, user, device string) []byte {
	if !bytes.Contains(frame, committedFrameMark) || !bytes.HasPrefix(frame, []byte(`{"type":"event"`)) {
		return frame
	}
	var f struct {
		ConversationID string          `json:"conversation_id"`
		Seq            uint64          `json:"seq"`
		EventType      string          `json:"event_type"`
		EventID        string          `json:"event_id"`
		Time           time.Time       `json:"time"`
		Data           json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(frame, &f); err != nil || f.EventType != schemas.TypeMLSCommitted {
		return frame
	}
	data, changed := stripWelcome(f.Data, user, device)
	if !changed {
		return frame
	}
	return delivery.EncodeEvent(f.ConversationID, f.Seq, f.EventType, f.EventID, f.Time, data)
}

// stripWelcome returns the chat.mls.committed.v1 value data without its
// welcome unless the welcome is for user's device, and whether it
// changed it.
func stripWelcome(data []byte, user, device string) ([]byte, bool) {
	var e schemas.MLSCommittedV1
	if err := json.Unmarshal(data, &e); err != nil || e.Welcome == nil {
		return data, false
	}
	if device != "" && slices.Contains(e.AddedDevices, schemas.DeviceRef{UserID: user, DeviceID: device}) {
		return data, false
	}
	e.Welcome = nil
	out, err := json.Marshal(&e)
	if err != nil {
		return data, false
	}
	return out, true
}
