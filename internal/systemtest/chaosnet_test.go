package systemtest_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/embeddedkafka"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/history/scyllastore/cqlfake"
	"github.com/parley-chat/parley/projections/search/esindex/esfake"
)

// chaosNet is the test's network: an address on the host that the broker
// and the stores listen on (service), and for
// each network namespace a veth pair whose host end can be taken down to
// cut the namespace off. Everything it makes is removed when the test
// ends.
type chaosNet struct {
	t       *testing.T
	id      string // unique to the test: in every name
	subnet  int    // 10.<subnet>.0.0/16 is the test's
	service string // the host address every namespace reaches
	spaces  map[string]*chaosSpace
}

// chaosSpace is one network namespace and its link to the host.
type chaosSpace struct {
	name    string // the namespace
	hostEnd string // the veth end on the host: down cuts the namespace off
	addr    string // the namespace's address
}

// ipCmd runs ip with args and fails the test with its output if it fails.
func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newChaosNet makes the host side and the service address. It fails the test, not skips it, when
// the environment cannot make network namespaces: the test exists to
// cut roles off, and passing without doing so would say nothing.
func newChaosNet(t *testing.T) *chaosNet {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("this test needs iproute2's ip (Debian package iproute2) to make network namespaces: %v", err)
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	n := &chaosNet{t: t, id: hex.EncodeToString(b[:]), spaces: map[string]*chaosSpace{}}
	routes, _ := exec.Command("ip", "-4", "route", "show", "table", "all").Output()
	for _, s := range []int{int(b[0])%100 + 100, int(b[1])%100 + 100, int(b[2])%100 + 100} {
		if !strings.Contains(string(routes), fmt.Sprintf("10.%d.", s)) {
			n.subnet = s
			break
		}
	}
	if n.subnet == 0 {
		t.Fatal("no free 10.x.0.0/16 for the test's network")
	}
	probe := "pprobe-" + n.id
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		t.Fatalf("this test needs network namespaces (root with CAP_NET_ADMIN, iproute2): ip netns add: %v\n%s", err, out)
	}
	ipCmd(t, "netns", "del", probe)

	// The service address sits on the host end of a veth pair that is
	// never cut (its other end idles in a namespace of its own): a local
	// address of the host that every namespace reaches through its own
	// link. (A dummy interface would do, where the kernel has the module.)
	n.service = fmt.Sprintf("10.%d.0.1", n.subnet)
	n.space("svc", 0)
	return n
}

// space makes namespace i (1, 2 …) named for what runs in it, linked to
// the host by a veth pair, with a route to the service address.
func (n *chaosNet) space(name string, i int) *chaosSpace {
	t := n.t
	t.Helper()
	s := &chaosSpace{name: fmt.Sprintf("pc-%s-%s", name, n.id), hostEnd: fmt.Sprintf("pch%d-%s", i, n.id), addr: fmt.Sprintf("10.%d.%d.2", n.subnet, i)}
	nsEnd := fmt.Sprintf("pcn%d-%s", i, n.id)
	ipCmd(t, "netns", "add", s.name)
	// Deleting the namespace deletes its end of the pair, and so the pair.
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", s.name).Run()
		_ = exec.Command("ip", "link", "del", s.hostEnd).Run()
	})
	ipCmd(t, "link", "add", s.hostEnd, "type", "veth", "peer", "name", nsEnd, "netns", s.name)
	ipCmd(t, "addr", "add", fmt.Sprintf("10.%d.%d.1/24", n.subnet, i), "dev", s.hostEnd)
	ipCmd(t, "link", "set", s.hostEnd, "up")
	ipCmd(t, "-n", s.name, "addr", "add", s.addr+"/24", "dev", nsEnd)
	ipCmd(t, "-n", s.name, "link", "set", nsEnd, "up")
	ipCmd(t, "-n", s.name, "link", "set", "lo", "up")
	ipCmd(t, "-n", s.name, "route", "add", n.service+"/32", "via", fmt.Sprintf("10.%d.%d.1", n.subnet, i))
	n.spaces[name] = s
	return s
}

// wrap is the prefix that runs a command inside the namespace.
func (s *chaosSpace) wrap() []string { return []string{"ip", "netns", "exec", s.name} }

// cut takes the host end of the namespace's link down (down false brings
// it up again): packets are dropped, connections are not closed, as when
// a switch or a link fails.
func (n *chaosNet) cut(s *chaosSpace, down bool) {
	state := "up"
	if down {
		state = "down"
	}
	ipCmd(n.t, "link", "set", s.hostEnd, state)
}

// forward listens on addr (port 0: a free one) and copies every
// connection to and from target, until the test ends. It returns the
// address listened on: for servers that listen on 127.0.0.1 only.
func forward(t *testing.T, addr, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	track := func(c net.Conn) {
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
	}
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			track(in)
			track(out)
			wg.Go(func() { _, _ = io.Copy(out, in); _ = out.Close() })
			wg.Go(func() { _, _ = io.Copy(in, out); _ = in.Close() })
		}
	})
	return ln.Addr().String()
}

// at returns the gateway the client has a socket to, or "".
func (c *chaosClient) at() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return ""
	}
	return c.addr
}

