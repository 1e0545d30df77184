package systemtest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
	"github.com/parley-chat/parley/internal/freeport"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/history/scyllastore/cqlfake"
)

// BenchmarkRouting compares broadcast and targeted routing with 1, 2 and
// 4 gateway nodes, each a real `parley gateway` process, over one
// embedded broker and one ScyllaDB stand-in; the decider, the history
// projection and (targeted) the router run in the benchmark's process,
// with the load generator. Users are spread over the nodes, each direct
// conversation's two members on one node or on two; every user sends in
// turn at a fixed total rate. It reports per gateway node the records its
// delivery projection read from Kafka, its CPU, its deliveries, and the
// send→deliver latency at the clients. BENCHMARKS.md has the figures;
// internal/loadgen/SCENARIOS.md the command.
//
// It runs once whatever b.N is (use -benchtime=1x). Sizes:
// PARLEY_BENCH_USERS (default 200), PARLEY_BENCH_RATE (messages/s,
// default 400), PARLEY_BENCH_SECONDS (default 15).
func BenchmarkRouting(b *testing.B) {
	users := envInt(b, "PARLEY_BENCH_USERS", 200)
	rate := envInt(b, "PARLEY_BENCH_RATE", 400)
	seconds := envInt(b, "PARLEY_BENCH_SECONDS", 15)
	bin := buildBench(b)
	modes := []string{app.RoutingBroadcast, app.RoutingTargeted}
	if m := os.Getenv("PARLEY_BENCH_MODE"); m != "" {
		modes = []string{m}
	}
	counts := []int{1, 2, 4}
	if n := os.Getenv("PARLEY_BENCH_NODES"); n != "" {
		counts = []int{envInt(b, "PARLEY_BENCH_NODES", 1)}
	}
	for _, mode := range modes {
		for _, nodes := range counts {
			b.Run(fmt.Sprintf("mode=%s/nodes=%d", mode, nodes), func(b *testing.B) {
				r := runRouting(b, bin, mode, nodes, users, rate, time.Duration(seconds)*time.Second)
				b.ReportMetric(r.avg(func(n nodeResult) float64 { return n.recordsRead }), "records-read/node")
				b.ReportMetric(r.avg(func(n nodeResult) float64 { return n.cpu.Seconds() * 1000 }), "cpu-ms/node")
				b.ReportMetric(r.cpuPerDelivery(), "cpu-µs/delivery")
				b.ReportMetric(r.p(50), "p50-ms")
				b.ReportMetric(r.p(99), "p99-ms")
				b.ReportMetric(0, "ns/op")
				b.Log(r)
			})
		}
	}
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func buildBench(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "parley")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building parley: %v\n%s", err, out)
	}
	return bin
}

type nodeResult struct {
	name        string
	recordsRead float64
	deliveries  float64
	cpu         time.Duration
}

type routingResult struct {
	mode  string
	nodes []nodeResult
	// router is what the router read and wrote (targeted), by series.
	router    map[string]float64
	sent      int
	delivered int
	expected  int
	latencies []time.Duration
}

func (r routingResult) avg(f func(nodeResult) float64) float64 {
	var sum float64
	for _, n := range r.nodes {
		sum += f(n)
	}
	return sum / float64(len(r.nodes))
}

// cpuPerDelivery is the gateways' CPU per event frame they wrote, in µs.
func (r routingResult) cpuPerDelivery() float64 {
	var cpu, d float64
	for _, n := range r.nodes {
		cpu += n.cpu.Seconds()
		d += n.deliveries
	}
	if d == 0 {
		return 0
	}
	return cpu / d * 1e6
}

func (r routingResult) p(q int) float64 {
	if len(r.latencies) == 0 {
		return 0
	}
	s := slices.Clone(r.latencies)
	slices.Sort(s)
	return float64(s[min(len(s)-1, len(s)*q/100)]) / float64(time.Millisecond)
}

func (r routingResult) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s, %d nodes: sent %d, delivered %d of %d, send→deliver p50 %.1f ms p99 %.1f ms, gateway CPU %.1f µs/delivery\n",
		r.mode, len(r.nodes), r.sent, r.delivered, r.expected, r.p(50), r.p(99), r.cpuPerDelivery())
	for _, n := range r.nodes {
		fmt.Fprintf(&sb, "  %s: records read %.0f, deliveries %.0f, CPU %.2f s\n", n.name, n.recordsRead, n.deliveries, n.cpu.Seconds())
	}
	if len(r.router) > 0 {
		fmt.Fprintf(&sb, "  router: read %.0f records, wrote %.0f delivery copies, %.0f changes, %.0f resyncs\n",
			r.router["read"], r.router["delivery"], r.router["changes"], r.router["resync"])
	}
	return sb.String()
}

