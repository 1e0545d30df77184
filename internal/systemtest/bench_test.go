package systemtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/internal/app"
)

// BenchmarkSendToDeliver_500PerSecond measures send→deliver latency
// between two sockets of one direct conversation at a steady 500
// messages/s on the embedded default, the figure BENCHMARKS.md records.
// The scenario runs once per call for PARLEY_BENCH_SECONDS (default 10);
// run it with -benchtime=1x.
func BenchmarkSendToDeliver_500PerSecond(b *testing.B) {
	seconds := 10
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_SECONDS")); err == nil && v > 0 {
		seconds = v
	}
	// One user sends 500 a second, five times the per-user command limit
	// (README, Limits), which is not what this measures.
	sys := startSystem(b, b.TempDir(), func(c *app.Config) { c.UserCommandRate = 0 })
	defer stopSystem(b, sys)
	addr := sys.HTTPAddr()
	aliceTok, bobTok := token(b, "alice", time.Hour), token(b, "bob", time.Hour)
	conv := api{b, addr, aliceTok}.createDirect("bob")

	ctx := context.Background()
	dialB := func(tok string) *websocket.Conn {
		c, _, err := websocket.Dial(ctx, "ws://"+addr+"/v1/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
		if err != nil {
			b.Fatal(err)
		}
		c.SetReadLimit(1 << 20)
		return c
	}
	alice, bob := dialB(aliceTok), dialB(bobTok)
	defer alice.CloseNow()
	defer bob.CloseNow()
	go func() { // alice's acks and echoes are read and dropped
		for {
			if _, _, err := alice.Read(ctx); err != nil {
				return
			}
		}
	}()

	const rate = 500
	total := rate * seconds
	latencies := make([]time.Duration, 0, total)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(latencies) < total {
			_, data, err := bob.Read(ctx)
			if err != nil {
				return
			}
			now := time.Now()
			var f struct {
				Type string
				Data struct{ Body string }
			}
			if json.Unmarshal(data, &f) != nil || f.Type != "event" {
				continue
			}
			sent, err := strconv.ParseInt(f.Data.Body, 10, 64)
			if err != nil {
				continue
			}
			latencies = append(latencies, now.Sub(time.Unix(0, sent)))
		}
	}()

	b.ResetTimer()
	tick := time.NewTicker(time.Second / rate)
	for i := range total {
		<-tick.C
		frame := fmt.Sprintf(`{"type":"send","id":"%d","conversation_id":%q,"command_id":"b%d","body":"%d"}`, i, conv, i, time.Now().UnixNano())
		if err := alice.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			b.Fatal(err)
		}
	}
	tick.Stop()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		b.Fatalf("only %d of %d messages delivered", len(latencies), total)
	}
	b.StopTimer()
	slices.Sort(latencies)
	q := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(latencies[len(latencies)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(len(latencies)), "messages")
}
