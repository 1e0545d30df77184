// The server's CPU and memory during a run, from /metrics or /proc.

package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// Sample is one reading of the server's resident memory and CPU time.
type Sample struct {
	RSSBytes   int64   `json:"rss_bytes"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// AtSeconds is when it was taken, since the run's start.
	AtSeconds float64 `json:"at_seconds"`
	// ConsumerRecords is parley_consumer_records_total by consumer
	// group, from /metrics only: how far each projection has got.
	ConsumerRecords map[string]int64 `json:"-"`
	// ReadCalls and WriteCalls are the system calls the process has made
	// so far to read and to write (sockets and files alike: syscr and
	// syscw of /proc/PID/io, over every thread), from "proc" only; zero
	// where that file cannot be read.
	ReadCalls  int64 `json:"read_calls,omitempty"`
	WriteCalls int64 `json:"write_calls,omitempty"`
}

// Resources is the server's memory and CPU over a run, from one source.
type Resources struct {
	// Source is "metrics" (the server's /metrics process collector) or
	// "proc" (/proc/PID of a local process).
	Source string `json:"source"`
	// Before is taken once conversations exist, just before connecting;
	// Connected once every socket is up; End after the last phase, before
	// closing.
	Before    Sample `json:"before"`
	Connected Sample `json:"connected"`
	End       Sample `json:"end"`
	// PeakRSSBytes is the largest RSS seen, sampled every second.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// RSSPerConnectionBytes is the RSS growth from Before over the
	// sockets connected: to End for an idle run (sockets held for the
	// whole duration, the figure of memory per connection), else to
	// Connected (before messages add their own memory).
	RSSPerConnectionBytes float64 `json:"rss_per_connection_bytes"`
	// CPUSeconds from Before to End, and that per second of wall time.
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUCores   float64 `json:"cpu_cores"`
	// Error is why the source could not be read, if it could not.
	Error string `json:"error,omitempty"`
}

// source reads one resource sample.
type source struct {
	name string
	read func(ctx context.Context) (Sample, error)
}

// metricsSource reads process_resident_memory_bytes and
// process_cpu_seconds_total from url.
func metricsSource(client *http.Client, url string) source {
	return source{name: "metrics", read: func(ctx context.Context) (Sample, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return Sample{}, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return Sample{}, fmt.Errorf("reading metrics: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return Sample{}, fmt.Errorf("reading metrics: status %d", resp.StatusCode)
		}
		return parseMetrics(io.LimitReader(resp.Body, 16<<20))
	}}
}

// parseMetrics picks the two process metrics out of a Prometheus text
// exposition.
func parseMetrics(r io.Reader) (Sample, error) {
	var s Sample
	var haveRSS, haveCPU bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		if group, ok := strings.CutPrefix(name, `parley_consumer_records_total{group="`); ok {
			if group, ok = strings.CutSuffix(group, `"}`); ok {
				if s.ConsumerRecords == nil {
					s.ConsumerRecords = make(map[string]int64)
				}
				s.ConsumerRecords[group] = int64(v)
			}
			continue
		}
		switch name {
		case "process_resident_memory_bytes":
			s.RSSBytes, haveRSS = int64(v), true
		case "process_cpu_seconds_total":
			s.CPUSeconds, haveCPU = v, true
		}
	}
	if err := sc.Err(); err != nil {
		return Sample{}, fmt.Errorf("reading metrics: %w", err)
	}
	if !haveRSS || !haveCPU {
		return Sample{}, errors.New("metrics lack process_resident_memory_bytes or process_cpu_seconds_total")
	}
	return s, nil
}

// procSource reads VmRSS, utime+stime and, where the kernel lets this
// user read them, the read and write system calls of a local process.
func procSource(pid int) source {
	return source{name: "proc", read: func(context.Context) (Sample, error) {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return Sample{}, fmt.Errorf("reading process status: %w", err)
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return Sample{}, fmt.Errorf("reading process stat: %w", err)
		}
		s, err := parseProc(status, stat)
		if err != nil {
			return Sample{}, err
		}
		// /proc/PID/io needs the right to trace the process: without
		// it the figures are left out, not the sample.
		if ioStats, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
			s.ReadCalls, s.WriteCalls = parseProcIO(ioStats)
		}
		return s, nil
	}}
}

