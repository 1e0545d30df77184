package loadgen

import (
	"context"
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/schemas"
)

func TestResolveTarget(t *testing.T) {
	t.Parallel()
	lo2 := netip.MustParseAddr("127.0.0.2")
	for _, tc := range []struct {
		name, raw, allow string
		sources          []netip.Addr
		wantAddr, wantWS string
		wantErr          string
	}{
		{name: "IPv4 loopback", raw: "http://127.0.0.1:18090", wantAddr: "127.0.0.1:18090", wantWS: "ws://127.0.0.1:18090/v1/ws"},
		{name: "IPv6 loopback over TLS, default port", raw: "https://[::1]/", wantAddr: "[::1]:443", wantWS: "wss://[::1]/v1/ws"},
		{name: "anywhere in 127/8, with loopback sources", raw: "http://127.9.9.9:80", sources: []netip.Addr{lo2}, wantAddr: "127.9.9.9:80", wantWS: "ws://127.9.9.9:80/v1/ws"},
		{name: "a remote host named by -allow-remote", raw: "http://192.0.2.10:8080", allow: "192.0.2.10", wantAddr: "192.0.2.10:8080", wantWS: "ws://192.0.2.10:8080/v1/ws"},
		{name: "a remote host not named", raw: "http://192.0.2.10:8080", wantErr: "not a loopback"},
		{name: "an unknown scheme", raw: "ftp://127.0.0.1", wantErr: "scheme"},
		{name: "no host", raw: "http://:8080", wantErr: "no host"},
		{name: "a non-loopback source for a loopback target", raw: "http://127.0.0.1:8080", sources: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, wantErr: "source address"},
		{name: "IPv4 sources for an IPv6 target", raw: "http://[::1]:8080", sources: []netip.Addr{lo2}, wantErr: "family"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := resolveTarget(ctx, tc.raw, tc.allow, "/v1/ws", tc.sources)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.addr.String() != tc.wantAddr || got.wsURL != tc.wantWS {
				t.Errorf("dials %s at %s, want %s at %s", got.wsURL, got.addr, tc.wantWS, tc.wantAddr)
			}
		})
	}
}

func TestSourceAddrRange(t *testing.T) {
	t.Parallel()
	got, err := SourceAddrRange(300)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 300 || got[0].String() != "127.0.0.2" || got[253].String() != "127.0.0.255" || got[254].String() != "127.0.1.0" {
		t.Errorf("range: %d addresses, %v … %v %v", len(got), got[0], got[253], got[254])
	}
	if _, err := SourceAddrRange(-1); err == nil {
		t.Error("a negative count was accepted")
	}
}

func TestParseMetrics(t *testing.T) {
	t.Parallel()
	s, err := parseMetrics(strings.NewReader(`# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.34
process_resident_memory_bytes 5.24288e+07
parley_connections{node="a"} 3
parley_consumer_records_total{group="parley-projection-history"} 7102
`))
	if err != nil {
		t.Fatal(err)
	}
	if s.CPUSeconds != 12.34 || s.RSSBytes != 52428800 || s.ConsumerRecords["parley-projection-history"] != 7102 {
		t.Errorf("parsed %+v", s)
	}
	if _, err := parseMetrics(strings.NewReader("go_goroutines 5\n")); err == nil {
		t.Error("metrics without the process collector were accepted")
	}
}

func TestParseProc(t *testing.T) {
	t.Parallel()
	status := []byte("Name:\tparley\nVmPeak:\t  200 kB\nVmRSS:\t  1024 kB\n")
	// A command name with spaces and a parenthesis must not shift the
	// fields: utime 250 and stime 50 ticks are fields 14 and 15.
	stat := []byte("4242 (par ley) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1000 0 0")
	s, err := parseProc(status, stat)
	if err != nil {
		t.Fatal(err)
	}
	if s.RSSBytes != 1024*1024 || s.CPUSeconds != 3 {
		t.Errorf("parsed %+v, want 1 MiB and 3 s", s)
	}
	if _, err := parseProc([]byte("Name:\tx\n"), stat); err == nil {
		t.Error("a status without VmRSS was accepted")
	}
	ioStats := []byte("rchar: 6976\nwchar: 12\nsyscr: 10\nsyscw: 3\nread_bytes: 0\n")
	if r, w := parseProcIO(ioStats); r != 10 || w != 3 {
		t.Errorf("parsed %d reads, %d writes from /proc/PID/io, want 10 and 3", r, w)
	}
	if r, w := parseProcIO([]byte("syscr: x\n")); r != 0 || w != 0 {
		t.Errorf("parsed %d reads, %d writes from a malformed /proc/PID/io, want none", r, w)
	}
}

func TestConfigValidate_ReportsEveryProblem(t *testing.T) {
	t.Parallel()
	cfg := Config{Shape: ShapeDirect, Users: 3, Rate: -1, BodyBytes: 10, JWTSecret: "short", UserPrefix: "bad prefix"}.withDefaults()
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"jwt secret", "even number of users", "rate", "body bytes", "user prefix"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	cfg = Config{Shape: ShapeGroup, GroupSize: MaxGroupSize + 1}.withDefaults()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "group size") {
		t.Errorf("group size above the limit: %v", err)
	}
}

