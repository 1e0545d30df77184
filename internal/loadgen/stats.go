// Latency histograms and counters of a run, per phase.

package loadgen

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds from 1 µs to 5 minutes with 3
// significant digits; longer ones are recorded as 5 minutes.
const (
	histMinMicros = 1
	histMaxMicros = int64(5 * time.Minute / time.Microsecond)
	histDigits    = 3
	histShards    = 16
)

// latencyHist is an HDR histogram sharded so that thousands of socket
// readers can record at once without one hot lock. Safe for concurrent
// use.
type latencyHist struct {
	shards [histShards]struct {
		mu sync.Mutex
		h  *hdrhistogram.Histogram
	}
}

func newLatencyHist() *latencyHist {
	l := &latencyHist{}
	for i := range l.shards {
		l.shards[i].h = hdrhistogram.New(histMinMicros, histMaxMicros, histDigits)
	}
	return l
}

// record adds d to the shard of key (a socket index).
func (l *latencyHist) record(key int, d time.Duration) {
	us := min(max(d.Microseconds(), histMinMicros), histMaxMicros)
	s := &l.shards[key%histShards]
	s.mu.Lock()
	_ = s.h.RecordValue(us) // in range by construction
	s.mu.Unlock()
}

// summary merges the shards.
func (l *latencyHist) summary() Latency {
	all := hdrhistogram.New(histMinMicros, histMaxMicros, histDigits)
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		all.Merge(s.h)
		s.mu.Unlock()
	}
	if all.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		Count:  all.TotalCount(),
		MeanMs: all.Mean() / 1000,
		P50Ms:  ms(all.ValueAtQuantile(50)),
		P90Ms:  ms(all.ValueAtQuantile(90)),
		P99Ms:  ms(all.ValueAtQuantile(99)),
		P999Ms: ms(all.ValueAtQuantile(99.9)),
		MaxMs:  ms(all.Max()),
	}
}

// phaseStats are the live counters of one phase. Counters are atomic;
// maps are guarded by mu.
type phaseStats struct {
	rate float64

	scheduled, sent, skipped, writeErrors atomic.Int64
	acked, duplicateAcks, failed          atomic.Int64
	expected, deliveries, echoes          atomic.Int64
	duplicateDeliveries, gaps             atomic.Int64
	// Nanoseconds since the run's start: when sending began, and the
	// latest delivery.
	startNanos, endSendNanos, lastDeliveryNanos atomic.Int64

	ack, deliver *latencyHist

	mu         sync.Mutex
	serverCPU  float64          // server CPU cores over the phase
	readCalls  int64            // server read system calls over the phase
	writeCalls int64            // server write system calls over the phase
	lag        map[string]int64 // projection lag after the drain
	errors     map[string]int64 // error frames by code
	closeCodes map[string]int64 // server-initiated closes by code
}

func newPhaseStats(rate float64) *phaseStats {
	return &phaseStats{
		rate: rate, ack: newLatencyHist(), deliver: newLatencyHist(),
		errors: make(map[string]int64), closeCodes: make(map[string]int64),
	}
}

func (p *phaseStats) addError(code string) {
	p.mu.Lock()
	p.errors[code]++
	p.mu.Unlock()
}

