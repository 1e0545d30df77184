package app

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
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
	cfg, err := Load("test", []string{
		"-data-dir", t.TempDir(), "-http-addr", "127.0.0.1:0", "-kafka-listen", "127.0.0.1:0", "-s3-listen", "off",
		"-pprof-addr", taken.Addr().String(), "-log-level", "warn",
	}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
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
