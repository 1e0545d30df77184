package systemtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/app"
)

// TestSlowConsumerIsClosedAndResumes fills a slow reader's socket until
// its send queue overflows: the server closes it with 4000 (reconnect and
// resume) without slowing the sender, and the client, resuming from the
// last seq it read, gets every message exactly once.
func TestSlowConsumerIsClosedAndResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (floods a socket until its queue overflows, then resumes it, about 3 s); make test runs it")
	}
	sys := startSystem(t, t.TempDir(), func(c *app.Config) {
		c.SendQueue = 4
		c.BackfillLimit = 100000
	})
	defer stopSystem(t, sys)
	addr := sys.HTTPAddr()
	alice := api{t, addr, token(t, "alice", time.Hour)}
	bobTok := token(t, "bob", time.Hour)
	conv := alice.createDirect("bob")

	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/v1/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + bobTok}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)

	// Bob stops reading. Alice sends until the server has given up on
	// him: the kernel's socket buffers fill, his send queue overflows.
	body := strings.Repeat("x", 15000)
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				status, out := alice.do("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"command_id": fmt.Sprintf("g%d-%d", g, i), "body": body})
				if status != http.StatusCreated {
					t.Errorf("send: %d %v", status, out)
					return
				}
				sent.Add(1)
			}
		})
	}
	within(120*time.Second, func() bool { return slowConsumers(t, addr) > 0 || t.Failed() })
	close(stop)
	wg.Wait()
	if slowConsumers(t, addr) == 0 {
		t.Fatalf("a reader that stopped reading was not given up on after %d messages", sent.Load())
	}
	total := int(sent.Load())

	// Bob reads again: what was buffered, then the close frame.
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var seen []int
	var code websocket.StatusCode
	for {
		_, data, err := c.Read(rctx)
		if err != nil {
			code = websocket.CloseStatus(err)
			if rctx.Err() != nil {
				t.Fatalf("the server neither closed nor fed the socket within 60s (%d events read)", len(seen))
			}
			break
		}
		if err := contract(t).ServerFrame(data); err != nil {
			t.Errorf("received %v\n%.2000s", err, data)
		}
		var f struct {
			Type string
			Seq  int
		}
		if json.Unmarshal(data, &f) == nil && f.Type == "event" {
			seen = append(seen, f.Seq)
		}
	}
	if code != gateway.CloseSlowConsumer {
		t.Fatalf("slow reader closed with %d, want %d", code, gateway.CloseSlowConsumer)
	}
	if len(seen) == 0 || !slices.Equal(seen, seqRange(seen[0], seen[len(seen)-1])) {
		t.Fatalf("before the close the reader got a broken sequence (%d events)", len(seen))
	}
	last := seen[len(seen)-1]
	if last >= total {
		t.Fatalf("the reader got everything (%d of %d) before it was closed: not a slow consumer", last, total)
	}

	b := dial(t, addr, bobTok, false)
	b.send(map[string]any{"type": "resume", "id": "r", "conversations": map[string]int{conv: last}})
	b.await(func(f map[string]any) bool { return f["type"] == "resumed" })
	if got, want := b.events(conv), seqRange(last+1, total); !slices.Equal(got, want) {
		t.Fatalf("resume after the slow-consumer close delivered %d events (%v…), want %d..%d", len(got), got[:min(5, len(got))], last+1, total)
	}
}

// slowConsumers reads parley_ws_slow_consumers_total from /metrics.
func slowConsumers(t *testing.T, addr string) int {
	t.Helper()
	_, raw, err := getPublic(t, addr, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "parley_ws_slow_consumers_total "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	t.Fatal("no parley_ws_slow_consumers_total in /metrics")
	return 0
}