func TestSendFrameRoundTrip(t *testing.T) {
	t.Parallel()
	r := &runner{cfg: Config{BodyBytes: 100}, runID: "abcd1234"}
	s := &sock{idx: 17, convID: "d_xyz"}
	frame := string(r.appendSendFrame(nil, s, 2, 5, 123456789))
	want := `{"type":"send","id":"2.123456789","conversation_id":"d_xyz","command_id":"abcd1234.17.5","body":"abcd1234.2.17.123456789 `
	if !strings.HasPrefix(frame, want) {
		t.Fatalf("frame %s", frame)
	}
	body := frame[strings.Index(frame, `"body":"`)+8 : len(frame)-2]
	if len(body) != 100 {
		t.Errorf("body is %d bytes, want 100", len(body))
	}
	ph, sender, sched, ok := r.parseBody(body)
	if !ok || ph != 2 || sender != 17 || sched != 123456789 {
		t.Errorf("parseBody = %d %d %d %v", ph, sender, sched, ok)
	}
	if _, _, _, ok := r.parseBody("other.2.17.1"); ok {
		t.Error("another run's body was taken for this run's")
	}
	if ph, sched, ok := parseRequestID("2.123456789"); !ok || ph != 2 || sched != 123456789 {
		t.Errorf("parseRequestID = %d %d %v", ph, sched, ok)
	}
}

func TestLagSince(t *testing.T) {
	t.Parallel()
	r := &runner{}
	// The receipts group applies coalesced markers, not one record per
	// message: however few it applied, it is not behind.
	before := Sample{ConsumerRecords: map[string]int64{"history": 100, "search": 40, "staging." + schemas.GroupReceipts: 7}}
	metrics := source{name: "metrics", read: func(context.Context) (Sample, error) {
		return Sample{ConsumerRecords: map[string]int64{"history": 150, "search": 100, "staging." + schemas.GroupReceipts: 9}}, nil
	}}
	lag := r.lagSince(metrics, before, true)
	if got := lag(context.Background(), 60); len(got) != 1 || got["history"] != 10 {
		t.Errorf("60 acked, history applied 50: lag %v, want history=10", got)
	}
	if got := lag(context.Background(), 50); got != nil {
		t.Errorf("50 acked, all applied: lag %v, want none", got)
	}
	if got := r.lagSince(metrics, Sample{}, true)(context.Background(), 60); got != nil {
		t.Errorf("no consumer figures before: lag %v, want none (unknown)", got)
	}
}

// A publication round trip in Centrifugo's protocol: the publish command
// the generator writes, then the reply and pushes Centrifugo sends back
// batched one per line in a single WebSocket message, as it does.
func TestCentrifugoFrames(t *testing.T) {
	t.Parallel()
	r := &runner{cfg: Config{BodyBytes: 64, Protocol: ProtocolCentrifugo}, runID: "abcd1234", t0: time.Now()}
	r.phases = []*phaseStats{newPhaseStats(1)}
	r.live = make([]atomic.Int64, 1)
	r.live[0].Store(3) // the sender and two others
	r.readCtx = t.Context()
	r.setupErrors = map[string]int64{}
	s := &sock{r: r, idx: 4, convID: r.centrifugoChannel(0), ready: make(chan struct{}), authOK: make(chan struct{})}
	other := &sock{r: r, idx: 5, convID: s.convID}

	frame := string(r.appendPublishFrame(nil, s, 0, 1, 1000))
	want := `{"id":4,"publish":{"channel":"lg-abcd1234-0","data":{"body":"abcd1234.0.4.1000 `
	if !strings.HasPrefix(frame, want) || !strings.HasSuffix(frame, `"}}}`) {
		t.Fatalf("publish frame %s", frame)
	}
	var cmd struct {
		Publish struct {
			Data struct{ Body string }
		}
	}
	if err := json.Unmarshal([]byte(frame), &cmd); err != nil {
		t.Fatalf("publish frame is not JSON: %v", err)
	}

	r.cur.Store(0)
	s.handleCentrifugo([]byte(`{"id":1,"connect":{"client":"c1","version":"5.4.9"}}` + "\n" + `{"id":2,"subscribe":{}}`))
	for name, ch := range map[string]chan struct{}{"connect": s.authOK, "subscribe": s.ready} {
		select {
		case <-ch:
		default:
			t.Errorf("the %s reply did not mark the socket", name)
		}
	}
	push := `{"push":{"channel":"lg-abcd1234-0","pub":{"data":{"body":` + strconv.Quote(cmd.Publish.Data.Body) + `}}}}`
	s.handleCentrifugo([]byte(`{"id":4,"publish":{}}` + "\n" + push))
	other.handleCentrifugo([]byte(push + "\n" + `{"push":{"channel":"another","pub":{"data":{"body":"x"}}}}`))
	p := r.phases[0]
	if got := p.acked.Load(); got != 1 {
		t.Errorf("acked %d, want 1", got)
	}
	if got := p.expected.Load(); got != 2 {
		t.Errorf("expected deliveries %d, want 2", got)
	}
	if e, d := p.echoes.Load(), p.deliveries.Load(); e != 1 || d != 1 {
		t.Errorf("echoes %d, deliveries %d; want 1 and 1", e, d)
	}
	// A refused publication is a failure with Centrifugo's code, and its
	// id is not taken twice.
	r.appendPublishFrame(nil, s, 0, 2, 2000)
	s.handleCentrifugo([]byte(`{"id":5,"error":{"code":103,"message":"permission denied"}}`))
	s.handleCentrifugo([]byte(`{"id":5,"publish":{}}`))
	if f := p.failed.Load(); f != 1 || p.errors["centrifugo_103"] != 1 || p.acked.Load() != 1 {
		t.Errorf("failed %d, errors %v, acked %d", f, p.errors, p.acked.Load())
	}
}
