// Setting a run up: creating the conversations and connecting the
// sockets.

package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// createConversations creates every conversation over HTTP, with bounded
// concurrency and up to three attempts each. Any failure fails the run:
// a load against half the conversations measures nothing useful.
func (r *runner) createConversations(ctx context.Context) error {
	if r.cfg.Protocol == ProtocolCentrifugo {
		// Channels exist while someone is subscribed: nothing to create.
		for c := range r.convUsers {
			r.convIDs[c] = r.centrifugoChannel(c)
		}
		return nil
	}
	work := make(chan int)
	var firstErr error
	var errOnce sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var done atomic.Int64
	for range min(r.cfg.SetupConcurrency, len(r.convUsers)) {
		wg.Go(func() {
			for c := range work {
				id, err := r.createConversation(ctx, c)
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					continue
				}
				r.convIDs[c] = id
				if n := done.Add(1); n%1000 == 0 {
					r.log.Info("conversations created", "n", n)
				}
			}
		})
	}
feed:
	for c := range r.convUsers {
		select {
		case work <- c:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("creating conversations: %w", firstErr)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("creating conversations: %w", err)
	}
	return nil
}

// createConversation creates conversation c and returns its id.
func (r *runner) createConversation(ctx context.Context, c int) (string, error) {
	us := r.convUsers[c]
	creator := us[0]
	members := make([]string, 0, len(us)-1)
	for _, u := range us[1:] {
		members = append(members, r.users[u])
	}
	body := map[string]any{"kind": "direct", "members": members}
	if r.cfg.Shape == ShapeGroup {
		body = map[string]any{
			"kind": "group", "members": members,
			"title":      fmt.Sprintf("loadgen %s group %d", r.runID, c),
			"command_id": fmt.Sprintf("%s.g%d", r.runID, c),
		}
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	backoff := 200 * time.Millisecond
	var lastErr error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(backoff):
			}
			backoff *= 2
		}
		id, retry, err := r.postConversation(ctx, r.tokens[creator], payload)
		if err == nil {
			return id, nil
		}
		lastErr = err
		if !retry {
			break
		}
	}
	return "", fmt.Errorf("conversation %d of %s: %w", c, r.users[creator], lastErr)
}

// postConversation makes one creation request; retry says whether
// another attempt may help.
func (r *runner) postConversation(ctx context.Context, token string, payload []byte) (id string, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.tgt.url("/v1/conversations"), bytes.NewReader(payload))
	if err != nil {
		return "", false, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.api.Do(req)
	if err != nil {
		return "", ctx.Err() == nil, fmt.Errorf("POST /v1/conversations: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", true, fmt.Errorf("reading the response: %w", err)
	}
	var out struct {
		ConversationID string `json:"conversation_id"`
		Code           string `json:"code"`
		Detail         string `json:"detail"`
		Retryable      bool   `json:"retryable"`
	}
	_ = json.Unmarshal(raw, &out)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", out.Retryable || resp.StatusCode >= 500,
			fmt.Errorf("POST /v1/conversations: status %d %s: %s", resp.StatusCode, out.Code, out.Detail)
	}
	if out.ConversationID == "" {
		return "", false, errors.New("POST /v1/conversations: no conversation_id in the response")
	}
	return out.ConversationID, false, nil
}

// readyID is the id of the ping that proves a socket is registered for
// delivery: the gateway answers pings only once the socket's session
// exists, so events after the pong reach it.
const readyID = "loadgen-ready"

// connect opens every socket with bounded concurrency. Failures are
// counted by kind, not fatal.
func (r *runner) connect(ctx context.Context) {
	r.socks = make([]*sock, r.cfg.Sockets)
	work := make(chan int)
	var wg sync.WaitGroup
	var n atomic.Int64
	for range min(r.cfg.DialConcurrency, r.cfg.Sockets) {
		wg.Go(func() {
			for i := range work {
				s, kind := r.open(ctx, i)
				if s == nil {
					r.setupError(kind)
					continue
				}
				r.socks[i] = s
				if c := n.Add(1); c%5000 == 0 {
					r.log.Info("sockets connected", "n", c)
				}
			}
		})
	}
feed:
	for i := range r.cfg.Sockets {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
}

// open dials socket i, authenticates it and waits until it is
// registered; it returns the socket, or nil and the kind of failure.
func (r *runner) open(ctx context.Context, i int) (*sock, string) {
	if ctx.Err() != nil {
		return nil, "setup_timeout"
	}
	u := i % r.cfg.Users
	s := &sock{
		r: r, idx: i, conv: r.convOf(u),
		ready: make(chan struct{}), authOK: make(chan struct{}), done: make(chan struct{}),
	}
	s.convID = r.convIDs[s.conv]
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var token string
	if r.cfg.Auth == AuthHeader && r.cfg.Protocol == ProtocolParley {
		token = r.tokens[u]
	}
	c, err := dial(dctx, r.tgt.wsURL, r.ws[i%len(r.ws)], token)
	if err != nil {
		return nil, dialErrorKind(err)
	}
	s.c = c
	r.readers.Go(s.read)
	fail := func(kind string) (*sock, string) {
		_ = c.CloseNow()
		return nil, kind
	}
	if r.cfg.Protocol == ProtocolCentrifugo {
		if kind := s.centrifugoHandshake(dctx, r.tokens[u]); kind != "" {
			return fail(kind)
		}
	} else if r.cfg.Auth == AuthFrame {
		if err := s.writeControl(dctx, `{"type":"auth","id":"loadgen-auth","token":`+strconv.Quote(r.tokens[u])+`}`); err != nil {
			return fail("auth_write")
		}
		select {
		case <-s.authOK:
		case <-s.done:
			return fail("auth_refused")
		case <-dctx.Done():
			return fail("auth_timeout")
		}
	}
	if r.cfg.Protocol == ProtocolParley {
		if err := s.writeControl(dctx, `{"type":"ping","id":"`+readyID+`"}`); err != nil {
			return fail("ping_write")
		}
	}
	select {
	case <-s.ready:
	case <-s.done:
		return fail("closed_before_ready")
	case <-dctx.Done():
		return fail("ready_timeout")
	}
	r.live[s.conv].Add(1)
	s.open.Store(true)
	select {
	case <-s.done:
		// Ended between the pong and now: whoever swaps open uncounts.
		if s.open.Swap(false) {
			r.live[s.conv].Add(-1)
		}
		return fail("closed_before_ready")
	default:
	}
	return s, ""
}