// historyHolds waits until history holds, in every conversation, the
// highest seq acknowledged so far.
func (g *chaosRig) historyHolds(l *chaosLoad, convs []chaosConv, readAddr string) {
	t := g.t
	t.Helper()
	top := map[string]uint64{}
	for _, c := range l.clients {
		c.mu.Lock()
		for _, a := range c.acked {
			top[a.conv] = max(top[a.conv], a.seq)
		}
		c.mu.Unlock()
	}
	for _, conv := range convs {
		a := api{t, readAddr, g.token(conv.members[0])}
		if top[conv.id] == 0 {
			continue
		}
		if !within(60*time.Second, func() bool {
			status, out := a.do("GET", fmt.Sprintf("/v1/conversations/%s/history?limit=1&after=%d", conv.id, top[conv.id]-1), nil)
			evs, _ := out["events"].([]any)
			return status == 200 && len(evs) == 1
		}) {
			t.Fatalf("history never reached seq %d of %s", top[conv.id], conv.id)
		}
	}
}

// moveTo has the client drop its socket and connect to gateway i next.
func (c *chaosClient) moveTo(i int) {
	c.mu.Lock()
	c.next = i
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		_ = conn.CloseNow()
	}
}

// TestChaosNetworkCut runs one gateway node and the history projection
// each in a network namespace of its own, linked to the host (where the
// broker, the stores and the other roles are) by a veth pair, and under
// load takes both links down for a while, then up again: the sockets of
// the cut-off gateway go quiet, their clients notice by their pings and
// resume on the other node; the projection falls behind, then catches
// up; the cut-off gateway serves again. Nothing acknowledged is lost or
// duplicated, and every device receives every event once.
func TestChaosNetworkCut(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (six role processes, two of them cut off from the broker for 12 s under load, about 30 s; needs root for network namespaces); make test runs it")
	}
	started := time.Now()
	lan := newChaosNet(t)
	g := &chaosRig{t: t, bin: buildParley(t), roles: map[string]*chaosRole{}, tokens: map[string]string{}, logDir: t.TempDir()}

	broker, err := embeddedkafka.Start(embeddedkafka.Config{Dir: t.TempDir(), Addr: lan.service + ":0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	g.kafka = kafkatest.Of(t, []string{broker.Addr()})
	g.kafka.Names = kafkalog.Names{Prefix: "chaosnet."}
	g.scylla = cqlfake.New(cqlfake.Options{})
	if err := g.scylla.Listen(lan.service + ":0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.scylla.Close() })
	g.es = esfake.Start(t)
	esURL := "http://" + forward(t, lan.service+":0", strings.TrimPrefix(g.es.URL(), "http://"))
	defer g.dumpLogs()

	gwSpace, historySpace := lan.space("gw", 1), lan.space("hist", 2)
	for _, r := range []struct {
		name, command string
		space         *chaosSpace
	}{
		{"decider", "decider", nil}, {"router", "router", nil}, {"history", "project history", historySpace},
		{"search", "project search", nil}, {"gw1", "gateway", nil}, {"gw2", "gateway", gwSpace},
	} {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		var wrap []string
		if r.space != nil {
			addr = fmt.Sprintf("%s:%d", r.space.addr, 8080)
			wrap = r.space.wrap()
		}
		g.add(r.name, wrap, addr, strings.Fields(r.command), g.roleArgs(r.name, addr, broker.Addr(), g.scylla.Addr(), esURL)).start(t, g.bin)
	}
	gateways := []string{g.roles["gw1"].addr, g.roles["gw2"].addr}
	convs := g.createConversations(gateways[0])
	load := g.startLoad(convs, gateways, 60*time.Millisecond)
	g.flowing(load, 100, "before the cut")

	cutAt := time.Now()
	lan.cut(gwSpace, true)
	lan.cut(historySpace, true)
	t.Logf("gw2 and history cut off at %d acks", load.acked())
	// The rest goes on without them: gw2's clients find gw1.
	g.flowing(load, 100, "while gw2 and history are cut off")
	t.Logf("100 more acks %v into the cut", time.Since(cutAt).Round(time.Millisecond))
	// The cut lasts past the projection's session timeout (10 s), so the
	// group forgets it and it must join again.
	time.Sleep(time.Until(cutAt.Add(12 * time.Second)))
	lan.cut(gwSpace, false)
	lan.cut(historySpace, false)
	t.Logf("links up again at %d acks, after %v", load.acked(), time.Since(cutAt).Round(time.Millisecond))

	// The projection catches up: history holds what was acknowledged
	// while it was cut off.
	g.historyHolds(load, convs, gateways[0])
	t.Logf("history caught up %v after the links came up", time.Since(cutAt.Add(12*time.Second)).Round(time.Millisecond))

	// gw2 serves again: every device that was on it comes back to it and
	// sends and receives through it.
	if !within(60*time.Second, func() bool {
		resp, err := httpClient.Get("http://" + g.roles["gw2"].addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}) {
		t.Fatal("gw2 not ready after its link came back")
	}
	if !within(30*time.Second, func() bool {
		home := true
		for i, c := range load.clients {
			// A device on the wrong gateway is moved; one that is
			// connecting is left alone.
			if at := c.at(); at != gateways[i%2] {
				home = false
				if at != "" {
					c.moveTo(i % 2)
				}
			}
		}
		return home
	}) {
		for _, c := range load.clients {
			c.mu.Lock()
			t.Logf("%s at %q, last drops %q", c.name, c.addr, c.drops[max(0, len(c.drops)-3):])
			c.mu.Unlock()
		}
		t.Fatal("devices did not get back onto gw2 after its link came back")
	}
	g.flowing(load, 100, "after the cut")

	settling := time.Now()
	rep := g.settleAndCheck(load, convs, gateways[0])
	t.Logf("settled and checked in %v", time.Since(settling).Round(time.Millisecond))
	t.Logf("chaos, gw2 and the history projection cut off for 12 s: %v; wall time %v", rep, time.Since(started).Round(time.Second))
}
