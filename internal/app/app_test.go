package app

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
)

// A Start that fails after the HTTP server is serving stops what it
// started and returns the error instead of waiting for the server.
func TestStartFailsWhenThePprofAddressIsTaken(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := embeddedConfig(t, "-pprof-addr", taken.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		sys, err := Start(ctx, cfg, Roles{Decider: true}, cfg.Logger(io.Discard))
		if err == nil {
			_ = sys.Stop(ctx)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "pprof") {
			t.Fatalf("Start: got %v, want the pprof listen error", err)
		}
	case <-ctx.Done():
		t.Fatal("Start did not return")
	}
}

// TestStopClosesTheKafkaConnections: a stopped system leaves nothing that
// goes on asking its brokers for metadata — in a process that outlives
// it, that would dial a broker that is gone, and whatever listens on its
// port next. Not parallel: it counts the process's goroutines.
func TestStopClosesTheKafkaConnections(t *testing.T) {
	cfg := embeddedConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := kafkatest.MetadataRefreshers()
	sys, err := Start(ctx, cfg, All, cfg.Logger(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if n := kafkatest.MetadataRefreshers(); n <= base {
		_ = sys.Stop(ctx)
		t.Fatalf("%d metadata refreshers with a system running, %d before: the test cannot see them", n, base)
	}
	if err := sys.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitMetadataRefreshersAtMost(t, base, "the stopped system's")
}

// embeddedConfig is the configuration of a test's system on the embedded
// default: a data dir of the test's, free ports, no S3 server, warnings
// only, and args.
func embeddedConfig(t *testing.T, args ...string) Config {
	t.Helper()
	cfg, err := Load("test", append([]string{
		"-data-dir", t.TempDir(), "-http-addr", "127.0.0.1:0", "-kafka-listen", "127.0.0.1:0", "-s3-listen", "off", "-log-level", "warn",
	}, args...), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
