package systemtest_test

import (
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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/history/scyllastore/cqlfake"
	"github.com/parley-chat/parley/projections/search/esindex/esfake"
)

// chaosRole is one Parley role run as its own process, which the test
// kills with SIGKILL and starts again with the same command.
type chaosRole struct {
	name string
	addr string // PARLEY_HTTP_ADDR: /readyz
	// wrap, if set, runs the command inside something (ip netns exec).
	wrap []string
	args []string
	log  string // the process's stderr, appended across restarts
	cmd  *exec.Cmd
}

func (r *chaosRole) start(t *testing.T, bin string) {
	t.Helper()
	out, err := os.OpenFile(r.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	argv := append(slices.Clone(r.wrap), bin)
	argv = append(argv, r.args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.cmd = cmd
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if !within(60*time.Second, func() bool {
		resp, err := httpClient.Get("http://" + r.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("%s did not become ready on %s:\n%s", r.name, r.addr, tail(r.log, 30))
	}
}

// kill9 kills the role with SIGKILL: no shutdown, no flush, no commit.
func (r *chaosRole) kill9(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Kill(); err != nil {
		t.Fatalf("killing %s: %v", r.name, err)
	}
	_ = r.cmd.Wait()
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// chaosRig is the system under chaos: the broker, the CQL and
// Elasticsearch stand-ins in the test process, each role a process.
type chaosRig struct {
	t      *testing.T
	bin    string
	kafka  kafkatest.Cluster
	scylla *cqlfake.Server
	es     *esfake.Server
	roles  map[string]*chaosRole
	order  []string
	tokens map[string]string
	logDir string
}

// roleArgs returns the settings of every role, over the rig's broker and
// stores, with targeted routing (two gateway nodes and a router).
func (g *chaosRig) roleArgs(name, httpAddr, brokers, scylla, esURL string) []string {
	return []string{
		"-node-id", name, "-data-dir", g.t.TempDir(), "-http-addr", httpAddr,
		"-kafka-brokers", brokers, "-topic-prefix", g.kafka.Names.Prefix,
		"-scylla-hosts", scylla, "-scylla-keyspace", "chaos", "-elasticsearch-url", esURL,
		"-jwt-secret", testSecret, "-partitions", "4", "-routing", "targeted", "-log-level", "warn",
		"-command-timeout", "5s",
	}
}

func (g *chaosRig) add(name string, wrap []string, httpAddr string, command []string, settings []string) *chaosRole {
	r := &chaosRole{name: name, addr: httpAddr, wrap: wrap, args: append(slices.Clone(command), settings...), log: filepath.Join(g.logDir, name+".log")}
	g.roles[name] = r
	g.order = append(g.order, name)
	return r
}

// dumpLogs logs the tail of every role's log when the test has failed.
func (g *chaosRig) dumpLogs() {
	if !g.t.Failed() {
		return
	}
	for _, name := range g.order {
		g.t.Logf("--- %s (last lines) ---\n%s", name, tail(g.roles[name].log, 40))
	}
}

func (g *chaosRig) token(user string) string {
	if tok, ok := g.tokens[user]; ok {
		return tok
	}
	auth, err := gateway.NewAuthenticator(gateway.AuthConfig{Secret: []byte(testSecret)})
	if err != nil {
		g.t.Fatal(err)
	}
	tok, err := auth.Issue(user, time.Hour, time.Now())
	if err != nil {
		g.t.Fatal(err)
	}
	g.tokens[user] = tok
	return tok
}

// chaosConv is a conversation of the load and who is in it.
type chaosConv struct {
	id      string
	members []string
}

// createConversations creates two direct conversations and two groups
// among users u0..u3 over gateway addr, and waits until history has each.
func (g *chaosRig) createConversations(addr string) []chaosConv {
	t := g.t
	specs := []struct {
		kind    string
		members []string
	}{
		{"direct", []string{"u0", "u1"}},
		{"direct", []string{"u2", "u3"}},
		{"group", []string{"u0", "u1", "u2", "u3"}},
		{"group", []string{"u1", "u2", "u3"}},
	}
	var convs []chaosConv
	for i, s := range specs {
		a := api{t, addr, g.token(s.members[0])}
		body := map[string]any{"kind": s.kind, "members": s.members[1:], "command_id": fmt.Sprint("create-", i)}
		if s.kind == "group" {
			body["title"] = fmt.Sprint("chaos ", i)
		}
		status, out := a.do("POST", "/v1/conversations", body)
		if status != http.StatusCreated && status != http.StatusOK {
			t.Fatalf("creating conversation %d: %d %v", i, status, out)
		}
		convs = append(convs, chaosConv{id: out["conversation_id"].(string), members: s.members})
	}
	for _, c := range convs {
		a := api{t, addr, g.token(c.members[0])}
		if !within(30*time.Second, func() bool {
			status, _ := a.do("GET", "/v1/conversations/"+c.id+"/history?limit=1&before=1", nil)
			return status == http.StatusOK
		}) {
			t.Fatalf("conversation %s never reached history", c.id)
		}
	}
	return convs
}

// chaosLoad is the clients of a run: every user has a device on each
// gateway, and every device sends to each of its user's conversations in
// turn.
type chaosLoad struct {
	clients []*chaosClient
	stop    chan struct{} // closed: no new messages
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func (g *chaosRig) startLoad(convs []chaosConv, gateways []string, interval time.Duration) *chaosLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &chaosLoad{stop: make(chan struct{}), cancel: cancel}
	for _, user := range []string{"u0", "u1", "u2", "u3"} {
		var mine []string
		for _, c := range convs {
			if slices.Contains(c.members, user) {
				mine = append(mine, c.id)
			}
		}
		for d := range gateways {
			c := newChaosClient(fmt.Sprintf("%s-d%d", user, d), g.token(user), gateways, mine, mine, d)
			l.clients = append(l.clients, c)
			l.wg.Go(func() { c.run(ctx, l.stop, interval) })
		}
	}
	g.t.Cleanup(l.close)
	return l
}

// close disconnects every client and waits for them.
func (l *chaosLoad) close() {
	l.cancel()
	l.wg.Wait()
}

// acked returns the messages acknowledged so far, over every client.
func (l *chaosLoad) acked() int {
	n := 0
	for _, c := range l.clients {
		n += c.counts().acked
	}
	return n
}

// flowing waits until n more messages than now are acknowledged: the
// system answers commands end to end.
func (g *chaosRig) flowing(l *chaosLoad, n int, what string) {
	g.t.Helper()
	from := l.acked()
	if !within(60*time.Second, func() bool { return l.acked() >= from+n }) {
		g.t.Fatalf("%s: acknowledgements stopped at %d (wanted %d more)", what, l.acked(), n)
	}
}

// chaosReport is what a run counted.
type chaosReport struct {
	sent, acked, stored, delivered, expected, dupAcks, resumes, slowCloses, gaps, refetched, reordered, searched int
}

func (r chaosReport) String() string {
	return fmt.Sprintf("sent %d, acked %d, stored %d (duplicates 0), delivered %d of %d owed (duplicates 0, missing 0; %d through gap refetch; "+
		"%d times a seq arrived after a higher one, live ahead of a resume's backfill), retries answered as duplicates %d, resumes %d (%d after a slow-consumer close), gap frames %d, search documents %d",
		r.sent, r.acked, r.stored, r.delivered, r.expected, r.refetched, r.reordered, r.dupAcks, r.resumes, r.slowCloses, r.gaps, r.searched)
}

// settleAndCheck stops the load, waits for every message to be
// acknowledged and every projection and socket to catch up, then checks
// that nothing was lost or duplicated anywhere.
func (g *chaosRig) settleAndCheck(l *chaosLoad, convs []chaosConv, readAddr string) chaosReport {
	t := g.t
	close(l.stop)
	if !within(90*time.Second, func() bool {
		for _, c := range l.clients {
			if c.counts().pending > 0 {
				return false
			}
		}
		return true
	}) {
		for _, c := range l.clients {
			c.mu.Lock()
			t.Errorf("%s: %d messages never acknowledged", c.name, len(c.pending))
			c.mu.Unlock()
		}
		t.FailNow()
	}

	var rep chaosReport
	acked := map[string]chaosAck{} // command id → where
	for _, c := range l.clients {
		c.mu.Lock()
		for _, p := range c.problems {
			t.Errorf("%s: %s", c.name, p)
		}
		rep.sent += c.sent
		rep.dupAcks += c.dupAcks
		rep.resumes += c.resumes
		rep.slowCloses += c.slowCloses
		rep.gaps += len(c.gaps)
		for cmd, a := range c.acked {
			acked[cmd] = a
		}
		c.mu.Unlock()
	}
	rep.acked = len(acked)

	// History: every acknowledged command once, at its acknowledged seq,
	// seqs contiguous from 0.
	lastSeq := map[string]uint64{}
	bodies := map[string]map[uint64]string{} // conversation → seq → body
	for _, conv := range convs {
		a := api{t, readAddr, g.token(conv.members[0])}
		want := 0
		for _, ack := range acked {
			if ack.conv == conv.id {
				want++
			}
		}
		var events []map[string]any
		if !within(60*time.Second, func() bool {
			events = a.history(conv.id)
			return len(events) >= want+1
		}) {
			t.Fatalf("history of %s holds %d events, want %d", conv.id, len(events), want+1)
		}
		if got := seqs(events); !slices.Equal(got, seqRange(0, len(events)-1)) {
			t.Errorf("history of %s: seqs %v, want contiguous from 0", conv.id, got)
		}
		bodies[conv.id] = map[uint64]string{}
		seen := map[string]uint64{}
		for _, e := range events[1:] {
			data, _ := e["data"].(map[string]any)
			cmd, _ := data["command_id"].(string)
			seq := uint64(e["seq"].(float64))
			if prev, dup := seen[cmd]; dup {
				t.Errorf("command %s stored twice in %s: seqs %d and %d", cmd, conv.id, prev, seq)
			}
			seen[cmd] = seq
			bodies[conv.id][seq], _ = data["body"].(string)
			ack, ok := acked[cmd]
			switch {
			case !ok:
				t.Errorf("history of %s holds %s (seq %d), which no client saw acknowledged", conv.id, cmd, seq)
			case ack != chaosAck{conv.id, seq}:
				t.Errorf("command %s stored as %s/%d, acknowledged as %v", cmd, conv.id, seq, ack)
			}
			rep.stored++
		}
		lastSeq[conv.id] = uint64(len(events) - 1)
	}
	for cmd, ack := range acked {
		if _, ok := bodies[ack.conv][ack.seq]; !ok {
			t.Errorf("acknowledged %s (%s/%d) is not in history", cmd, ack.conv, ack.seq)
		}
	}

	// Sockets: every device received seqs 1..last of each of its
	// conversations exactly once, live or by resume; what a gap
	// frame announced is fetched from history, as a client must.
	for _, c := range l.clients {
		if !within(60*time.Second, func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, conv := range c.convs {
				if c.last[conv] < lastSeq[conv] {
					return false
				}
			}
			return true
		}) {
			c.mu.Lock()
			t.Errorf("%s never caught up: last seen %v, want %v", c.name, c.last, lastSeq)
			c.mu.Unlock()
			continue
		}
		c.mu.Lock()
		for _, conv := range c.convs {
			got := slices.Clone(c.received[conv])
			for i := 1; i < len(got); i++ {
				if got[i] < got[i-1] {
					rep.reordered++
				}
			}
			for _, gap := range c.gaps {
				if gap.conv != conv {
					continue
				}
				// Refetched over HTTP: what history holds in the range.
				for s := gap.from; s <= gap.to; s++ {
					if _, ok := bodies[conv][s]; ok {
						got = append(got, s)
						rep.refetched++
					}
				}
			}
			rep.delivered += len(got)
			rep.expected += int(lastSeq[conv])
			// Clients order by seq: events that reached a new socket live
			// before its resume was read come before the backfill of what
			// preceded them (README, "Resume without gaps").
			slices.Sort(got)
			if want := seqRange(1, int(lastSeq[conv])); !slices.Equal(intsOf(got), want) {
				t.Errorf("%s received in %s: %s, want 1..%d once each", c.name, conv, describeSeqs(got), lastSeq[conv])
			}
		}
		c.mu.Unlock()
	}

	// Search: one document per message, with its body.
	for _, conv := range convs {
		var docs map[uint64]string
		if !within(60*time.Second, func() bool {
			docs = g.searchDocs(conv.id)
			return len(docs) >= len(bodies[conv.id])
		}) {
			t.Errorf("search holds %d documents of %s, want %d", len(docs), conv.id, len(bodies[conv.id]))
			continue
		}
		for seq, body := range bodies[conv.id] {
			if docs[seq] != body {
				t.Errorf("search document %s/%d has body %q, want %q", conv.id, seq, docs[seq], body)
			}
		}
		if len(docs) != len(bodies[conv.id]) {
			t.Errorf("search holds %d documents of %s, history %d messages", len(docs), conv.id, len(bodies[conv.id]))
		}
		rep.searched += len(docs)
	}
	return rep
}

// searchDocs returns the search documents of conversation conv, by seq,
// read from the Elasticsearch stand-in after a refresh. A seq indexed
// twice would show as two hits.
func (g *chaosRig) searchDocs(conv string) map[uint64]string {
	t := g.t
	post := func(path string, body any) []byte {
		b, _ := json.Marshal(body)
		resp, err := httpClient.Post(g.es.URL()+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return nil
		}
		return out
	}
	if post("/parley-messages/_refresh", nil) == nil {
		return nil
	}
	raw := post("/parley-messages/_search", map[string]any{
		"query": map[string]any{"term": map[string]any{"conversation_id": conv}},
		"size":  10000, "sort": []any{map[string]any{"seq": "asc"}},
	})
	var out struct {
		Hits struct {
			Hits []struct {
				Source struct {
					Seq  uint64 `json:"seq"`
					Body string `json:"body"`
				} `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil
	}
	docs := map[uint64]string{}
	for _, h := range out.Hits.Hits {
		if _, dup := docs[h.Source.Seq]; dup {
			t.Errorf("search holds %s/%d twice", conv, h.Source.Seq)
		}
		docs[h.Source.Seq] = h.Source.Body
	}
	return docs
}

func intsOf(s []uint64) []int {
	out := make([]int, len(s))
	for i, v := range s {
		out[i] = int(v)
	}
	return out
}

// describeSeqs summarises a long list of seqs: its length, and where it
// first breaks from 1, 2, 3 …
func describeSeqs(s []uint64) string {
	for i, v := range s {
		if v != uint64(i+1) {
			lo, hi := max(0, i-3), min(len(s), i+4)
			return fmt.Sprintf("%d seqs, first break at index %d: …%v…", len(s), i, s[lo:hi])
		}
	}
	return fmt.Sprintf("%d seqs, 1..%d", len(s), len(s))
}

// TestChaosEveryRoleKilled runs every role as its own process — two
// gateway nodes, the decider, the router and the history and search
// projections — over one broker and the CQL and Elasticsearch stand-ins,
// with clients on both gateways sending steadily, and kills each role in
// turn with SIGKILL mid-load, then starts it again. When the load stops
// and everything has settled: every acknowledged message is in history
// exactly once, at the seq it was acknowledged with, seqs are contiguous;
// every device received every event of its conversations exactly once,
// across its reconnections and resumes (in seq order but where live
// events reached a new socket before its resume was read, as
// documented); search holds every message once.
func TestChaosEveryRoleKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (six role processes, each killed with SIGKILL under load and restarted, about 40 s); make test runs it")
	}
	started := time.Now()
	g := &chaosRig{t: t, bin: buildParley(t), roles: map[string]*chaosRole{}, tokens: map[string]string{}, logDir: t.TempDir()}
	g.kafka = kafkatest.Start(t, kafkatest.Prefixed())
	g.scylla = cqlfake.Start(t)
	g.es = esfake.Start(t)
	defer g.dumpLogs()
	brokers := strings.Join(g.kafka.Brokers(), ",")

	for _, r := range []struct{ name, command string }{
		{"decider", "decider"}, {"router", "router"}, {"history", "project history"}, {"search", "project search"},
		{"gw1", "gateway"}, {"gw2", "gateway"},
	} {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		g.add(r.name, nil, addr, strings.Fields(r.command), g.roleArgs(r.name, addr, brokers, g.scylla.Addr(), g.es.URL())).start(t, g.bin)
	}
	gateways := []string{g.roles["gw1"].addr, g.roles["gw2"].addr}
	convs := g.createConversations(gateways[0])
	load := g.startLoad(convs, gateways, 60*time.Millisecond)
	g.flowing(load, 100, "before any kill")

	for _, name := range []string{"gw1", "decider", "history", "router", "gw2", "search"} {
		r := g.roles[name]
		killed := time.Now()
		r.kill9(t)
		acks := load.acked()
		// The role stays dead while the load goes on: what it misses
		// meanwhile it must make up when back.
		time.Sleep(time.Second)
		r.start(t, g.bin)
		ready := time.Since(killed)
		g.flowing(load, 100, "after restarting "+name)
		t.Logf("%s killed at %d acks; ready again after %v, 100 more acks after %v", name, acks, ready.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	}

	settling := time.Now()
	rep := g.settleAndCheck(load, convs, gateways[0])
	t.Logf("settled and checked in %v", time.Since(settling).Round(time.Millisecond))
	t.Logf("chaos, every role killed once: %v; wall time %v", rep, time.Since(started).Round(time.Second))
}
