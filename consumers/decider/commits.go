package decider

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// offsets commits the decider's offsets of chat.commands in one group
// generation.
//
// A partition resumes from the later of its committed offset and one past
// the last command its events carry (runPartition). So a batch whose last
// command appended an event needs no commit to be safe: it is committed
// with the others every interval, for the lag the group reports, and once
// more when the generation ends. A batch that ends in commands that
// appended nothing — answered as duplicates or refused, or dead-lettered —
// is committed before the next batch is decided, or they would be decided
// again after a crash.
type offsets struct {
	gen      *kafka.Generation
	topic    string
	interval time.Duration
	log      *slog.Logger
	// commitMu serializes commits on the generation's coordinator
	// connection (Decider.commitMu).
	commitMu *sync.Mutex
	// owners are the partitions' goroutines, waited for before the last
	// commit of the generation.
	owners sync.WaitGroup

	mu      sync.Mutex
	pending map[int]int64
}

func newOffsets(gen *kafka.Generation, topic string, interval time.Duration, commitMu *sync.Mutex, log *slog.Logger) *offsets {
	return &offsets{gen: gen, topic: topic, interval: interval, commitMu: commitMu, log: log, pending: map[int]int64{}}
}

// later records next as partition p's offset, committed with the next
// interval's commit.
func (o *offsets) later(p int, next int64) {
	o.mu.Lock()
	o.pending[p] = next
	o.mu.Unlock()
}

// now commits next as partition p's offset, with everything pending.
func (o *offsets) now(p int, next int64) error {
	o.later(p, next)
	return o.flush()
}

// run commits what is pending every interval until ctx is done, then,
// once every partition's goroutine has returned, a last time.
func (o *offsets) run(ctx context.Context) {
	t := time.NewTicker(o.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := o.flush(); err != nil {
				o.log.Warn("committing", "err", err)
			}
		case <-ctx.Done():
			o.owners.Wait()
			if err := o.flush(); err != nil {
				o.log.Warn("committing on leaving the generation", "err", err)
			}
			return
		}
	}
}

// flush commits what is pending. What fails to commit stays pending
// unless a later offset replaced it meanwhile. Not fatal: the events
// carry their command offsets.
func (o *offsets) flush() error {
	o.mu.Lock()
	if len(o.pending) == 0 {
		o.mu.Unlock()
		return nil
	}
	batch := o.pending
	o.pending = make(map[int]int64, len(batch))
	o.mu.Unlock()
	o.commitMu.Lock()
	err := o.gen.CommitOffsets(map[string]map[int]int64{o.topic: batch})
	o.commitMu.Unlock()
	if err != nil {
		o.mu.Lock()
		for p, next := range batch {
			if _, replaced := o.pending[p]; !replaced {
				o.pending[p] = next
			}
		}
		o.mu.Unlock()
	}
	return err
}
