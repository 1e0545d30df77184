package app

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

func TestAutoPartitions(t *testing.T) {
	for _, c := range []struct {
		existing         int
		exists, embedded bool
		want             int
	}{
		{0, false, true, 4},
		{0, false, false, 12},
		{12, true, true, 12},
		{3, true, false, 3},
	} {
		if got := autoPartitions(c.existing, c.exists, c.embedded); got != c.want {
			t.Errorf("autoPartitions(%d, %v, %v) = %d, want %d", c.existing, c.exists, c.embedded, got, c.want)
		}
	}
}

// TestPartitionsOnTheEmbeddedBroker: by default a new data directory gets
// 4 partitions, and one whose topics were made with 12 keeps them (the
// count is fixed once chosen: a start must not fail on it); an explicit
// count that differs from the existing one is refused.
func TestPartitionsOnTheEmbeddedBroker(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := func(dir string, args ...string) (*System, error) {
		t.Helper()
		cfg, err := Load("test", append([]string{"-data-dir", dir, "-http-addr", "127.0.0.1:0", "-kafka-listen", "127.0.0.1:0", "-s3-listen", "off", "-log-level", "warn"}, args...),
			func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return Start(ctx, cfg, Roles{}, cfg.Logger(io.Discard))
	}
	partitions := func(sys *System) int {
		t.Helper()
		n, err := kafkalog.Partitions(ctx, kafkalog.NewClient(sys.Kafka()), schemas.TopicEvents)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	stop := func(sys *System) {
		t.Helper()
		if err := sys.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}

	fresh, err := start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if n := partitions(fresh); n != 4 {
		t.Errorf("a new data directory has %d partitions, want 4", n)
	}
	stop(fresh)

	dir := t.TempDir()
	made, err := start(dir, "-partitions", "12")
	if err != nil {
		t.Fatal(err)
	}
	stop(made)
	again, err := start(dir)
	if err != nil {
		t.Fatalf("restart with the default on 12 existing partitions: %v", err)
	}
	if n := partitions(again); n != 12 {
		t.Errorf("after a restart with the default the topics have %d partitions, want the existing 12", n)
	}
	stop(again)
	if sys, err := start(dir, "-partitions", "4"); err == nil {
		stop(sys)
		t.Error("a start with 4 partitions configured on 12 existing ones succeeded; want it refused")
	}
}
