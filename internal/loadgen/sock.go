// One generator socket: dialing, sending, and reading the server's frames
// to time acks and deliveries.

package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/schemas"
)

// writeTimeout bounds every socket write.
const writeTimeout = 5 * time.Second

// sock is one client connection. Its reader goroutine owns lastSeq.
type sock struct {
	r      *runner
	idx    int
	conv   int
	convID string
	c      *websocket.Conn

	ready, authOK       chan struct{}
	readyOnce, authOnce sync.Once
	done                chan struct{}    // closed when the reader ends
	open                atomic.Bool      // counted in runner.live
	msgs                atomic.Int64     // messages sent, for command ids
	pending             pendingPublishes // Centrifugo publications in flight
	lastSeq             uint64
}

// dial opens a WebSocket through client, with token in the
// Authorization header when it is set.
func dial(ctx context.Context, url string, client *http.Client, token string) (*websocket.Conn, error) {
	opts := &websocket.DialOptions{HTTPClient: client, CompressionMode: websocket.CompressionDisabled}
	if token != "" {
		opts.HTTPHeader = http.Header{"Authorization": {"Bearer " + token}}
	}
	c, resp, err := websocket.Dial(ctx, url, opts)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	return c, nil
}

// dialErrorKind classifies a failed dial for the report.
func dialErrorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "dial_no_ports" // ephemeral ports of a source address used up
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "dial_too_many_files"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "dial_refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "dial_reset"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "dial_timeout"
	case strings.Contains(err.Error(), "status code"):
		return "dial_http_status"
	}
	return "dial_other"
}

func (s *sock) writeControl(ctx context.Context, frame string) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return s.c.Write(ctx, websocket.MessageText, []byte(frame))
}

// serverFrame holds the fields of any server frame that the generator
// reads.
type serverFrame struct {
	Type           string `json:"type"`
	ID             string `json:"id"`
	ConversationID string `json:"conversation_id"`
	Seq            uint64 `json:"seq"`
	EventType      string `json:"event_type"`
	Duplicate      bool   `json:"duplicate"`
	Code           string `json:"code"`
	Data           struct {
		Body string `json:"body"`
	} `json:"data"`
}

// read reads frames until the connection ends, then records how it
// ended.
func (s *sock) read() {
	defer func() {
		close(s.done)
		if s.open.Swap(false) {
			s.r.live[s.conv].Add(-1)
		}
	}()
	for {
		_, data, err := s.c.Read(s.r.readCtx)
		if err != nil {
			s.recordEnd(err)
			return
		}
		if s.r.cfg.Protocol == ProtocolCentrifugo {
			s.handleCentrifugo(data)
			continue
		}
		s.handle(data)
	}
}

// recordEnd records a connection the server (or the network) ended.
func (s *sock) recordEnd(err error) {
	if s.r.closing.Load() {
		return
	}
	code := "abnormal"
	if st := websocket.CloseStatus(err); st != -1 {
		code = strconv.Itoa(int(st))
	}
	if p := s.r.phase(-1); p != nil {
		p.addClose(code)
		return
	}
	s.r.setupError("close_" + code)
}

// phase returns phase i, or the current one for -1; nil before the
// first.
func (r *runner) phase(i int) *phaseStats {
	if i < 0 {
		i = int(r.cur.Load())
	}
	if i < 0 || i >= len(r.phases) {
		return nil
	}
	return r.phases[i]
}

func (s *sock) handle(data []byte) {
	r := s.r
	now := r.now()
	var f serverFrame
	if err := json.Unmarshal(data, &f); err != nil {
		if p := r.phase(-1); p != nil {
			p.addError("loadgen_bad_frame")
		}
		return
	}
	switch f.Type {
	case "event":
		if !schemas.IsMessage(f.EventType) || f.ConversationID != s.convID {
			return
		}
		ph, sender, sent, ok := r.parseBody(f.Data.Body)
		if !ok {
			return // not this run's message
		}
		p := r.phase(ph)
		if p == nil {
			return
		}
		if f.Seq <= s.lastSeq {
			p.duplicateDeliveries.Add(1)
			return
		}
		s.lastSeq = f.Seq
		s.delivered(p, sender, now, sent)
	case "ack":
		ph, sent, ok := parseRequestID(f.ID)
		p := r.phase(ph)
		if !ok || p == nil {
			return
		}
		s.acked(p, now, sent, f.Duplicate)
	case "error":
		ph, _, ok := parseRequestID(f.ID)
		if !ok {
			ph = -1
		}
		p := r.phase(ph)
		if p == nil {
			r.setupError("error_" + f.Code)
			return
		}
		p.addError(f.Code)
		if ok {
			p.failed.Add(1)
		}
	case "gap":
		if p := r.phase(-1); p != nil {
			p.gaps.Add(1)
		}
	case "pong":
		if f.ID == readyID {
			s.readyOnce.Do(func() { close(s.ready) })
		}
	case "auth_ok":
		s.authOnce.Do(func() { close(s.authOK) })
	}
}