// benchNode is a gateway process.
type benchNode struct {
	name string
	addr string
	cmd  *exec.Cmd
}

func runRouting(b *testing.B, bin, mode string, nodes, users, rate int, dur time.Duration) routingResult {
	b.Helper()
	const secret = "routing-bench-secret-0123456789abcdef"
	k := kafkatest.Start(b)
	fake := cqlfake.Start(b)
	common := []string{"-kafka-brokers", strings.Join(k.Brokers(), ","), "-topic-prefix", k.Names.Prefix, "-scylla-hosts", fake.Addr(), "-scylla-keyspace", "bench",
		"-jwt-secret", secret, "-partitions", "12", "-log-level", "error", "-routing", mode, "-s3-listen", "off"}

	// The decider, the history projection and the router, here.
	cfg, err := app.Load("core", append([]string{"-node-id", "core", "-data-dir", b.TempDir(), "-http-addr", "127.0.0.1:0"}, common...),
		func(string) string { return "" }, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	core, err := app.Start(ctx, cfg, app.Roles{Decider: true, History: true, Router: true}, cfg.Logger(io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = core.Stop(sctx)
	}()

	gws := make([]*benchNode, nodes)
	for i := range gws {
		n := &benchNode{name: fmt.Sprintf("gw%d", i+1), addr: freeport.Addr(b)}
		n.cmd = exec.Command(bin, append([]string{"gateway", "-node-id", n.name, "-data-dir", b.TempDir(), "-http-addr", n.addr}, common...)...)
		n.cmd.Stdout, n.cmd.Stderr = io.Discard, io.Discard
		if err := n.cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = n.cmd.Process.Signal(os.Interrupt); _ = n.cmd.Wait() }()
		gws[i] = n
	}
	for _, n := range gws {
		waitReady(b, n.addr)
	}

	auth, err := gateway.NewAuthenticator(gateway.AuthConfig{Secret: []byte(secret)})
	if err != nil {
		b.Fatal(err)
	}
	// Pair k is users 2k and 2k+1: on one node for even k, on two
	// neighbouring nodes for odd k; pairs go round the nodes.
	nodeOf := func(u int) int {
		k := u / 2
		if k%2 == 1 && u%2 == 1 {
			return (k/2 + 1) % nodes
		}
		return (k / 2) % nodes
	}
	l := &benchLoad{sent: map[string]time.Time{}}
	socks := make([]*benchSocket, users)
	var wg sync.WaitGroup
	for u := range users {
		wg.Go(func() {
			tok, err := auth.Issue(fmt.Sprintf("u%d", u), time.Hour, time.Now())
			if err != nil {
				b.Error(err)
				return
			}
			s, err := l.dial(gws[nodeOf(u)].addr, tok)
			if err != nil {
				b.Error(err)
				return
			}
			socks[u] = s
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	defer func() {
		for _, s := range socks {
			_ = s.c.CloseNow()
		}
	}()
	convs := make([]string, users/2)
	for k := range convs {
		a := api{b, gws[nodeOf(2*k)].addr, mustToken(b, auth, fmt.Sprintf("u%d", 2*k))}
		convs[k] = a.createDirect(fmt.Sprintf("u%d", 2*k+1))
	}
	// Every socket has its conversation's creation: routed, registered.
	waitUntil(b, "every creation delivered", func() bool { return l.delivered.Load() >= int64(users) })

	before := snapshot(b, gws)
	routerBefore := routerCounts(b, core.HTTPAddr())
	l.reset()
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	total := int(dur / interval)
	for i := range total {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		u := (i*2 + (i/len(convs))%2) % users // pairs in turn, members alternating
		k := u / 2
		id := fmt.Sprintf("b%d", i)
		l.markSent(id)
		if err := socks[u].send(map[string]any{"type": "send", "id": id, "conversation_id": convs[k], "command_id": id, "body": "benchmark message"}); err != nil {
			b.Fatal(err)
		}
	}
	expected := int64(total) * 2 // both members' sockets, the sender's included
	// Short of expected, the result reports what was delivered.
	within(30*time.Second, func() bool { return l.delivered.Load() >= expected })
	// The nodes count a delivery once its frame is written: wait until
	// their counters have every frame the sockets received.
	var after []nodeResult
	within(30*time.Second, func() bool {
		after = snapshot(b, gws)
		var d float64
		for i := range gws {
			d += after[i].deliveries - before[i].deliveries
		}
		return d >= float64(l.delivered.Load())
	})
	r := routingResult{mode: mode, sent: total, delivered: int(l.delivered.Load()), expected: int(expected), latencies: l.latencies(), router: map[string]float64{}}
	for k, v := range routerCounts(b, core.HTTPAddr()) {
		r.router[k] = v - routerBefore[k]
	}
	for i, n := range gws {
		r.nodes = append(r.nodes, nodeResult{
			name:        n.name,
			recordsRead: after[i].recordsRead - before[i].recordsRead,
			deliveries:  after[i].deliveries - before[i].deliveries,
			cpu:         after[i].cpu - before[i].cpu,
		})
	}
	return r
}

func mustToken(b *testing.B, auth *gateway.Authenticator, user string) string {
	tok, err := auth.Issue(user, time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

func waitReady(b *testing.B, addr string) {
	b.Helper()
	waitUntil(b, addr+" ready", func() bool {
		status, _, err := getPublic(b, addr, "/readyz")
		return err == nil && status == http.StatusOK
	})
}

func waitUntil(b *testing.B, what string, cond func() bool) {
	b.Helper()
	if !within(60*time.Second, cond) {
		b.Fatalf("timed out waiting for %s", what)
	}
}

// snapshot reads each node's counters from /metrics: records its delivery
// projection read (all topics), event frames written, process CPU.
func snapshot(b *testing.B, gws []*benchNode) []nodeResult {
	b.Helper()
	out := make([]nodeResult, len(gws))
	for i, n := range gws {
		_, raw, err := getPublic(b, n.addr, "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			name, value, ok := strings.Cut(line, " ")
			if !ok || strings.HasPrefix(line, "#") {
				continue
			}
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				continue
			}
			switch {
			case strings.HasPrefix(name, "parley_delivery_records_read_total"):
				out[i].recordsRead += v
			case name == "parley_deliveries_total":
				out[i].deliveries = v
			case name == "process_cpu_seconds_total":
				out[i].cpu = time.Duration(v * float64(time.Second))
			}
		}
	}
	return out
}

// routerCounts reads the router's counters from addr's /metrics: records
// read (all topics) and written by kind.
func routerCounts(b *testing.B, addr string) map[string]float64 {
	b.Helper()
	_, raw, err := getPublic(b, addr, "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		v, err := strconv.ParseFloat(value, 64)
		if !ok || err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(name, "parley_router_records_read_total"):
			out["read"] += v
		case strings.HasPrefix(name, "parley_router_records_written_total{kind="):
			out[strings.Trim(strings.TrimPrefix(name, "parley_router_records_written_total{kind="), `"}`)] = v
		}
	}
	return out
}

// benchLoad is the clients' side: when each command was sent, and the
// send→deliver latency of every event frame of a benchmark message.
type benchLoad struct {
	mu        sync.Mutex
	sent      map[string]time.Time
	lat       []time.Duration
	delivered atomic.Int64
}

func (l *benchLoad) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lat = nil
	l.delivered.Store(0)
}

func (l *benchLoad) markSent(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent[id] = time.Now()
}

func (l *benchLoad) latencies() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lat)
}

type benchSocket struct {
	c  *websocket.Conn
	mu sync.Mutex
}

func (l *benchLoad) dial(addr, tok string) (*benchSocket, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/v1/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	go func() {
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				return
			}
			var f struct {
				Type string `json:"type"`
				Data struct {
					CommandID string `json:"command_id"`
				} `json:"data"`
			}
			if json.Unmarshal(data, &f) != nil || f.Type != "event" {
				continue
			}
			now := time.Now()
			l.mu.Lock()
			if at, ok := l.sent[f.Data.CommandID]; ok {
				l.lat = append(l.lat, now.Sub(at))
			}
			l.mu.Unlock()
			l.delivered.Add(1)
		}
	}()
	return &benchSocket{c: c}, nil
}

func (s *benchSocket) send(frame any) error {
	b, err := json.Marshal(frame)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c.Write(ctx, websocket.MessageText, b)
}
