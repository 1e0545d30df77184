// Writing a run's report as a table or JSON.

package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteTable writes rep as the human-readable table of `parley bench`.
func WriteTable(w io.Writer, rep Report) error {
	ew := &errWriter{w: w}
	shape := rep.Shape
	if rep.Shape == ShapeGroup {
		shape = fmt.Sprintf("group (%d × %d members)", rep.Conversations, rep.GroupSize)
	}
	ew.printf("parley bench  run %s  target %s (%s protocol)\n", rep.RunID, rep.Target, rep.Protocol)
	sources := "kernel-chosen source address"
	if rep.SourceAddrs > 0 {
		sources = fmt.Sprintf("%d source addresses", rep.SourceAddrs)
	}
	ew.printf("shape %s, %d users, %d conversations; sockets %d/%d connected (auth %s, %s); %.2f recipients/message\n",
		shape, rep.Users, rep.Conversations, rep.Connected, rep.Sockets, rep.Auth, sources, rep.RecipientsPerMessage)
	ew.printf("setup: conversations %.1fs, connect %.1fs; setup errors: %s\n\n", rep.SetupSeconds, rep.ConnectSeconds, counts(rep.SetupErrors))

	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\trate/s\tsecs\tsent\tacked\tskipped\tunacked\tdeliveries\texpected\tmsg/s\tdeliv/s\tdeliv p99 ms\tsrv cores\tverdict\t")
	for i, p := range rep.Phases {
		cpu := "-"
		if p.ServerCPUCores > 0 {
			cpu = fmt.Sprintf("%.2f", p.ServerCPUCores)
		}
		fmt.Fprintf(tw, "%d\t%g\t%.1f\t%d\t%d\t%d\t%d\t%d\t%d\t%.0f\t%.0f\t%.1f\t%s\t%s\t\n",
			i+1, p.Rate, p.DurationSeconds, p.Sent, p.Acked, p.Skipped, p.Unacked, p.Deliveries, p.ExpectedDeliveries,
			p.MessagesPerSecond, p.DeliveriesPerSecond, p.Deliver.P99Ms, cpu, p.Verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for i, p := range rep.Phases {
		if p.Rate == 0 {
			continue
		}
		ew.printf("\nphase %d latency (ms, from scheduled send)\n", i+1)
		tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "\tcount\tmean\tp50\tp90\tp99\tp99.9\tmax\t")
		for _, row := range []struct {
			name string
			l    Latency
		}{{"send→ack", p.Ack}, {"send→deliver", p.Deliver}} {
			fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n",
				row.name, row.l.Count, row.l.MeanMs, row.l.P50Ms, row.l.P90Ms, row.l.P99Ms, row.l.P999Ms, row.l.MaxMs)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		ew.printf("echoes %d, duplicate deliveries %d, gaps %d, write errors %d, failed %d, duplicate acks %d\n",
			p.Echoes, p.DuplicateDeliveries, p.Gaps, p.WriteErrors, p.Failed, p.DuplicateAcks)
		ew.printf("errors by code: %s; close codes: %s; projections behind after the drain: %s\n",
			counts(p.Errors), counts(p.CloseCodes), counts(p.ProjectionLag))
		if p.ServerReadCallsPerMessage > 0 {
			ew.printf("server system calls per message acked: %.1f reads, %.1f writes\n",
				p.ServerReadCallsPerMessage, p.ServerWriteCallsPerMessage)
		}
	}
	if len(rep.Phases) > 0 && rep.Phases[0].Rate == 0 {
		p := rep.Phases[0]
		ew.printf("\nidle: close codes %s, errors %s\n", counts(p.CloseCodes), counts(p.Errors))
	}
	if len(rep.StepRates) > 0 {
		switch {
		case rep.SustainedRate > 0:
			ew.printf("\nsustained rate (highest step that kept up): %g msg/s", rep.SustainedRate)
		default:
			ew.printf("\nsustained rate: no step kept up")
		}
		if n := len(rep.Phases); n < len(rep.StepRates) && n > 0 && !rep.Phases[n-1].OK {
			ew.printf("; stopped after step %d of %d (%s)", n, len(rep.StepRates), rep.Phases[n-1].Verdict)
		}
		ew.printf("\n")
	}
	ew.printf("\nserver resources\n")
	for _, s := range rep.Server {
		if s.Error != "" && s.Before.AtSeconds == 0 {
			ew.printf("  %-7s unavailable: %s\n", s.Source, s.Error)
			continue
		}
		ew.printf("  %-7s RSS before %s, connected %s, end %s, peak %s; %s/connection; CPU %.1fs = %.2f cores\n",
			s.Source, mib(s.Before.RSSBytes), mib(s.Connected.RSSBytes), mib(s.End.RSSBytes), mib(s.PeakRSSBytes),
			kib(s.RSSPerConnectionBytes), s.CPUSeconds, s.CPUCores)
	}
	return ew.err
}

// WriteJSON writes rep as indented JSON.
func WriteJSON(w io.Writer, rep Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func counts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

func mib(b int64) string   { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/(1<<10)) }

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, a ...any) { fmt.Fprintf(e, format, a...) }