// Messages carry what the receiver needs to measure them:
//
//	request id  <phase>.<scheduled ns since the run's start>
//	command id  <run id>.<socket>.<n>
//	body        <run id>.<phase>.<socket>.<scheduled ns> xxxx…
//
// so neither side keeps a map of messages in flight.

// appendSendFrame appends the send frame of message n of socket s,
// scheduled at sched.
func (r *runner) appendSendFrame(b []byte, s *sock, phase int, n, sched int64) []byte {
	b = append(b, `{"type":"send","id":"`...)
	b = strconv.AppendInt(b, int64(phase), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, sched, 10)
	b = append(b, `","conversation_id":"`...)
	b = append(b, s.convID...) // [A-Za-z0-9_-]: nothing to escape
	b = append(b, `","command_id":"`...)
	b = append(b, r.runID...)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(s.idx), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `","body":"`...)
	b = r.appendBody(b, s, phase, sched)
	return append(b, `"}`...)
}

// appendBody appends the body of a message of socket s, scheduled at
// sched: what its receivers need to time it, padded to BodyBytes.
func (r *runner) appendBody(b []byte, s *sock, phase int, sched int64) []byte {
	start := len(b)
	b = append(b, r.runID...)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(phase), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(s.idx), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, sched, 10)
	if pad := r.cfg.BodyBytes - (len(b) - start); pad > 1 {
		b = append(b, ' ')
		for range pad - 1 {
			b = append(b, 'x')
		}
	}
	return b
}

// delivered counts a message of this run delivered to s, sent by socket
// sender at sent (ns since the run's start) and received at now.
func (s *sock) delivered(p *phaseStats, sender int, now, sent int64) {
	if sender == s.idx {
		p.echoes.Add(1)
		return
	}
	p.deliveries.Add(1)
	p.deliver.record(s.idx, time.Duration(now-sent))
	storeMax(&p.lastDeliveryNanos, now)
}

// acked counts the server's acceptance of a message s sent at sent.
func (s *sock) acked(p *phaseStats, now, sent int64, duplicate bool) {
	// expected before acked: once acked reaches sent, every expected
	// delivery is counted (see phaseStats.settled).
	p.expected.Add(s.r.live[s.conv].Load() - 1)
	p.ack.record(s.idx, time.Duration(now-sent))
	if duplicate {
		p.duplicateAcks.Add(1)
	}
	p.acked.Add(1)
}

func parseRequestID(id string) (phase int, sched int64, ok bool) {
	a, b, found := strings.Cut(id, ".")
	if !found {
		return 0, 0, false
	}
	ph, err1 := strconv.Atoi(a)
	ns, err2 := strconv.ParseInt(b, 10, 64)
	return ph, ns, err1 == nil && err2 == nil
}

func (r *runner) parseBody(body string) (phase, sender int, sched int64, ok bool) {
	rest, found := strings.CutPrefix(body, r.runID+".")
	if !found {
		return 0, 0, 0, false
	}
	if i := strings.IndexByte(rest, ' '); i >= 0 {
		rest = rest[:i]
	}
	f := strings.SplitN(rest, ".", 3)
	if len(f) != 3 {
		return 0, 0, 0, false
	}
	ph, err1 := strconv.Atoi(f[0])
	snd, err2 := strconv.Atoi(f[1])
	ns, err3 := strconv.ParseInt(f[2], 10, 64)
	return ph, snd, ns, err1 == nil && err2 == nil && err3 == nil
}