func (p *phaseStats) addClose(code string) {
	p.mu.Lock()
	p.closeCodes[code]++
	p.mu.Unlock()
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// settled reports whether every sent message is answered and every
// expected delivery made.
func (p *phaseStats) settled() bool {
	return p.acked.Load()+p.failed.Load() >= p.sent.Load() && p.deliveries.Load() >= p.expected.Load()
}

// Latency summarises a latency distribution, in milliseconds.
type Latency struct {
	Count  int64   `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// Phase is what one phase (one rate) measured.
type Phase struct {
	// Rate is the target rate in msg/s; 0 is an idle phase.
	Rate            float64 `json:"rate"`
	DurationSeconds float64 `json:"duration_seconds"`
	// Scheduled messages = Rate × Duration; Sent of them were written to
	// a socket; Skipped were dropped because the generator's send queue
	// was full (the generator, not the server, could not keep up);
	// WriteErrors failed to write.
	Scheduled   int64 `json:"scheduled"`
	Sent        int64 `json:"sent"`
	Skipped     int64 `json:"skipped"`
	WriteErrors int64 `json:"write_errors"`
	// Acked messages got an ack frame; Failed got an error frame;
	// Unacked got neither before the drain timeout.
	Acked         int64 `json:"acked"`
	DuplicateAcks int64 `json:"duplicate_acks"`
	Failed        int64 `json:"failed"`
	Unacked       int64 `json:"unacked"`
	// ExpectedDeliveries is, over acked messages, the open sockets of the
	// conversation's members other than the sending socket; Deliveries
	// is the event frames those sockets received; Echoes are the
	// sending sockets' own copies (not counted as deliveries).
	ExpectedDeliveries  int64 `json:"expected_deliveries"`
	Deliveries          int64 `json:"deliveries"`
	Missing             int64 `json:"missing"`
	Echoes              int64 `json:"echoes"`
	DuplicateDeliveries int64 `json:"duplicate_deliveries"`
	Gaps                int64 `json:"gaps"`
	// Throughput over the sending window (messages) and from its start
	// to the last delivery (deliveries).
	MessagesPerSecond   float64 `json:"messages_per_second"`
	DeliveriesPerSecond float64 `json:"deliveries_per_second"`
	// Latencies from the scheduled send time, so a stalled generator or
	// a server applying backpressure shows in the figures.
	Ack     Latency `json:"ack"`
	Deliver Latency `json:"deliver"`
	// Errors counts error frames by code; CloseCodes counts sockets the
	// server closed, by close code ("abnormal" when the connection ended
	// without a close frame).
	Errors     map[string]int64 `json:"errors"`
	CloseCodes map[string]int64 `json:"close_codes"`
	// ProjectionLag is, per consumer group of the server, how many of
	// this phase's acked messages it had not applied when the drain
	// ended (from parley_consumer_records_total); absent groups kept up.
	ProjectionLag map[string]int64 `json:"projection_lag,omitempty"`
	// ServerCPUCores is the server's CPU seconds per second over the
	// phase, when a resource source is available.
	ServerCPUCores float64 `json:"server_cpu_cores,omitempty"`
	// ServerReadCallsPerMessage and ServerWriteCallsPerMessage are the
	// server's read and write system calls (sockets and files) over the
	// phase, per message acked, where /proc/PID/io could be read (-pid).
	// A message's system calls move far less from run to run than its
	// CPU time on a shared machine.
	ServerReadCallsPerMessage  float64 `json:"server_read_calls_per_message,omitempty"`
	ServerWriteCallsPerMessage float64 `json:"server_write_calls_per_message,omitempty"`
	// OK says whether the phase kept up: nothing skipped, failed, lost or
	// closed, and delivery p99 within the limit. Verdict says why not.
	OK      bool   `json:"ok"`
	Verdict string `json:"verdict"`
}

// snapshot turns the counters into a Phase.
func (p *phaseStats) snapshot(maxP99 time.Duration) Phase {
	out := Phase{
		Rate:                p.rate,
		Scheduled:           p.scheduled.Load(),
		Sent:                p.sent.Load(),
		Skipped:             p.skipped.Load(),
		WriteErrors:         p.writeErrors.Load(),
		Acked:               p.acked.Load(),
		DuplicateAcks:       p.duplicateAcks.Load(),
		Failed:              p.failed.Load(),
		ExpectedDeliveries:  p.expected.Load(),
		Deliveries:          p.deliveries.Load(),
		Echoes:              p.echoes.Load(),
		DuplicateDeliveries: p.duplicateDeliveries.Load(),
		Gaps:                p.gaps.Load(),
		Ack:                 p.ack.summary(),
		Deliver:             p.deliver.summary(),
	}
	out.Unacked = max(0, out.Sent-out.Acked-out.Failed)
	out.Missing = max(0, out.ExpectedDeliveries-out.Deliveries)
	start, endSend, last := p.startNanos.Load(), p.endSendNanos.Load(), p.lastDeliveryNanos.Load()
	if endSend > start {
		secs := time.Duration(endSend - start).Seconds()
		out.DurationSeconds = secs
		out.MessagesPerSecond = float64(out.Sent) / secs
	}
	if last > start {
		out.DeliveriesPerSecond = float64(out.Deliveries) / time.Duration(last-start).Seconds()
	}
	p.mu.Lock()
	out.Errors = maps.Clone(p.errors)
	out.CloseCodes = maps.Clone(p.closeCodes)
	out.ServerCPUCores = p.serverCPU
	if out.Acked > 0 && p.readCalls > 0 {
		out.ServerReadCallsPerMessage = float64(p.readCalls) / float64(out.Acked)
		out.ServerWriteCallsPerMessage = float64(p.writeCalls) / float64(out.Acked)
	}
	out.ProjectionLag = maps.Clone(p.lag)
	p.mu.Unlock()
	out.OK, out.Verdict = verdict(out, maxP99)
	return out
}

func verdict(p Phase, maxP99 time.Duration) (bool, string) {
	var errs int64
	for _, n := range p.Errors {
		errs += n
	}
	var closes int64
	for _, n := range p.CloseCodes {
		closes += n
	}
	switch {
	case p.Skipped > 0:
		return false, "generator could not keep up (skipped sends)"
	case p.WriteErrors > 0:
		return false, "socket writes failed"
	case errs > 0:
		return false, "error frames"
	case closes > 0:
		return false, "server closed sockets"
	case p.Unacked > 0:
		return false, "messages not acked within the drain"
	case p.Missing > 0:
		return false, "deliveries missing after the drain"
	case p.DuplicateDeliveries > 0 || p.Gaps > 0:
		return false, "duplicate deliveries or gaps"
	case len(p.ProjectionLag) > 0:
		return false, "projections behind after the drain"
	case p.Rate > 0 && p.Deliver.Count > 0 && p.Deliver.P99Ms > float64(maxP99)/float64(time.Millisecond):
		return false, "delivery p99 above " + maxP99.String()
	}
	return true, "ok"
}
