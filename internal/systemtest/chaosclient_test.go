package systemtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// chaosClient is one device of a user under chaos: it keeps a socket to
// one of the gateways, sends messages at a steady rate with command ids,
// and behaves as a client that must lose nothing: when its socket drops
// or stops answering pings it reconnects (to the next gateway in turn),
// resumes every conversation from the last seq it saw, and sends again,
// with the same command id, every message not yet acknowledged.
//
// Its methods are safe for concurrent use.
type chaosClient struct {
	name  string
	token string
	// gateways are the addresses it connects to in turn, starting at
	// index next.
	gateways []string
	convs    []string // the conversations it is a member of
	targets  []string // the conversations it sends to

	mu       sync.Mutex
	conn     *websocket.Conn
	addr     string // the gateway conn is to
	next     int
	sent     int               // command ids issued
	pending  map[string]string // command id → conversation, unacknowledged
	bodies   map[string]string // command id → body
	frameCmd map[string]string // frame id → command id
	acked    map[string]chaosAck
	received map[string][]uint64 // conversation → event seqs, in arrival order
	last     map[string]uint64   // conversation → highest seq seen
	gaps     []chaosGap
	problems []string // what a correct server never does
	dupAcks  int      // acks that said duplicate: a retry the server deduplicated
	resumes  int      // connections after the first, each resuming
	drops    []string // why each connection ended, for a failure's message
	// slowCloses counts closes as a slow consumer (4000).
	slowCloses int
	frameIDs   atomic.Int64
}

type chaosAck struct {
	conv string
	seq  uint64
}

type chaosGap struct {
	conv     string
	from, to uint64
	reason   string
}

func newChaosClient(name, token string, gateways, convs, targets []string, first int) *chaosClient {
	c := &chaosClient{
		name: name, token: token, gateways: gateways, convs: convs, targets: targets, next: first,
		pending: map[string]string{}, bodies: map[string]string{}, frameCmd: map[string]string{},
		acked: map[string]chaosAck{}, received: map[string][]uint64{}, last: map[string]uint64{},
	}
	return c
}

// run keeps the client connected until ctx is done, sending one message
// every interval while sending is open.
func (c *chaosClient) run(ctx context.Context, sending <-chan struct{}, interval time.Duration) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { c.sendLoop(ctx, sending, interval) })
	first := true
	for ctx.Err() == nil {
		c.mu.Lock()
		addr := c.gateways[c.next%len(c.gateways)]
		c.next++
		c.mu.Unlock()
		conn, err := c.connect(ctx, addr, !first)
		if err != nil {
			c.mu.Lock()
			c.drops = append(c.drops, fmt.Sprintf("%s %s: connecting: %v", time.Now().Format("15:04:05.000"), addr, err))
			c.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		first = false
		c.serve(ctx, conn)
	}
}

// connect dials addr, resumes every conversation and sends again every
// unacknowledged message.
func (c *chaosClient) connect(ctx context.Context, addr string, resume bool) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, "ws://"+addr+"/v1/ws", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + c.token}},
	})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	c.mu.Lock()
	from := make(map[string]uint64, len(c.convs))
	for _, conv := range c.convs {
		from[conv] = c.last[conv]
	}
	if resume {
		c.resumes++
	}
	c.conn, c.addr = conn, addr
	var retry []string
	for cmd := range c.pending {
		retry = append(retry, cmd)
	}
	slices.Sort(retry) // a sender's order, as far as ids tell it
	c.mu.Unlock()
	if err := c.write(ctx, conn, map[string]any{"type": "resume", "id": c.frameID("r"), "conversations": from}); err != nil {
		_ = conn.CloseNow()
		return nil, err
	}
	for _, cmd := range retry {
		c.sendCommand(ctx, conn, cmd)
	}
	return conn, nil
}

