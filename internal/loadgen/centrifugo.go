// The Centrifugo client protocol, so that one generator can load Parley
// and Centrifugo with the same sockets, shapes, rates and clocks
// (BENCHMARKS.md, "Side by side with Centrifugo").

package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"sync"
)

// Protocols the generator speaks.
const (
	// ProtocolParley is Parley's WebSocket protocol (schemas/asyncapi.yaml).
	ProtocolParley = "parley"
	// ProtocolCentrifugo is Centrifugo v5's JSON client protocol over
	// /connection/websocket: connect with the user's HS256 token,
	// subscribe to the conversation's channel, publish into it. The
	// server must allow subscribers to publish (allow_subscribe_for_client
	// and allow_publish_for_subscriber) and verify tokens with the same
	// secret (token_hmac_secret_key).
	ProtocolCentrifugo = "centrifugo"
)

// centrifugoPath is Centrifugo's bidirectional WebSocket endpoint.
const centrifugoPath = "/connection/websocket"

// Command ids of a Centrifugo socket: 1 connects, 2 subscribes, and
// publications count up from firstPublishID.
const (
	centrifugoConnectID   = 1
	centrifugoSubscribeID = 2
	firstPublishID        = 3
)

// centrifugoChannel names conversation c's channel.
func (r *runner) centrifugoChannel(c int) string {
	return "lg-" + r.runID + "-" + strconv.Itoa(c)
}

// pendingPublishes maps a Centrifugo command id to the phase and
// scheduled time of the publication it carried: Centrifugo's ids are
// integers, so they cannot carry both as Parley's request ids do.
type pendingPublishes struct {
	mu sync.Mutex
	m  map[uint32]sent
}

type sent struct {
	phase int
	sched int64
}

func (p *pendingPublishes) put(id uint32, s sent) {
	p.mu.Lock()
	if p.m == nil {
		p.m = make(map[uint32]sent)
	}
	p.m[id] = s
	p.mu.Unlock()
}

func (p *pendingPublishes) take(id uint32) (sent, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.m[id]
	delete(p.m, id)
	return s, ok
}

// appendPublishFrame appends the publish command of message n of socket
// s, scheduled at sched; its body has the same layout as a Parley send's.
func (r *runner) appendPublishFrame(b []byte, s *sock, phase int, n, sched int64) []byte {
	id := uint32(firstPublishID + n)
	s.pending.put(id, sent{phase: phase, sched: sched})
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, uint64(id), 10)
	b = append(b, `,"publish":{"channel":"`...)
	b = append(b, s.convID...)
	b = append(b, `","data":{"body":"`...)
	b = r.appendBody(b, s, phase, sched)
	return append(b, `"}}}`...)
}

// centrifugoHandshake connects with the user's token and subscribes to
// the conversation's channel; the subscribe reply is the socket's
// readiness (publications after it reach the socket). It returns the
// kind of failure, or "".
func (s *sock) centrifugoHandshake(ctx context.Context, token string) string {
	connect := `{"id":` + strconv.Itoa(centrifugoConnectID) + `,"connect":{"token":` + strconv.Quote(token) + `}}`
	if err := s.writeControl(ctx, connect); err != nil {
		return "auth_write"
	}
	select {
	case <-s.authOK:
	case <-s.done:
		return "auth_refused"
	case <-ctx.Done():
		return "auth_timeout"
	}
	subscribe := `{"id":` + strconv.Itoa(centrifugoSubscribeID) + `,"subscribe":{"channel":"` + s.convID + `"}}`
	if err := s.writeControl(ctx, subscribe); err != nil {
		return "ping_write"
	}
	return ""
}

// centrifugoFrame holds the fields of a Centrifugo reply or push that the
// generator reads.
type centrifugoFrame struct {
	ID    uint32 `json:"id"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Connect   json.RawMessage `json:"connect"`
	Subscribe json.RawMessage `json:"subscribe"`
	Publish   json.RawMessage `json:"publish"`
	Push      *struct {
		Channel string `json:"channel"`
		Pub     *struct {
			Data struct {
				Body string `json:"body"`
			} `json:"data"`
		} `json:"pub"`
	} `json:"push"`
}

// handleCentrifugo handles one WebSocket message from Centrifugo: one or
// more replies and pushes, one JSON object per line.
func (s *sock) handleCentrifugo(data []byte) {
	r := s.r
	now := r.now()
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if bytes.Equal(bytes.TrimSpace(line), []byte("{}")) {
			// The server's ping: answer with a pong.
			go func() {
				ctx, cancel := context.WithTimeout(r.readCtx, writeTimeout)
				defer cancel()
				_ = s.writeControl(ctx, "{}")
			}()
			continue
		}
		var f centrifugoFrame
		if err := json.Unmarshal(line, &f); err != nil {
			if p := r.phase(-1); p != nil {
				p.addError("loadgen_bad_frame")
			}
			continue
		}
		switch {
		case f.Push != nil:
			if f.Push.Pub == nil || f.Push.Channel != s.convID {
				continue
			}
			ph, sender, sentAt, ok := r.parseBody(f.Push.Pub.Data.Body)
			if !ok {
				continue
			}
			if p := r.phase(ph); p != nil {
				s.delivered(p, sender, now, sentAt)
			}
		case f.ID == centrifugoConnectID:
			if f.Error == nil {
				s.authOnce.Do(func() { close(s.authOK) })
			} else {
				r.setupError("error_connect_" + strconv.Itoa(f.Error.Code))
			}
		case f.ID == centrifugoSubscribeID:
			if f.Error == nil {
				s.readyOnce.Do(func() { close(s.ready) })
			} else {
				r.setupError("error_subscribe_" + strconv.Itoa(f.Error.Code))
			}
		case f.ID >= firstPublishID:
			pub, ok := s.pending.take(f.ID)
			p := r.phase(pub.phase)
			if !ok || p == nil {
				continue
			}
			if f.Error != nil {
				p.addError("centrifugo_" + strconv.Itoa(f.Error.Code))
				p.failed.Add(1)
				continue
			}
			s.acked(p, now, pub.sched, false)
		}
	}
}
