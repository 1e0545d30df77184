// The push frames of the WebSocket protocol, encoded once per event.

package delivery

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/parley-chat/parley/schemas"
)

// The push frames of the WebSocket protocol (schemas/asyncapi.yaml):
// "event", "gap", "resumed", "user_typing" and "receipt". They are built here, once per event and
// not once per socket, so fan-out copies no bytes.

// EncodeEvent returns the "event" frame of an event whose JSON value is
// data.
func EncodeEvent(conversation string, seq uint64, typ, id string, at time.Time, data []byte) []byte {
	b := make([]byte, 0, 128+len(conversation)+len(typ)+len(id)+len(data))
	b = append(b, `{"type":"event","conversation_id":`...)
	b = appendString(b, conversation)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"event_type":`...)
	b = appendString(b, typ)
	b = append(b, `,"event_id":`...)
	b = appendString(b, id)
	b = append(b, `,"time":"`...)
	b = at.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","data":`...)
	b = append(b, data...)
	return append(b, '}')
}

// Gap reasons.
const (
	// GapBackfillLimit: more events were missing than a socket backfills.
	GapBackfillLimit = "backfill_limit"
	// GapHistoryUnavailable: the history store did not have the events in
	// time.
	GapHistoryUnavailable = "history_unavailable"
)

func encodeGap(conversation string, from, to uint64, reason string) []byte {
	b, _ := json.Marshal(struct {
		Type           string `json:"type"`
		ConversationID string `json:"conversation_id"`
		FromSeq        uint64 `json:"from_seq"`
		ToSeq          uint64 `json:"to_seq"`
		Reason         string `json:"reason"`
	}{"gap", conversation, from, to, reason})
	return b
}

func encodeResumed(id string, caughtUp map[string]uint64) []byte {
	b, _ := json.Marshal(struct {
		Type          string            `json:"type"`
		ID            string            `json:"id"`
		Conversations map[string]uint64 `json:"conversations"`
	}{"resumed", id, caughtUp})
	return b
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func encodeUserTyping(t *schemas.TypingV1) []byte {
	b, _ := json.Marshal(struct {
		Type           string    `json:"type"`
		ConversationID string    `json:"conversation_id"`
		UserID         string    `json:"user_id"`
		ExpiresAt      time.Time `json:"expires_at"`
	}{"user_typing", t.ConversationID, t.UserID, t.ExpiresAt.UTC()})
	return b
}

func encodeReceipt(r *schemas.ReceiptV1) []byte {
	b, _ := json.Marshal(struct {
		Type           string `json:"type"`
		ConversationID string `json:"conversation_id"`
		UserID         string `json:"user_id"`
		Kind           string `json:"kind"`
		Seq            uint64 `json:"seq"`
	}{"receipt", r.ConversationID, r.UserID, r.Kind, r.Seq})
	return b
}
