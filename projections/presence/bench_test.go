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

// online is user's record as another node published it: one device, an
// entry that has not expired.
func online(user string, now time.Time) *schemas.PresenceV1 {
	return &schemas.PresenceV1{
		UserID: user, Status: schemas.StatusOnline, UpdatedAt: now, LastSeen: now,
		Nodes: []schemas.PresenceNodeV1{{NodeID: "node-b", ExpiresAt: now.Add(time.Hour), Devices: []schemas.PresenceDeviceV1{{DeviceID: "phone", Status: schemas.StatusOnline}}}},
	}
}

func benchTracker(b *testing.B) *presence.Tracker {
	k := kafkatest.Start(b, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 1}))
	return presence.New(presence.Config{Kafka: k.Cluster, Names: k.Names, NodeID: "node-a", MaxOffline: 1})
}

// BenchmarkFlush_ManyWatchers: 10,000 sockets each following 50 users
// (500,000 follows), and each Flush with ten users' changes to hand out
// — the quiet second of a busy node.
func BenchmarkFlush_ManyWatchers(b *testing.B) {
	t := benchTracker(b)
	ctx := context.Background()
	now := time.Now()
	const sockets, follows, users = 10_000, 50, 50_000
	for i := range sockets {
		watched := make([]string, follows)
		for j := range watched {
			watched[j] = fmt.Sprint("u", (i*follows+j)%users)
		}
		w, _ := t.Watch(watched, func([]presence.State) {})
		defer w.Close()
	}
	i := 0
	for b.Loop() {
		for range 10 {
			i++
			rec := online(fmt.Sprint("u", i%users), now)
			if i/users%2 == 1 {
				rec.Status, rec.Nodes = schemas.StatusOffline, []schemas.PresenceNodeV1{}
			}
			t.Apply(ctx, rec)
		}
		t.Flush()
	}
}

// BenchmarkSweep_Million: a node that knows a million users online on
// another node sweeps its table while a presence query waits for the
// lock: sweep-ms is how long a sweep takes, max-wait-µs the longest any
// query waited for the lock meanwhile.
func BenchmarkSweep_Million(b *testing.B) {
	t := benchTracker(b)
	ctx := context.Background()
	now := time.Now()
	for i := range 1_000_000 {
		t.Apply(ctx, online(fmt.Sprint("u", i), now))
	}
	var maxWait time.Duration
	var took time.Duration
	for b.Loop() {
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				start := time.Now()
				t.Get([]string{"u1"})
				maxWait = max(maxWait, time.Since(start))
			}
		})
		start := time.Now()
		t.Sweep(ctx)
		took += time.Since(start)
		close(done)
		wg.Wait()
	}
	b.ReportMetric(float64(took.Milliseconds())/float64(b.N), "sweep-ms")
	b.ReportMetric(float64(maxWait.Microseconds()), "max-wait-µs")
}