// serve reads conn until it fails or stops answering pings.
func (c *chaosClient) serve(ctx context.Context, conn *websocket.Conn) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		// A cut network drops no connection: only an unanswered ping
		// tells a client that its socket is dead.
		for {
			select {
			case <-sctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			pctx, pcancel := context.WithTimeout(sctx, 2*time.Second)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil {
				_ = conn.CloseNow()
				return
			}
		}
	})
	defer func() {
		c.mu.Lock()
		if c.conn == conn {
			c.conn = nil
		}
		c.mu.Unlock()
		_ = conn.CloseNow()
	}()
	for {
		_, data, err := conn.Read(sctx)
		if err != nil {
			c.mu.Lock()
			c.drops = append(c.drops, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), c.addr, err))
			if websocket.CloseStatus(err) == 4000 {
				c.slowCloses++
			}
			c.mu.Unlock()
			return
		}
		var f struct {
			Type           string `json:"type"`
			ID             string `json:"id"`
			ConversationID string `json:"conversation_id"`
			Seq            uint64 `json:"seq"`
			Duplicate      bool   `json:"duplicate"`
			Code           string `json:"code"`
			Message        string `json:"message"`
			Retryable      bool   `json:"retryable"`
			FromSeq        uint64 `json:"from_seq"`
			ToSeq          uint64 `json:"to_seq"`
			Reason         string `json:"reason"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			c.problem("non-JSON frame %q", data)
			continue
		}
		c.mu.Lock()
		switch f.Type {
		case "event":
			c.received[f.ConversationID] = append(c.received[f.ConversationID], f.Seq)
			c.last[f.ConversationID] = max(c.last[f.ConversationID], f.Seq)
		case "gap":
			c.gaps = append(c.gaps, chaosGap{f.ConversationID, f.FromSeq, f.ToSeq, f.Reason})
			c.last[f.ConversationID] = max(c.last[f.ConversationID], f.ToSeq)
		case "ack":
			cmd, ok := c.frameCmd[f.ID]
			if !ok {
				break
			}
			if f.Duplicate {
				c.dupAcks++
			}
			if prev, ok := c.acked[cmd]; ok && prev != (chaosAck{f.ConversationID, f.Seq}) {
				c.problems = append(c.problems, fmt.Sprintf("command %s acknowledged as %v, then as %s/%d", cmd, prev, f.ConversationID, f.Seq))
			}
			c.acked[cmd] = chaosAck{f.ConversationID, f.Seq}
			delete(c.pending, cmd)
		case "error":
			cmd, ok := c.frameCmd[f.ID]
			if ok && !f.Retryable {
				c.problems = append(c.problems, fmt.Sprintf("command %s refused for good: %s %s", cmd, f.Code, f.Message))
				delete(c.pending, cmd)
			} else if !ok && f.Code != "rate_limited" {
				c.problems = append(c.problems, fmt.Sprintf("error frame %s: %s %s", f.ID, f.Code, f.Message))
			}
			// A retryable refusal (timeout, unavailable) stays pending:
			// the next connection, or the resend below, retries it.
			if ok && f.Retryable {
				wg.Go(func() {
					select {
					case <-sctx.Done():
					case <-time.After(200 * time.Millisecond):
						c.mu.Lock()
						_, still := c.pending[cmd]
						c.mu.Unlock()
						if still {
							c.sendCommand(sctx, conn, cmd)
						}
					}
				})
			}
		}
		c.mu.Unlock()
	}
}

// sendLoop issues a new message every interval while sending is open.
func (c *chaosClient) sendLoop(ctx context.Context, sending <-chan struct{}, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sending:
			return
		case <-tick.C:
		}
		c.mu.Lock()
		cmd := fmt.Sprintf("%s-%05d", c.name, c.sent)
		conv := c.targets[c.sent%len(c.targets)]
		c.sent++
		c.pending[cmd] = conv
		c.bodies[cmd] = "chaos " + cmd
		conn := c.conn
		c.mu.Unlock()
		if conn != nil {
			c.sendCommand(ctx, conn, cmd)
		} // else the next connection sends it
	}
}

func (c *chaosClient) sendCommand(ctx context.Context, conn *websocket.Conn, cmd string) {
	id := c.frameID("s")
	c.mu.Lock()
	conv, body := c.pending[cmd], c.bodies[cmd]
	c.frameCmd[id] = cmd
	c.mu.Unlock()
	if conv == "" {
		return // acknowledged meanwhile
	}
	// A failed write drops the connection; the next one sends it again.
	_ = c.write(ctx, conn, map[string]any{"type": "send", "id": id, "conversation_id": conv, "command_id": cmd, "body": body})
}

func (c *chaosClient) write(ctx context.Context, conn *websocket.Conn, frame any) error {
	b, err := json.Marshal(frame)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := conn.Write(wctx, websocket.MessageText, b); err != nil {
		_ = conn.CloseNow()
		return err
	}
	return nil
}

func (c *chaosClient) frameID(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, c.frameIDs.Add(1))
}

func (c *chaosClient) problem(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// chaosCounts is what one client saw, for the report.
type chaosCounts struct {
	sent, pending, acked, dupAcks, resumes, gaps, slowCloses int
	delivered                                                int
}

func (c *chaosClient) counts() chaosCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := chaosCounts{sent: c.sent, pending: len(c.pending), acked: len(c.acked), dupAcks: c.dupAcks, resumes: c.resumes, gaps: len(c.gaps), slowCloses: c.slowCloses}
	for _, r := range c.received {
		n.delivered += len(r)
	}
	return n
}
