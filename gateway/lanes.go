// Ordered appending: the commands one socket sends to one conversation
// are appended in the order the socket received them, while their
// answers are awaited concurrently (pipelining).

package gateway

import (
	"context"
	"sync"
)

// lanes orders the commands of one socket per conversation: each
// conversation's commands run one after the other up to their append,
// and the next one starts as soon as the previous one is appended (or
// refused before it), not when it is answered. A lane's goroutine exits
// when its queue is empty. The zero value is ready; it is safe for
// concurrent use.
//
// "Appended" is when Appender.Enqueue returns, before the broker has
// the record: that is enough for order. The command writer is kafka-go's
// asynchronous Writer, whose WriteMessages puts the record in its
// partition's current batch under the partition writer's lock before it
// returns (Writer.batchMessages, partitionWriter.writeMessages); each
// partition has one FIFO queue of batches and one goroutine that writes
// them one after the other, retrying a batch before it takes the next
// (partitionWriter.writeBatches, writeBatch). A conversation is one key,
// so one partition: a command enqueued after another of its lane is
// written after it. If a write fails for good, the client is told and
// retries with the same command id, as it would have had the next
// command waited.
type lanes struct {
	mu sync.Mutex
	m  map[string][]func()
}

// run queues job on conversation's lane; wg waits for the lane's
// goroutine. job must return once its command is appended or refused.
func (l *lanes) run(wg *sync.WaitGroup, conversation string, job func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[string][]func())
	}
	q, busy := l.m[conversation]
	l.m[conversation] = append(q, job)
	if busy {
		return // the lane's goroutine will come to it
	}
	wg.Go(func() { l.drain(conversation) })
}

func (l *lanes) drain(conversation string) {
	for {
		l.mu.Lock()
		q := l.m[conversation]
		if len(q) == 0 {
			delete(l.m, conversation)
			l.mu.Unlock()
			return
		}
		job := q[0]
		q[0] = nil
		l.m[conversation] = q[1:]
		l.mu.Unlock()
		job()
	}
}

// appendedKey carries, in the context of a command served on a lane,
// the function to call once the command is appended.
type appendedKey struct{}

// withAppended returns ctx carrying done, which Server.command calls
// once the command is appended (or failed to be).
func withAppended(ctx context.Context, done func()) context.Context {
	return context.WithValue(ctx, appendedKey{}, done)
}

// appended tells the lane of ctx, if any, that its command is appended.
func appended(ctx context.Context) {
	if done, ok := ctx.Value(appendedKey{}).(func()); ok {
		done()
	}
}
