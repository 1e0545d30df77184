// A partition's commands: read from the log, and handed over by a gateway
// in the same process.

package decider

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// AppendedCommands takes commands that a command writer in the same
// process appended to chat.commands, once every in-sync replica has them
// (producers.Handoff): the partition that decides them, if this decider
// owns it, takes each one that is the next of its partition without
// waiting to read it back. Everything else is dropped; the log brings it.
// It never blocks.
func (d *Decider) AppendedCommands(records []kafka.Message) {
	d.handed.offer(records)
}

// handedSlack is how many hand-offs wait for a partition before more are
// dropped: a partition that falls that far behind reads the log instead.
const handedSlack = 64

// handed routes handed-off commands to the partitions this decider owns.
type handed struct {
	mu    sync.RWMutex
	parts map[int]chan []kafka.Message
}

// open makes the channel partition p takes its hand-offs from.
func (h *handed) open(p int) chan []kafka.Message {
	ch := make(chan []kafka.Message, handedSlack)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.parts == nil {
		h.parts = map[int]chan []kafka.Message{}
	}
	h.parts[p] = ch
	return ch
}

// close stops the hand-offs to ch, partition p's channel, unless p has a
// newer one.
func (h *handed) close(p int, ch chan []kafka.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.parts[p] == ch {
		delete(h.parts, p)
	}
}

// offer hands records to their partitions' channels, each run of one
// partition as one hand-off, dropping what does not fit.
func (h *handed) offer(records []kafka.Message) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for len(records) > 0 {
		p, n := records[0].Partition, 1
		for n < len(records) && records[n].Partition == p {
			n++
		}
		if ch, ok := h.parts[p]; ok {
			select {
			case ch <- records[:n:n]:
			default:
			}
		}
		records = records[n:]
	}
}

// fetched is a record read from the log, or the error that ended the
// reading.
type fetched struct {
	m   kafka.Message
	err error
}

// readLog sends what r reads to out until ctx is done or the reader
// fails; the error is sent too.
func readLog(ctx context.Context, r *kafka.Reader, out chan<- fetched) {
	for {
		m, err := r.FetchMessage(ctx)
		select {
		case out <- fetched{m, err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// intake gathers a partition's commands into batches, each offset once
// and in the log's order, from two sources: the log, read from the
// partition's first undecided offset on, which brings every command; and
// the hand-off, which brings this process's own commands as soon as they
// are appended. The log is the source of truth: a handed-off command is
// taken only if its offset is the next one to decide. Anything else —
// a command handed over while the log still brings earlier ones, one
// after a gap left by another writer, or a later copy of one taken
// already — is dropped, and the log brings it, or has.
type intake struct {
	log    <-chan fetched
	handed <-chan []kafka.Message
	// next is the offset of the next command to decide; -1 until the
	// log brings the first.
	next int64
	// held are handed-off commands that did not fit in the last batch,
	// in offset order.
	held []kafka.Message
	// err ended the log's reading while a batch lingered.
	err error
	// fromLog and fromHandoff count the commands taken from each source.
	fromLog, fromHandoff prometheus.Counter
}

// gather returns the next batch: it waits for a first command, then
// takes what has arrived meanwhile, up to max, waiting up to linger for
// more if linger is positive. It returns the log's error, or ctx's.
func (in *intake) gather(ctx context.Context, batch []kafka.Message, max int, linger time.Duration) ([]kafka.Message, error) {
	held := in.held
	in.held = nil
	batch = in.takeHanded(batch, held, max)
	for len(batch) == 0 {
		if in.err != nil {
			return batch, in.err
		}
		select {
		case f := <-in.log:
			batch = in.takeFetched(batch, f)
		case recs := <-in.handed:
			batch = in.takeHanded(batch, recs, max)
		case <-ctx.Done():
			return batch, ctx.Err()
		}
	}
	var timeout <-chan time.Time
	if linger > 0 {
		t := time.NewTimer(linger)
		defer t.Stop()
		timeout = t.C
	}
	for len(batch) < max && in.err == nil {
		select {
		case f := <-in.log:
			batch = in.takeFetched(batch, f)
			continue
		case recs := <-in.handed:
			batch = in.takeHanded(batch, recs, max)
			continue
		default:
		}
		if timeout == nil {
			return batch, nil
		}
		select {
		case f := <-in.log:
			batch = in.takeFetched(batch, f)
		case recs := <-in.handed:
			batch = in.takeHanded(batch, recs, max)
		case <-timeout:
			return batch, nil
		}
	}
	return batch, nil
}

// takeFetched adds what the log brought; an error is kept, and returned
// by gather once the batch in hand, if any, is decided.
func (in *intake) takeFetched(batch []kafka.Message, f fetched) []kafka.Message {
	if f.err != nil {
		in.err = f.err
		return batch
	}
	return in.takeLogged(batch, f.m)
}

// takeLogged adds m, read from the log, unless it was taken already.
func (in *intake) takeLogged(batch []kafka.Message, m kafka.Message) []kafka.Message {
	if in.next >= 0 && m.Offset < in.next {
		return batch
	}
	// The log is read in order from the first undecided offset, so m is
	// the next, or the first after records the log no longer holds.
	in.next = m.Offset + 1
	in.fromLog.Inc()
	return append(batch, m)
}

// takeHanded adds the handed-off records that continue the partition
// from next, up to max in the batch; it holds the rest of such a run for
// the next batch, and drops the others.
func (in *intake) takeHanded(batch, recs []kafka.Message, max int) []kafka.Message {
	for i, m := range recs {
		if in.next < 0 || m.Offset != in.next {
			continue
		}
		if len(batch) >= max {
			in.held = recs[i:]
			return batch
		}
		batch = append(batch, m)
		in.next++
		in.fromHandoff.Inc()
	}
	return batch
}