// parseProcIO returns syscr and syscw of a /proc/PID/io; zero for a
// field that is missing or malformed.
func parseProcIO(b []byte) (reads, writes int64) {
	for line := range bytes.Lines(b) {
		name, value, ok := strings.Cut(strings.TrimSpace(string(line)), ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes
}

func parseProc(status, stat []byte) (Sample, error) {
	var s Sample
	found := false
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			return Sample{}, fmt.Errorf("unexpected VmRSS line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return Sample{}, fmt.Errorf("parsing VmRSS: %w", err)
		}
		s.RSSBytes, found = kb*1024, true
	}
	if !found {
		return Sample{}, errors.New("no VmRSS in process status")
	}
	// The command name may contain spaces and parentheses: fields start
	// after the last ')'. utime and stime are fields 14 and 15, i.e. the
	// 12th and 13th after it.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return Sample{}, errors.New("malformed process stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return Sample{}, errors.New("short process stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return Sample{}, fmt.Errorf("parsing process stat: %w", err)
	}
	s.CPUSeconds = float64(ut+st) / clockTicks
	return s, nil
}

// monitor samples sources at the run's marks and every second between
// them for the peak RSS. Safe for concurrent use.
type monitor struct {
	t0      time.Time
	sources []source

	mu  sync.Mutex
	res []Resources
}

func newMonitor(t0 time.Time, sources []source) *monitor {
	m := &monitor{t0: t0, sources: sources, res: make([]Resources, len(sources))}
	for i, s := range sources {
		m.res[i].Source = s.name
	}
	return m
}

type mark int

const (
	markBefore mark = iota
	markConnected
	markEnd
	markPeak
)

// sample reads every source and files the readings under mk; it returns
// the first source's reading, if any, with the system calls of the
// source that counts them.
func (m *monitor) sample(ctx context.Context, mk mark) (Sample, bool) {
	var first Sample
	var ok bool
	var reads, writes int64
	for i, src := range m.sources {
		s, err := src.read(ctx)
		s.AtSeconds = time.Since(m.t0).Seconds()
		m.mu.Lock()
		r := &m.res[i]
		if err != nil {
			// A read cut short by the end of the run is no failure.
			if r.Error == "" && ctx.Err() == nil {
				r.Error = err.Error()
			}
			m.mu.Unlock()
			continue
		}
		r.PeakRSSBytes = max(r.PeakRSSBytes, s.RSSBytes)
		switch mk {
		case markBefore:
			r.Before = s
		case markConnected:
			r.Connected = s
		case markEnd:
			r.End = s
		}
		m.mu.Unlock()
		if s.ReadCalls > 0 {
			reads, writes = s.ReadCalls, s.WriteCalls
		}
		if i == 0 {
			first, ok = s, true
		}
	}
	first.ReadCalls, first.WriteCalls = reads, writes
	return first, ok
}

// run samples every second for the peak until ctx is done.
func (m *monitor) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.sample(ctx, markPeak)
		}
	}
}

// results computes the derived figures.
func (m *monitor) results(connected int, idle bool) []Resources {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Resources, len(m.res))
	for i, r := range m.res {
		after := r.Connected
		if idle {
			after = r.End
		}
		if r.Before.AtSeconds > 0 && after.AtSeconds > 0 && connected > 0 {
			r.RSSPerConnectionBytes = float64(after.RSSBytes-r.Before.RSSBytes) / float64(connected)
		}
		if r.Before.AtSeconds > 0 && r.End.AtSeconds > r.Before.AtSeconds {
			r.CPUSeconds = r.End.CPUSeconds - r.Before.CPUSeconds
			r.CPUCores = r.CPUSeconds / (r.End.AtSeconds - r.Before.AtSeconds)
		}
		out[i] = r
	}
	return out
}
