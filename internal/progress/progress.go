// Package progress prints the progress of a long run over a known number
// of records — a rebuild, a replay — as lines of done/total, the rate and
// an estimate of the time left. A Printer is safe for concurrent use.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Printer writes a line to its writer at most once per interval, and
// always once when done reaches total:
//
//	search rebuild: 120000/1000000 records (12.0%), 35012 records/s, ETA 25s
//
// The rate is the average since the first report.
type Printer struct {
	w        io.Writer
	label    string
	interval time.Duration
	now      func() time.Time

	mu           sync.Mutex
	start, last  time.Time
	printedFinal bool
}

// New returns a Printer that starts its lines with label. now is the
// clock; nil means time.Now.
func New(w io.Writer, label string, interval time.Duration, now func() time.Time) *Printer {
	if now == nil {
		now = time.Now
	}
	return &Printer{w: w, label: label, interval: interval, now: now}
}

// Report records that done of total records are through. Calls may come
// from several goroutines; a total that grows is fine.
func (p *Printer) Report(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.now()
	if p.start.IsZero() {
		p.start = t
	}
	final := done >= total
	if final && p.printedFinal {
		return
	}
	if !final && !p.last.IsZero() && t.Sub(p.last) < p.interval {
		return
	}
	p.last = t
	p.printedFinal = final
	elapsed := t.Sub(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed
	}
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	eta := "unknown"
	switch {
	case final:
		eta = "0s"
	case rate > 0:
		eta = time.Duration(float64(total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "%s: %d/%d records (%.1f%%), %.0f records/s, ETA %s\n", p.label, done, total, pct, rate, eta)
}
