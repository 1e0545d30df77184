package presence_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/presence"
	"github.com/parley-chat/parley/schemas"
)

// recorder collects a watcher's batches.
type recorder struct {
	mu     sync.Mutex
	states []presence.State
}

func (r *recorder) notify(s []presence.State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, s...)
}

func (r *recorder) last() presence.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.states) == 0 {
		return presence.State{}
	}
	return r.states[len(r.states)-1]
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func start(t *testing.T, k kafkatest.Cluster, node string) (*presence.Tracker, context.CancelFunc, <-chan error) {
	t.Helper()
	tr := presence.New(presence.Config{Kafka: k.Cluster, Names: k.Names, NodeID: node, Heartbeat: 200 * time.Millisecond, Timeout: time.Second, Flush: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	select {
	case <-tr.Ready():
	case err := <-done:
		t.Fatal(err)
	case <-time.After(20 * time.Second):
		t.Fatal("tracker not ready")
	}
	return tr, cancel, done
}

// TestPresenceAcrossNodes drives two nodes' trackers over a real broker:
// devices on both, status changes, a disconnect, then a crash of one node
// whose users must go offline within the timeout, seen by the other; a
// node started later reads the last state back from the compacted topic.
func TestPresenceAcrossNodes(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 3}))
	ctx := context.Background()
	a, stopA, doneA := start(t, k, "node-a")
	defer func() { stopA(); <-doneA }()
	b, stopB, doneB := start(t, k, "node-b")

	rec := &recorder{}
	w, initial := a.Watch([]string{"alice"}, rec.notify)
	defer w.Close()
	if initial[0].Status != schemas.StatusOffline || !initial[0].LastSeen.IsZero() {
		t.Fatalf("before anything: %+v, want offline with no last seen", initial[0])
	}

	b.Connect(ctx, "alice", "phone")
	eventually(t, "online seen from the other node", func() bool { return rec.last().Status == schemas.StatusOnline })
	if err := b.SetStatus(ctx, "alice", "phone", schemas.StatusAway); err != nil {
		t.Fatal(err)
	}
	eventually(t, "away", func() bool { return rec.last().Status == schemas.StatusAway })
	disconnectLaptop := a.Connect(ctx, "alice", "laptop")
	eventually(t, "online again with a second device", func() bool { return rec.last().Status == schemas.StatusOnline })
	if got := b.Get([]string{"alice"})[0].Status; got != schemas.StatusOnline {
		eventually(t, "node b sees node a's device", func() bool { return b.Get([]string{"alice"})[0].Status == schemas.StatusOnline })
	}
	disconnectLaptop()
	eventually(t, "away when only the away device is left", func() bool { return rec.last().Status == schemas.StatusAway })
	if err := b.SetStatus(ctx, "alice", "nope", schemas.StatusAway); err == nil {
		t.Error("SetStatus of an unknown device succeeded")
	}
	if err := b.SetStatus(ctx, "alice", "phone", "invisible"); err == nil {
		t.Error("SetStatus with a bad status succeeded")
	}

	// Node b crashes: no disconnect, no goodbye; its entry expires.
	crashed := time.Now()
	stopB()
	<-doneB
	eventually(t, "offline after the crashed node's entry expires", func() bool { return rec.last().Status == schemas.StatusOffline })
	st := rec.last()
	if took := time.Since(crashed); took > 5*time.Second {
		t.Errorf("went offline %s after the crash, want within the 1s timeout plus a heartbeat", took)
	}
	if st.LastSeen.IsZero() || st.LastSeen.After(time.Now()) || crashed.Sub(st.LastSeen) > 2*time.Second {
		t.Errorf("last seen %v, want about the crashed node's last heartbeat (%v)", st.LastSeen, crashed)
	}

	// A node that starts now reads the state back from the topic.
	c, stopC, doneC := start(t, k, "node-c")
	defer func() { stopC(); <-doneC }()
	eventually(t, "a new node knows alice is offline since then", func() bool {
		got := c.Get([]string{"alice"})[0]
		return got.Status == schemas.StatusOffline && !got.LastSeen.IsZero()
	})
	if got := c.Get([]string{"nobody"})[0]; got.Status != schemas.StatusOffline || !got.LastSeen.IsZero() {
		t.Errorf("an unknown user: %+v", got)
	}
}

// TestOfflineRecordsStayBounded connects and disconnects many more users
// than MaxOffline: the tracker forgets the least recently seen offline
// users, never one still connected or watched, and a forgotten user who
// connects again is tracked as before.
func TestOfflineRecordsStayBounded(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 3}))
	ctx := context.Background()
	const bound = 5
	tr := presence.New(presence.Config{Kafka: k.Cluster, Names: k.Names, NodeID: "node-a", Heartbeat: 200 * time.Millisecond, Timeout: time.Second, Flush: 20 * time.Millisecond, MaxOffline: bound})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- tr.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	<-tr.Ready()

	stay := tr.Connect(ctx, "connected", "phone")
	defer stay()
	watchedGone := tr.Connect(ctx, "watched", "phone")
	rec := &recorder{}
	w, _ := tr.Watch([]string{"watched"}, rec.notify)
	defer w.Close()
	watchedGone()
	eventually(t, "the watched user offline", func() bool { return rec.last().Status == schemas.StatusOffline })
	for i := range 40 {
		tr.Connect(ctx, fmt.Sprint("user", i), "phone")()
	}
	// connected, watched, and at most bound offline users besides.
	eventually(t, "the records bounded", func() bool { return tr.Records() <= bound+2 })
	if got := tr.Get([]string{"connected"})[0]; got.Status != schemas.StatusOnline {
		t.Errorf("a connected user after the churn: %+v, want online", got)
	}
	if got := tr.Get([]string{"watched"})[0]; got.Status != schemas.StatusOffline || got.LastSeen.IsZero() {
		t.Errorf("a watched offline user after the churn: %+v, want offline with a last-seen time", got)
	}
	// Which offline users are remembered depends on the order the
	// tracker read its own records back from the log's partitions; how
	// many does not.
	var remembered, forgotten []string
	for i := range 40 {
		u := fmt.Sprint("user", i)
		if tr.Get([]string{u})[0].LastSeen.IsZero() {
			forgotten = append(forgotten, u)
		} else {
			remembered = append(remembered, u)
		}
	}
	if len(remembered) == 0 || len(remembered) > bound {
		t.Errorf("%d of the 40 offline users keep a last-seen time (%v), want 1..%d", len(remembered), remembered, bound)
	}
	if len(forgotten) == 0 {
		t.Fatal("no offline user was forgotten")
	}
	back := tr.Connect(ctx, forgotten[0], "laptop")
	defer back()
	if got := tr.Get([]string{forgotten[0]})[0]; got.Status != schemas.StatusOnline {
		t.Errorf("a forgotten user who connects again: %+v, want online", got)
	}
}

