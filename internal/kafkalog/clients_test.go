// Tests of the clients' settings: reader errors reach the counter.
package kafkalog_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/kafkalog"
)

type counter struct{ n atomic.Int64 }

func (c *counter) Inc() { c.n.Add(1) }

// TestReaderErrorsAreCounted: a reader that cannot connect (nothing
// listens at its broker's address any more) reports each failed attempt
// through ReaderErrors, counted and logged as a warning — the hook the
// reconnect metric relies on.
func TestReaderErrorsAreCounted(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	var errs counter
	var logs bytes.Buffer
	// Written by the reader's goroutines, read after Close has waited for them.
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cluster := kafkalog.NewCluster([]string{gone})
	defer cluster.Close()
	r := kafkalog.NewPartitionReader(cluster, "chat.events", 0, kafkalog.ReaderErrors(log, &errs))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		// FetchMessage returns once the reader gives up or ctx ends;
		// the errors are what is observed.
		_, _ = r.FetchMessage(ctx)
	}()
	for errs.n.Load() == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("no reader error counted for a broker that is gone")
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "kafka reader") {
		t.Errorf("log %q, want a kafka reader warning", out)
	}
}
