package decider

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// records returns records of partition p at the given offsets.
func records(p int, offsets ...int64) []kafka.Message {
	out := make([]kafka.Message, len(offsets))
	for i, o := range offsets {
		out[i] = kafka.Message{Partition: p, Offset: o}
	}
	return out
}

func offsetsOf(batch []kafka.Message) []int64 {
	out := make([]int64, len(batch))
	for i, m := range batch {
		out[i] = m.Offset
	}
	return out
}

// TestIntakeTakesEachOffsetOnceInOrder: a handed-off command is taken
// only if it is the next offset; a run that does not fit in a batch is
// held for the next; the log's copies of what was taken are dropped; a
// partition whose first offset is unknown takes the log's first; the
// log's error ends the intake only after the batch in hand is decided.
func TestIntakeTakesEachOffsetOnceInOrder(t *testing.T) {
	ctx := context.Background()
	log := make(chan fetched, 16)
	handed := make(chan []kafka.Message, 16)
	in := &intake{log: log, handed: handed, next: 10,
		fromLog: prometheus.NewCounter(prometheus.CounterOpts{Name: "log"}), fromHandoff: prometheus.NewCounter(prometheus.CounterOpts{Name: "handed"})}
	gather := func(max int, want ...int64) {
		t.Helper()
		batch, err := in.gather(ctx, nil, max, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := offsetsOf(batch); !slices.Equal(got, want) {
			t.Fatalf("batch %v, want %v", got, want)
		}
	}

	// Each step fills the channels so that the batch is the same
	// whichever ready channel the intake's select picks first.

	// A hand-off past a gap is dropped; the log fills the gap, and the
	// hand-off that continues from it is taken.
	handed <- records(0, 12, 13)
	log <- fetched{m: records(0, 10)[0]}
	gather(10, 10)
	log <- fetched{m: records(0, 11)[0]}
	gather(10, 11)
	handed <- records(0, 12, 13, 14)
	gather(10, 12, 13, 14)

	// The log's copies of what was handed over are dropped; a run longer
	// than the batch is held for the next.
	for o := int64(10); o <= 14; o++ {
		log <- fetched{m: records(0, o)[0]}
	}
	handed <- records(0, 15, 16, 17, 18)
	gather(2, 15, 16)
	gather(10, 17, 18)

	// With a linger, what arrives within it joins the batch too.
	log <- fetched{m: records(0, 19)[0]}
	log <- fetched{m: records(0, 20)[0]}
	if batch, err := in.gather(ctx, nil, 10, time.Millisecond); err != nil || !slices.Equal(offsetsOf(batch), []int64{19, 20}) {
		t.Fatalf("lingering batch %v (%v), want [19 20]", offsetsOf(batch), err)
	}

	// The log's error after a command: that batch first, then the error.
	log <- fetched{m: records(0, 21)[0]}
	boom := errors.New("boom")
	log <- fetched{err: boom}
	gather(10, 21)
	if _, err := in.gather(ctx, nil, 10, 0); !errors.Is(err, boom) {
		t.Fatalf("gather after the log failed: %v, want %v", err, boom)
	}

	// Until the log brings the first command, nothing handed is taken.
	in = &intake{log: log, handed: handed, next: -1, fromLog: in.fromLog, fromHandoff: in.fromHandoff}
	if batch := in.takeHanded(nil, records(0, 40, 41), 10); len(batch) != 0 {
		t.Fatalf("took %v before the log brought a command", offsetsOf(batch))
	}
	log <- fetched{m: records(0, 39)[0]}
	gather(10, 39)
	handed <- records(0, 40, 41)
	gather(10, 40, 41)
}

// TestHandedRoutesByPartition: each partition's run goes to the channel
// of that partition, if it is open; a full channel drops the hand-off
// rather than block; a closed partition gets nothing, and closing an
// older channel leaves a newer one open.
func TestHandedRoutesByPartition(t *testing.T) {
	var h handed
	p0, p2 := h.open(0), h.open(2)
	h.offer(append(append(records(0, 1, 2), records(1, 7)...), records(2, 3)...))
	if got := offsetsOf(<-p0); !slices.Equal(got, []int64{1, 2}) {
		t.Errorf("partition 0 got %v", got)
	}
	if got := offsetsOf(<-p2); !slices.Equal(got, []int64{3}) {
		t.Errorf("partition 2 got %v", got)
	}
	for range handedSlack + 5 {
		h.offer(records(0, 9))
	}
	if len(p0) != handedSlack {
		t.Errorf("partition 0 holds %d hand-offs, want %d", len(p0), handedSlack)
	}
	newer := h.open(2)
	h.close(2, p2)
	h.offer(records(2, 4))
	if len(newer) != 1 || len(p2) != 0 {
		t.Errorf("after closing the older channel: newer holds %d, older %d; want 1 and 0", len(newer), len(p2))
	}
	h.close(2, newer)
	h.offer(records(2, 5))
	if len(newer) != 1 {
		t.Errorf("a closed partition was handed a record")
	}
}