// TestHeartbeatsSpreadOverTheInterval runs a tracker on a clock of its
// own: each connected user's entry is re-published within one Heartbeat
// of the node's last publication of it — nine tenths of it after, looked
// for every tenth — not every entry at once; a status change restarts
// that user's interval, and a user who disconnected is not re-published.
func TestHeartbeatsSpreadOverTheInterval(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 3}))
	ctx := context.Background()
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := t0
	at := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = t0.Add(d)
	}
	// Run's own ticks, six minutes apart, do not come during the test;
	// the test calls what they would.
	tr := presence.New(presence.Config{
		Kafka: k.Cluster, Names: k.Names, NodeID: "node-a",
		Heartbeat: time.Hour, Timeout: 3 * time.Hour, Flush: 20 * time.Millisecond,
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
	})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- tr.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	<-tr.Ready()

	tr.Connect(ctx, "alice", "phone")
	at(10 * time.Minute)
	daveGone := tr.Connect(ctx, "dave", "phone")
	at(20 * time.Minute)
	tr.Connect(ctx, "bob", "phone")
	at(30 * time.Minute)
	daveGone()
	at(40 * time.Minute)
	tr.Connect(ctx, "carol", "phone")
	at(50 * time.Minute)
	if err := tr.SetStatus(ctx, "carol", "phone", schemas.StatusAway); err != nil {
		t.Fatal(err)
	}
	// Due 54 minutes after the last publication.
	for _, m := range []time.Duration{53, 54, 60, 73, 74, 94, 103, 104} {
		at(m * time.Minute)
		tr.HeartbeatDue(ctx)
	}

	got := map[string][]time.Duration{}
	for _, m := range kafkatest.ReadAll(t, k.Cluster, k.Names.Topic(schemas.TopicPresence)) {
		v, err := schemas.Decode(schemas.TypePresence, m.Value)
		if err != nil {
			t.Fatal(err)
		}
		rec := v.(*schemas.PresenceV1)
		got[rec.UserID] = append(got[rec.UserID], rec.UpdatedAt.Sub(t0))
	}
	want := map[string][]time.Duration{
		"alice": {0, 54 * time.Minute},
		"dave":  {10 * time.Minute, 30 * time.Minute},
		"bob":   {20 * time.Minute, 74 * time.Minute},
		"carol": {40 * time.Minute, 50 * time.Minute, 104 * time.Minute},
	}
	for user, w := range want {
		// One user's records share a key, hence a partition: in order.
		if fmt.Sprint(got[user]) != fmt.Sprint(w) {
			t.Errorf("%s's records published at %v after the start, want %v", user, got[user], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("records of %d users, want %d: %v", len(got), len(want), got)
	}
}

// TestFlushHandsOutOnlyChanges: a flush calls the watches that have
// changes pending, each once with all of them, and no other — not one
// without changes, not one closed since its changes came.
func TestFlushHandsOutOnlyChanges(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 1}))
	ctx := context.Background()
	tr := presence.New(presence.Config{Kafka: k.Cluster, Names: k.Names, NodeID: "node-a"})
	var mu sync.Mutex
	calls := map[string][][]presence.State{}
	watch := func(name string, users ...string) *presence.Watch {
		w, _ := tr.Watch(users, func(s []presence.State) {
			mu.Lock()
			defer mu.Unlock()
			calls[name] = append(calls[name], s)
		})
		return w
	}
	w1 := watch("w1", "alice", "bob")
	defer w1.Close()
	w2 := watch("w2", "carol")
	now := time.Now()

	tr.Apply(ctx, online("alice", now))
	tr.Apply(ctx, online("bob", now))
	tr.Flush()
	tr.Flush()
	tr.Apply(ctx, online("carol", now))
	w2.Close()
	tr.Flush()

	mu.Lock()
	defer mu.Unlock()
	if got := fmt.Sprint(calls["w1"]); len(calls["w1"]) != 1 || len(calls["w1"][0]) != 2 || calls["w1"][0][0].UserID != "alice" || calls["w1"][0][1].UserID != "bob" || calls["w1"][0][0].Status != schemas.StatusOnline {
		t.Errorf("w1 was called with %s, want once with alice and bob online", got)
	}
	if len(calls["w2"]) != 0 {
		t.Errorf("w2, closed before the flush, was called with %v", calls["w2"])
	}
}
