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
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/history/scyllastore/cqlfake"
	"github.com/parley-chat/parley/schemas/contractcheck"
)

// haproxyConfigTarget is where the haproxy image reads its config.
const haproxyConfigTarget = "/usr/local/etc/haproxy/haproxy.cfg"

// composeHAProxyConfig returns the path of the HAProxy config that the
// compose stack's lb service mounts: the test runs that file, so the two
// cannot drift apart.
func composeHAProxyConfig(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image   string   `yaml:"image"`
			Volumes []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	lb, ok := compose.Services["lb"]
	if !ok || !strings.HasPrefix(lb.Image, "haproxy:") {
		t.Fatalf("docker-compose.yml: no lb service running the haproxy image (%q)", lb.Image)
	}
	for _, v := range lb.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == haproxyConfigTarget {
			return filepath.Join("../..", parts[0])
		}
	}
	t.Fatalf("docker-compose.yml: lb mounts nothing at %s (volumes %q)", haproxyConfigTarget, lb.Volumes)
	return ""
}

// haproxyBinary returns the path of haproxy, failing the test when it is
// not installed: CI installs it, so a missing one is a broken set-up, not
// a reason to skip.
func haproxyBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatalf("haproxy is not installed (%v): install Debian's haproxy package (apt-get install haproxy); .ci/run does", err)
	}
	return bin
}

// startHAProxy runs haproxy in the foreground (-db) with the config at cfg
// and env added to its environment, stops it by its pid at the end of the
// test, and waits until it answers on addr.
func startHAProxy(t *testing.T, cfg, addr string, env ...string) {
	t.Helper()
	bin := haproxyBinary(t)
	check := exec.Command(bin, "-c", "-q", "-f", cfg)
	check.Env = append(os.Environ(), env...)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c -f %s: %v\n%s", cfg, err, out)
	}
	cmd := exec.Command(bin, "-db", "-f", cfg)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if testing.Verbose() {
		cmd.Stderr = os.Stderr // warnings and alerts; the access log (stdout) stays quiet
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		// SIGTERM: HAProxy's hard stop, by the pid we started.
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("haproxy (pid %d) did not stop on SIGTERM; killing it", cmd.Process.Pid)
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	ok := within(30*time.Second, func() bool {
		select {
		case err := <-exited:
			t.Fatalf("haproxy exited: %v (run with -v for its output)", err)
		default:
		}
		resp, err := httpClient.Get("http://" + addr + "/lb-healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if !ok {
		t.Fatalf("haproxy did not answer /lb-healthz on %s within 30 s", addr)
	}
}

// wsConnections returns the parley_ws_connections gauge of the node at
// addr.
func wsConnections(t *testing.T, addr string) int {
	t.Helper()
	status, raw, err := getPublic(t, addr, "/metrics")
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d %v", addr, status, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "parley_ws_connections "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("parley_ws_connections %q: %v", v, err)
			}
			return int(n)
		}
	}
	t.Fatalf("%s/metrics has no parley_ws_connections", addr)
	return 0
}

// sendThrough sends a message over HTTP through the load balancer and
// returns its seq. A request the balancer could not complete (the
// gateway it went to died: a dropped connection, 502, 503) is sent again
// with the same command id, as a client would: the decider appends it
// once either way.
func sendThrough(ctx context.Context, check *contractcheck.Checker, lb, tok, conv, commandID string) (int, error) {
	body, err := json.Marshal(map[string]any{"command_id": commandID, "body": "message " + commandID})
	if err != nil {
		return 0, err
	}
	var last error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			// Back off a little between retries; not a synchronisation.
			select {
			case <-ctx.Done():
				return 0, fmt.Errorf("%s: giving up after %d attempts: %w", commandID, attempt, last)
			case <-time.After(50 * time.Millisecond):
			}
		}
		path := "/v1/conversations/" + conv + "/messages"
		req, err := http.NewRequestWithContext(ctx, "POST", "http://"+lb+path, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpClient.Do(req)
		if err != nil {
			last = err
			continue
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			last = err
			continue
		}
		switch resp.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			last = fmt.Errorf("%s", resp.Status)
			continue
		}
		if err := check.Response("POST", path, resp.StatusCode, resp.Header.Get("Content-Type"), raw); err != nil {
			return 0, fmt.Errorf("%s: %w\n%.2000s", commandID, err, raw)
		}
		var out struct {
			Seq int `json:"seq"`
		}
		if (resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK) || json.Unmarshal(raw, &out) != nil {
			return 0, fmt.Errorf("%s: %s %s", commandID, resp.Status, raw)
		}
		return out.Seq, nil
	}
}

// lbDevice is one user's WebSocket client behind the load balancer: the
// socket it opened first and, if that one's gateway was killed, the one
// it resumed on.
type lbDevice struct {
	user  string
	tok   string
	convs []string
	home  int // index of the gateway the first socket landed on
	first *wsClient
	again *wsClient
}

