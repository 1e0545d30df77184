package loadgen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/loadgen"
)

// startSystem starts every role of Parley in-process on free ports.
func startSystem(t *testing.T) *app.System {
	t.Helper()
	cfg, err := app.Load("test", []string{
		"-data-dir", t.TempDir(), "-http-addr", "127.0.0.1:0", "-kafka-listen", "127.0.0.1:0", "-s3-listen", "off",
		"-partitions", "4", "-log-level", "warn",
		// The test checks the tool, not the server's speed: on a busy
		// machine a command may take long, and must be answered anyway.
		"-command-timeout", "5m",
	}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sys, err := app.Start(ctx, cfg, app.All, cfg.Logger(logOutput()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sys.Stop(ctx); err != nil {
			t.Errorf("stopping: %v", err)
		}
	})
	return sys
}

func logOutput() io.Writer {
	if testing.Verbose() {
		return os.Stderr
	}
	return io.Discard
}

// checkSane asserts what any clean run must show: every socket up,
// every scheduled message sent and acked, exactly the deliveries the
// membership implies, no error of any kind, and ordered latencies.
func checkSane(t *testing.T, rep loadgen.Report, sockets int, recipients int64) {
	t.Helper()
	if rep.Connected != sockets || rep.Sockets != sockets {
		t.Errorf("connected %d of %d sockets, want %d", rep.Connected, rep.Sockets, sockets)
	}
	if len(rep.SetupErrors) != 0 {
		t.Errorf("setup errors: %v", rep.SetupErrors)
	}
	if rep.RecipientsPerMessage != float64(recipients) {
		t.Errorf("recipients per message = %g, want %d", rep.RecipientsPerMessage, recipients)
	}
	if len(rep.Phases) != 1 {
		t.Fatalf("%d phases, want 1", len(rep.Phases))
	}
	p := rep.Phases[0]
	if p.Scheduled == 0 || p.Sent != p.Scheduled || p.Skipped != 0 || p.WriteErrors != 0 {
		t.Errorf("scheduled %d, sent %d, skipped %d, write errors %d", p.Scheduled, p.Sent, p.Skipped, p.WriteErrors)
	}
	if p.Acked != p.Sent || p.Failed != 0 || p.Unacked != 0 || p.DuplicateAcks != 0 {
		t.Errorf("sent %d: acked %d, failed %d, unacked %d, duplicate acks %d", p.Sent, p.Acked, p.Failed, p.Unacked, p.DuplicateAcks)
	}
	if want := p.Sent * recipients; p.Deliveries != want || p.ExpectedDeliveries != want || p.Missing != 0 {
		t.Errorf("deliveries %d, expected %d, missing %d; want %d (%d sent × %d recipients)",
			p.Deliveries, p.ExpectedDeliveries, p.Missing, want, p.Sent, recipients)
	}
	if p.Echoes != p.Sent {
		t.Errorf("echoes %d, want one per message sent (%d)", p.Echoes, p.Sent)
	}
	if p.DuplicateDeliveries != 0 || p.Gaps != 0 || len(p.Errors) != 0 || len(p.CloseCodes) != 0 {
		t.Errorf("duplicates %d, gaps %d, errors %v, close codes %v", p.DuplicateDeliveries, p.Gaps, p.Errors, p.CloseCodes)
	}
	if !p.OK || p.Verdict != "ok" {
		t.Errorf("verdict %q, want ok", p.Verdict)
	}
	for name, l := range map[string]loadgen.Latency{"ack": p.Ack, "deliver": p.Deliver} {
		if name == "ack" && l.Count != p.Acked || name == "deliver" && l.Count != p.Deliveries {
			t.Errorf("%s latency count %d does not match its counter", name, l.Count)
		}
		if !(l.P50Ms > 0 && l.P50Ms <= l.P90Ms && l.P90Ms <= l.P99Ms && l.P99Ms <= l.P999Ms && l.P999Ms <= l.MaxMs) {
			t.Errorf("%s latency not positive and ordered: %+v", name, l)
		}
	}
	if p.MessagesPerSecond <= 0 || p.DeliveriesPerSecond <= 0 {
		t.Errorf("throughput %g msg/s, %g deliveries/s", p.MessagesPerSecond, p.DeliveriesPerSecond)
	}
	if len(rep.Server) == 0 || rep.Server[0].Source != "metrics" || rep.Server[0].Error != "" ||
		rep.Server[0].Before.RSSBytes <= 0 || rep.Server[0].End.CPUSeconds <= 0 {
		t.Errorf("server resources from /metrics: %+v", rep.Server)
	}
}

func TestRun_SmokeAgainstEmbeddedSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole system")
	}
	sys := startSystem(t)
	target := "http://" + sys.HTTPAddr()
	logger := slog.New(slog.NewTextHandler(logOutput(), nil))

	t.Run("200 sockets in direct pairs at 200 msg/s", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		var table bytes.Buffer
		rep, err := loadgen.Run(ctx, loadgen.Config{
			Target: target, Shape: loadgen.ShapeDirect, Sockets: 200, Rate: 200,
			// A drain ends as soon as everything is answered and
			// delivered; its bound is for a broken server only.
			Duration: 3 * time.Second, Drain: 5 * time.Minute, Logger: logger,
			// The figures are not under test: under -race on a busy
			// machine a p99 above the default 1 s must not fail it.
			MaxP99: time.Hour,
		}, &table)
		if err != nil {
			t.Fatal(err)
		}
		checkSane(t, rep, 200, 1)
		t.Logf("report:\n%s", table.String())
		if p := rep.Phases[0]; p.Sent != 600 {
			t.Errorf("sent %d, want 200/s × 3 s = 600", p.Sent)
		}
		for _, want := range []string{"send→ack", "send→deliver", "server resources", rep.RunID} {
			if !strings.Contains(table.String(), want) {
				t.Errorf("table lacks %q:\n%s", want, table.String())
			}
		}
		var b bytes.Buffer
		if err := loadgen.WriteJSON(&b, rep); err != nil {
			t.Fatal(err)
		}
		var back loadgen.Report
		if err := json.Unmarshal(b.Bytes(), &back); err != nil {
			t.Fatalf("report JSON does not parse: %v", err)
		}
		if back.Phases[0].Deliveries != rep.Phases[0].Deliveries || back.Phases[0].Deliver != rep.Phases[0].Deliver {
			t.Errorf("JSON round trip changed the report: %+v vs %+v", back.Phases[0], rep.Phases[0])
		}
	})

	t.Run("one group of 50 at 20 msg/s through the CLI, frame auth, /proc sampled", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		file := filepath.Join(t.TempDir(), "report.json")
		var stdout, stderr bytes.Buffer
		err := loadgen.Main(ctx, []string{
			"-target", target, "-shape", "group", "-group-size", "50", "-groups", "1",
			"-rate", "20", "-duration", "2s", "-drain", "5m", "-auth", "frame",
			"-pid", "self", "-json", file, "-log-level", "warn",
		}, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "-pid") {
			t.Errorf("-pid self: err = %v, want a flag error", err)
		}
		stdout.Reset()
		err = loadgen.Main(ctx, []string{
			"-target", target, "-shape", "group", "-group-size", "50", "-groups", "1",
			"-rate", "20", "-duration", "2s", "-drain", "5m", "-auth", "frame", "-max-p99", "1h",
			"-pid", strconv.Itoa(os.Getpid()), "-json", file, "-log-level", "warn",
		}, &stdout, &stderr)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var rep loadgen.Report
		if err := json.Unmarshal(raw, &rep); err != nil {
			t.Fatalf("-json output does not parse: %v", err)
		}
		checkSane(t, rep, 50, 49)
		if rep.Shape != "group" || rep.Conversations != 1 || rep.GroupSize != 50 || rep.Auth != "frame" {
			t.Errorf("report says shape %q, %d conversations of %d, auth %q", rep.Shape, rep.Conversations, rep.GroupSize, rep.Auth)
		}
		if p := rep.Phases[0]; p.Sent != 40 {
			t.Errorf("sent %d, want 20/s × 2 s = 40", p.Sent)
		}
		if runtime.GOOS == "linux" {
			if len(rep.Server) != 2 || rep.Server[1].Source != "proc" || rep.Server[1].Error != "" || rep.Server[1].Connected.RSSBytes <= 0 {
				t.Errorf("no /proc sample: %+v", rep.Server)
			}
			// The server runs in this process, whose /proc/PID/io a
			// process may always read.
			if p := rep.Phases[0]; p.ServerReadCallsPerMessage <= 0 || p.ServerWriteCallsPerMessage <= 0 {
				t.Errorf("system calls per message: %g reads, %g writes", p.ServerReadCallsPerMessage, p.ServerWriteCallsPerMessage)
			}
			if !strings.Contains(stdout.String(), "server system calls per message acked: ") {
				t.Errorf("no system calls in the report:\n%s", stdout.String())
			}
		}
		if !strings.Contains(stdout.String(), "group (1 × 50 members)") {
			t.Errorf("table:\n%s", stdout.String())
		}
	})

	t.Run("step rates run in turn and report the highest that kept up", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		rep, err := loadgen.Run(ctx, loadgen.Config{
			Target: target, Sockets: 20, StepRates: []float64{20, 40}, Duration: time.Second,
			Drain: 5 * time.Minute, MaxP99: time.Hour,
		}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Phases) != 2 {
			t.Fatalf("%d phases, want 2", len(rep.Phases))
		}
		for i, want := range []int64{20, 40} {
			p := rep.Phases[i]
			if p.Rate != float64(want) || p.Sent != want || p.Deliveries != want || !p.OK {
				t.Errorf("step %d: rate %g, sent %d, deliveries %d, verdict %q (lag %v); want %d each, ok", i+1, p.Rate, p.Sent, p.Deliveries, p.Verdict, p.ProjectionLag, want)
			}
		}
		if rep.SustainedRate != 40 {
			t.Errorf("sustained rate %g, want 40", rep.SustainedRate)
		}
	})

	// Not parallel, so it runs before the parallel subtests start: it
	// checks that the server ends up with no socket open.
	t.Run("a cancelled run stops at once and closes its sockets", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := loadgen.Run(ctx, loadgen.Config{
			Target: target, Sockets: 20, Rate: 20, Duration: 30 * time.Minute, Drain: 30 * time.Minute,
		}, io.Discard)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want the context's", err)
		}
		// A run that ignored its context would take an hour: stopping
		// within minutes, however busy the machine, is stopping at once.
		if d := time.Since(start); d > 5*time.Minute {
			t.Errorf("took %s to stop", d)
		}
		// The server counts the sockets gone once they closed.
		deadline := time.Now().Add(time.Minute)
		for open := wsConnections(t, target); open != 0; open = wsConnections(t, target) {
			if time.Now().After(deadline) {
				t.Fatalf("%d sockets still open on the server", open)
			}
			time.Sleep(50 * time.Millisecond) // polling with a deadline
		}
	})

	t.Run("idle sockets send nothing and are measured", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		rep, err := loadgen.Run(ctx, loadgen.Config{Target: target, Sockets: 40, Rate: 0, Duration: time.Second}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Connected != 40 || len(rep.Phases) != 1 {
			t.Fatalf("connected %d, %d phases", rep.Connected, len(rep.Phases))
		}
		if p := rep.Phases[0]; p.Rate != 0 || p.Sent != 0 || p.Deliveries != 0 || !p.OK || p.DurationSeconds < 1 {
			t.Errorf("idle phase: %+v", p)
		}
		if r := rep.Server[0]; r.Connected.RSSBytes <= 0 || r.Connected.AtSeconds <= r.Before.AtSeconds {
			t.Errorf("no samples around connecting: %+v", r)
		}
	})
}

// wsConnections reads parley_ws_connections from the server's metrics.
func wsConnections(t *testing.T, target string) int {
	t.Helper()
	resp, err := http.Get(target + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(line, "parley_ws_connections "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
	}
	t.Fatal("no parley_ws_connections in /metrics")
	return 0
}

func TestRun_RefusesNonLoopbackTargets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, target, allow string
	}{
		{"a public address", "http://192.0.2.10:8080", ""},
		{"a public address another host is allowed for", "http://192.0.2.10:8080", "192.0.2.11"},
		{"a private address", "https://10.1.2.3", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := loadgen.Run(ctx, loadgen.Config{Target: tc.target, AllowRemote: tc.allow, Duration: time.Second}, io.Discard)
			if !errors.Is(err, loadgen.ErrRemoteTarget) {
				t.Fatalf("err = %v, want ErrRemoteTarget", err)
			}
			if !strings.Contains(err.Error(), "-allow-remote") {
				t.Errorf("error %q does not say how to allow the target", err)
			}
		})
	}
}
