// Fan-out benchmarks of the hub.

package delivery

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/schemas"
)

// Fan-out benchmarks: the time for the hub to push one event to the
// queues of n sessions of members and for every session to write it to a
// no-op sink.

type countingSink struct{ wg *sync.WaitGroup }

func (s countingSink) Write(context.Context, []byte) error {
	s.wg.Done()
	return nil
}

func benchmarkFanout(b *testing.B, n int) {
	h := newTestHub(b, openStore(b), nil)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	defer func() { cancel(); running.Wait() }()
	members := make([]schemas.Member, n)
	for i := range members {
		members[i] = schemas.Member{UserID: "u" + strconv.Itoa(i), Role: schemas.RoleMember}
		s := h.NewSession(members[i].UserID)
		running.Go(func() { _ = s.Run(ctx, countingSink{&wg}) })
	}
	wg.Add(n)
	live(h, historytest.Group("c", historytest.Base, members...))
	wg.Wait()

	value, _ := json.Marshal(schemas.MessageSentV1{ConversationID: "c", Seq: 1, SenderID: "u0",
		Body: strings.Repeat("x", 200), CommandID: "cmd", SentAt: historytest.Base})
	attrs := schemas.Attributes{ID: "evt", Type: schemas.TypeMessageSent, Source: schemas.Source, Subject: "c",
		Time: historytest.Base, HasSeq: true, CommandOffset: -1}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		attrs.Seq = uint64(i + 1)
		wg.Add(n)
		h.feed.(*broadcast).event(ctx, attrs, value)
		wg.Wait()
	}
	b.StopTimer()
	if got := h.Latest("c"); got != uint64(b.N) {
		b.Fatalf("latest %d, want %d", got, b.N)
	}
}

func BenchmarkFanout_1Sub(b *testing.B)      { benchmarkFanout(b, 1) }
func BenchmarkFanout_100Subs(b *testing.B)   { benchmarkFanout(b, 100) }
func BenchmarkFanout_10000Subs(b *testing.B) { benchmarkFanout(b, 10000) }