// TestLoadBalancerFailover runs two `parley gateway` processes behind a
// real HAProxy, started with deploy/haproxy.cfg (the file the compose
// stack's lb mounts). WebSocket clients in three group conversations
// connect through it and land on both gateways; senders post through it
// too. One gateway is killed with SIGKILL mid-stream: its clients
// reconnect through HAProxy, which takes them to the survivor, and resume
// from their last seq; senders whose request died with it retry with the
// same command id. Every client ends with every event of its
// conversations exactly once, in seq order, with no gap.
func TestLoadBalancerFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (builds the binary, runs HAProxy and two gateway processes and kills one, about 15 s); make test runs it")
	}
	cfg := composeHAProxyConfig(t)
	haproxyBinary(t) // before the slow part
	bin := buildParley(t)
	k := kafkatest.Start(t, kafkatest.Prefixed())
	fake := cqlfake.Start(t)
	// Every role but the gateway, as the compose stack's decider, router
	// and projections; the gateways are processes of their own.
	core := startNode(t, k, fake.Addr(), "core", app.Roles{Decider: true, History: true, Search: true, Router: true})
	defer stopSystem(t, core)

	var gateways [2]string
	var procs [2]*exec.Cmd
	for i := range gateways {
		gateways[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		procs[i] = startParley(t, bin, gateways[i], "gateway", "-node-id", fmt.Sprint("gateway", i+1), "-data-dir", t.TempDir(), "-http-addr", gateways[i],
			"-kafka-brokers", strings.Join(k.Brokers(), ","), "-topic-prefix", k.Names.Prefix, "-scylla-hosts", fake.Addr(), "-scylla-keyspace", "multinode",
			"-jwt-secret", testSecret, "-partitions", "4", "-log-level", "warn")
	}
	lb := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startHAProxy(t, cfg, lb, "PARLEY_LB_BIND="+lb, "PARLEY_GATEWAY_1="+gateways[0], "PARLEY_GATEWAY_2="+gateways[1])

	auth, err := gateway.NewAuthenticator(gateway.AuthConfig{Secret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	tok := func(user string) string {
		s, err := auth.Issue(user, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// Six users, each with one socket opened through HAProxy. Which
	// gateway took each one is read off the gateways' own metrics.
	devices := make([]*lbDevice, 6)
	for i := range devices {
		d := &lbDevice{user: fmt.Sprint("u", i)}
		d.tok = tok(d.user)
		before := [2]int{wsConnections(t, gateways[0]), wsConnections(t, gateways[1])}
		d.first = dial(t, lb, d.tok, i%2 == 1)
		d.home = -1
		eventuallyT(t, "the new socket to show on a gateway's metrics", func() bool {
			for g := range gateways {
				if wsConnections(t, gateways[g]) == before[g]+1 {
					d.home = g
					return true
				}
			}
			return false
		}, func() string { return fmt.Sprintf("gateway sockets were %v", before) })
		devices[i] = d
	}
	var onGateway [2][]string
	for _, d := range devices {
		onGateway[d.home] = append(onGateway[d.home], d.user)
	}
	if len(onGateway[0]) == 0 || len(onGateway[1]) == 0 {
		t.Fatalf("HAProxy put the sockets on one gateway only: gateway1 %v, gateway2 %v; leastconn should spread them", onGateway[0], onGateway[1])
	}
	t.Logf("sockets: gateway1 %v, gateway2 %v", onGateway[0], onGateway[1])

	// Three group conversations of three members, overlapping, so most
	// have members on both gateways; created through HAProxy.
	groups := [][3]int{{0, 1, 2}, {2, 3, 4}, {4, 5, 0}}
	convs := make([]string, len(groups))
	creators := make([]*lbDevice, len(groups))
	for i, g := range groups {
		creator := devices[g[0]]
		status, out := api{t, lb, creator.tok}.do("POST", "/v1/conversations", map[string]any{
			"kind": "group", "title": fmt.Sprint("lb ", i), "members": []string{devices[g[1]].user, devices[g[2]].user},
		})
		if status != http.StatusCreated {
			t.Fatalf("creating group %d: %d %v", i, status, out)
		}
		convs[i], creators[i] = out["conversation_id"].(string), creator
		for _, m := range g {
			devices[m].convs = append(devices[m].convs, convs[i])
		}
	}
	for _, d := range devices {
		for _, c := range d.convs {
			d.first.waitFor(func([]map[string]any) bool { return len(d.first.events(c)) >= 1 })
		}
	}

	// One sender per conversation posts through HAProxy while the test
	// kills a gateway.
	const perConv = 80
	check := contract(t)
	var senders sync.WaitGroup
	defer senders.Wait() // after cancel, if the test ends early
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	acked := make([][]int, len(convs))
	var progress [3]atomic.Int64
	errs := make(chan error, len(convs))
	for i, conv := range convs {
		senders.Go(func() {
			for n := range perConv {
				seq, err := sendThrough(ctx, check, lb, creators[i].tok, conv, fmt.Sprintf("lb-%d-%d", i, n))
				if err != nil {
					errs <- err
					return
				}
				acked[i] = append(acked[i], seq)
				progress[i].Add(1)
			}
		})
	}

	// kill -9 the second gateway once every conversation is a quarter
	// through: no close frames, no goodbye to HAProxy.
	const victim = 1
	eventuallyT(t, "every sender to be a quarter through", func() bool {
		for i := range progress {
			if progress[i].Load() < perConv/4 {
				return false
			}
		}
		return true
	}, func() string {
		return fmt.Sprintf("acked %d, %d, %d", progress[0].Load(), progress[1].Load(), progress[2].Load())
	})
	// Reaped before anyone reconnects: until the process is gone its
	// listener still accepts, and a connection HAProxy made in that
	// window would be reset after the request went out (a 502, which
	// HAProxy does not retry), not refused (which it redispatches).
	kill9(t, procs[victim])
	atKill := [3]int64{progress[0].Load(), progress[1].Load(), progress[2].Load()}
	if atKill[0] == perConv && atKill[1] == perConv && atKill[2] == perConv {
		t.Errorf("every sender had finished when the gateway was killed (%v): the kill was not mid-stream", atKill)
	}
	t.Logf("killed gateway%d with %v of %d messages acked per conversation", victim+1, atKill, perConv)

	// Its clients see their socket drop, reconnect through the same
	// address and resume from the last seq they saw of each conversation.
	for _, d := range devices {
		if d.home != victim {
			continue
		}
		if code := d.first.closeStatus(); code != -1 {
			t.Errorf("%s: the killed gateway's socket ended with close code %d, want none (a dropped connection)", d.user, code)
		}
		cursors := map[string]int{}
		for _, c := range d.convs {
			seen := d.first.events(c)
			cursors[c] = seen[len(seen)-1]
		}
		d.again = dial(t, lb, d.tok, false)
		d.again.send(map[string]any{"type": "resume", "id": "r", "conversations": cursors})
		d.again.await(func(f map[string]any) bool { return f["type"] == "resumed" && f["id"] == "r" })
	}
	// HAProxy took them all to the survivor.
	survivor := 1 - victim
	eventuallyT(t, "every socket to be on the surviving gateway", func() bool {
		return wsConnections(t, gateways[survivor]) == len(devices)
	}, func() string {
		return fmt.Sprintf("gateway%d has %d sockets", survivor+1, wsConnections(t, gateways[survivor]))
	})

	senders.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	for i := range convs {
		if !slices.Equal(acked[i], seqRange(1, perConv)) {
			t.Errorf("conversation %d: acks with seqs %v, want 1..%d: each message once, retried or not", i, acked[i], perConv)
		}
	}

	// Every client has every event of its conversations once, in seq
	// order, with no gap, across its sockets.
	for _, d := range devices {
		last := d.first
		if d.again != nil {
			last = d.again
		} else {
			select {
			case <-d.first.closed:
				t.Errorf("%s, on the surviving gateway, lost its socket", d.user)
			default:
			}
		}
		for _, c := range d.convs {
			last.waitFor(func([]map[string]any) bool {
				got, _ := received(d, c)
				return len(got) >= perConv+1
			})
			got, reordered := received(d, c)
			if !slices.Equal(got, seqRange(0, perConv)) {
				t.Errorf("%s (first on gateway%d) received %v of %s, want 0..%d exactly once in seq order", d.user, d.home+1, got, c, perConv)
			}
			if reordered {
				t.Logf("%s: live events of %s overtook the resume's backfill on the new socket", d.user, c)
			}
		}
		for _, w := range []*wsClient{d.first, d.again} {
			if w == nil {
				continue
			}
			for _, f := range w.snapshot() {
				if f["type"] == "gap" || f["type"] == "error" {
					t.Errorf("%s: unexpected %v", d.user, f)
				}
			}
		}
	}
}

// received is what d's client has of conv, in the order it applies
// events: its first socket's events as they arrived, then its second
// socket's. On the second, events that arrive before the `resumed` answer
// can be out of seq order (a live event read before the resume frame, then
// the backfill before it: README, "Resume without gaps"), so a client
// orders those by seq, as this does; after `resumed` it applies them as
// they come. reordered says whether that ordering changed anything.
func received(d *lbDevice, conv string) (seqs []int, reordered bool) {
	got := d.first.events(conv)
	if d.again == nil {
		return got, false
	}
	var early, late []int
	resumed := false
	for _, f := range d.again.snapshot() {
		switch {
		case f["type"] == "resumed" && f["id"] == "r":
			resumed = true
		case f["type"] == "event" && f["conversation_id"] == conv:
			seq := int(f["seq"].(float64))
			if resumed {
				late = append(late, seq)
			} else {
				early = append(early, seq)
			}
		}
	}
	reordered = !slices.IsSorted(early)
	slices.Sort(early)
	return append(append(got, early...), late...), reordered
}
