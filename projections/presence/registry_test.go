package presence_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/presence"
)

// registrations records a registry's OnRegister calls.
type registrations struct {
	mu  sync.Mutex
	got []string
}

func (r *registrations) add(user, node string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, user+"@"+node)
}

func (r *registrations) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func startRegistry(t *testing.T, k kafkatest.Cluster, on func(user, node string)) (*presence.Registry, func()) {
	t.Helper()
	reg := presence.NewRegistry(presence.RegistryConfig{Kafka: k.Cluster, Names: k.Names, OnRegister: on})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reg.Run(ctx) }()
	select {
	case <-reg.Ready():
	case err := <-done:
		t.Fatal(err)
	case <-time.After(20 * time.Second):
		t.Fatal("registry not ready")
	}
	return reg, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("registry: %v", err)
		}
	}
}

// TestRegistry follows two nodes' presence: the registry knows which nodes
// hold a user's sockets, says when a user appears on a node (and only
// then), forgets a node on disconnect and a crashed node once its entry
// expires, and a registry started later knows the current state without
// announcing it.
func TestRegistry(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 3}))
	ctx := context.Background()
	regs := &registrations{}
	reg, stop := startRegistry(t, k, regs.add)
	defer stop()
	a, stopA, doneA := start(t, k, "node-a")
	defer func() { stopA(); <-doneA }()
	b, stopB, doneB := start(t, k, "node-b")

	nodes := func(r *presence.Registry, user string) []string {
		n := r.AppendNodes(nil, user)
		slices.Sort(n)
		return n
	}
	a.Connect(ctx, "alice", "phone")
	eventually(t, "alice on node a", func() bool { return slices.Equal(nodes(reg, "alice"), []string{"node-a"}) })
	a.Connect(ctx, "alice", "laptop") // a second device on the same node is no new registration
	b.Connect(ctx, "alice", "tablet")
	bobGone := b.Connect(ctx, "bob", "phone")
	eventually(t, "alice on both nodes, bob on b", func() bool {
		return slices.Equal(nodes(reg, "alice"), []string{"node-a", "node-b"}) && slices.Equal(nodes(reg, "bob"), []string{"node-b"})
	})
	// Wall time must pass here for the trackers' heartbeats (every
	// 200ms) to re-publish alice's and bob's records; nothing marks a
	// heartbeat the registry has applied, so this waits a few heartbeat
	// periods and then checks they brought no new registrations.
	time.Sleep(500 * time.Millisecond)
	// Two nodes publishing alice's record at once may each drop the
	// other's entry for a moment (see Tracker): the entry that comes back
	// is announced again, which is right. So compare without repeats.
	got := slices.Compact(slices.Sorted(slices.Values(regs.list())))
	if want := []string{"alice@node-a", "alice@node-b", "bob@node-b"}; !slices.Equal(got, want) {
		t.Errorf("registrations %v, want %v", got, want)
	}

	// Devices, not only nodes: push notifies the devices not connected.
	for _, c := range []struct {
		user, device string
		want         bool
	}{{"alice", "phone", true}, {"alice", "tablet", true}, {"alice", "watch", false}, {"bob", "phone", true}, {"bob", "laptop", false}, {"carol", "phone", false}} {
		if got := reg.Connected(c.user, c.device); got != c.want {
			t.Errorf("Connected(%s, %s) = %v, want %v", c.user, c.device, got, c.want)
		}
	}

	bobGone()
	eventually(t, "bob gone", func() bool { return len(nodes(reg, "bob")) == 0 && !reg.Connected("bob", "phone") })
	seen := len(regs.list())
	b.Connect(ctx, "bob", "phone")
	eventually(t, "bob back on b, announced again", func() bool { return slices.Contains(regs.list()[seen:], "bob@node-b") })

	// A registry started now knows the state and announces nothing of it.
	late := &registrations{}
	reg2, stop2 := startRegistry(t, k, late.add)
	defer stop2()
	if got := nodes(reg2, "alice"); !slices.Equal(got, []string{"node-a", "node-b"}) {
		t.Errorf("a registry started later has alice on %v", got)
	}

	// Node b crashes: its entries expire (1 s timeout) and it is no longer
	// routed to.
	stopB()
	<-doneB
	eventually(t, "node b's entries expired", func() bool {
		return slices.Equal(nodes(reg, "alice"), []string{"node-a"}) && len(nodes(reg, "bob")) == 0
	})
	if reg.Connected("alice", "tablet") || !reg.Connected("alice", "phone") {
		t.Error("after node b's crash, alice's tablet (on b) still counts as connected, or her phone (on a) not")
	}
	if got := late.list(); len(got) != 0 {
		t.Errorf("the later registry announced %v", got)
	}
}
