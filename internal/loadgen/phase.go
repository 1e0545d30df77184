// One phase of a run: pacing sends at a fixed rate across the sockets.

package loadgen

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Pacing: one pacer issues messages at the phase's rate, round-robin over
// the sending sockets, into a bounded queue drained by a pool of writers.
// A full queue means the generator cannot keep up: the message is
// counted as skipped rather than sent late in a burst.
const (
	sendQueue   = 4096
	sendWorkers = 64
	minTick     = time.Millisecond
	maxTick     = 50 * time.Millisecond
	pollEvery   = 20 * time.Millisecond
	lagEvery    = 200 * time.Millisecond
)

type job struct {
	s     *sock
	sched int64 // scheduled send time, ns since the run's start
}

// runPhase sends (or idles) for the configured duration, then waits up to
// the drain timeout for outstanding acks and deliveries.
func (r *runner) runPhase(ctx context.Context, i int, senders []*sock, lag lagFunc) {
	p := r.phases[i]
	r.cur.Store(int32(i))
	p.startNanos.Store(r.now())
	if p.rate == 0 || len(senders) == 0 {
		t := time.NewTimer(r.cfg.Duration)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		p.endSendNanos.Store(r.now())
		return
	}
	jobs := make(chan job, sendQueue)
	var wg sync.WaitGroup
	for range min(sendWorkers, len(senders)) {
		wg.Go(func() { r.sendLoop(ctx, i, jobs) })
	}
	r.pace(ctx, p, senders, jobs)
	close(jobs)
	wg.Wait()
	p.endSendNanos.Store(r.now())
	r.drain(ctx, p, lag)
}

// lagFunc returns, per consumer group that has not yet applied acked
// events since the phase began, how many it lacks; nil when unknown.
type lagFunc func(ctx context.Context, acked int64) map[string]int64

// pace issues Rate × Duration messages at their scheduled times.
func (r *runner) pace(ctx context.Context, p *phaseStats, senders []*sock, jobs chan<- job) {
	total := int64(math.Round(p.rate * r.cfg.Duration.Seconds()))
	p.scheduled.Store(total)
	interval := min(max(time.Duration(float64(time.Second)/p.rate), minTick), maxTick)
	start := time.Now()
	startNanos := int64(start.Sub(r.t0))
	tick := time.NewTicker(interval)
	defer tick.Stop()
	// Message k is due at start + k/rate; the last one at Duration at
	// most. The hard stop only guards against a clock that misbehaves.
	hardStop := time.NewTimer(r.cfg.Duration + 5*time.Second)
	defer hardStop.Stop()
	var issued int64
	next := 0
	for issued < total {
		select {
		case <-ctx.Done():
			p.skipped.Add(total - issued)
			return
		case <-hardStop.C:
			p.skipped.Add(total - issued)
			return
		case now := <-tick.C:
			due := min(total, int64(now.Sub(start).Seconds()*p.rate)+1)
			for ; issued < due; issued++ {
				j := job{s: senders[next], sched: startNanos + int64(float64(issued)*1e9/p.rate)}
				next = (next + 1) % len(senders)
				select {
				case jobs <- j:
				default:
					p.skipped.Add(1)
				}
			}
		}
	}
}

// sendLoop writes the send frames of jobs until the queue is closed.
func (r *runner) sendLoop(ctx context.Context, phase int, jobs <-chan job) {
	p := r.phases[phase]
	// A cancelled run stops writing but does not abort writes under way:
	// aborting a write tears the connection down without a close frame.
	wctx := context.WithoutCancel(ctx)
	buf := make([]byte, 0, 256+r.cfg.BodyBytes)
	for j := range jobs {
		if ctx.Err() != nil {
			p.skipped.Add(1)
			continue
		}
		if r.cfg.Protocol == ProtocolCentrifugo {
			buf = r.appendPublishFrame(buf[:0], j.s, phase, j.s.msgs.Add(1), j.sched)
		} else {
			buf = r.appendSendFrame(buf[:0], j.s, phase, j.s.msgs.Add(1), j.sched)
		}
		c, cancel := context.WithTimeout(wctx, writeTimeout)
		err := j.s.c.Write(c, websocket.MessageText, buf)
		cancel()
		if err != nil {
			p.writeErrors.Add(1)
			continue
		}
		p.sent.Add(1)
	}
}

// drain waits until every sent message is answered, every expected
// delivery made and every projection has caught up, or the drain timeout
// passes, or ctx is done. The server's metrics are read at most every
// lagEvery.
func (r *runner) drain(ctx context.Context, p *phaseStats, lag lagFunc) {
	deadline := time.NewTimer(r.cfg.Drain)
	defer deadline.Stop()
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	var lastLag time.Time
	checkLag := func() bool {
		l := lag(ctx, p.acked.Load())
		p.mu.Lock()
		p.lag = l
		p.mu.Unlock()
		lastLag = time.Now()
		return len(l) == 0
	}
	for {
		if p.settled() && time.Since(lastLag) >= lagEvery && checkLag() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			checkLag()
			return
		case <-poll.C:
		}
	}
}
