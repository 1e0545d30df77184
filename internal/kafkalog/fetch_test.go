package kafkalog_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/embeddedkafka"
	"github.com/parley-chat/parley/internal/kafkalog"
)

// lockedBuffer is a bytes.Buffer safe for the reader's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFetchMessageRidesOutABrokerRestart: while the broker is down,
// FetchMessage keeps waiting past the failures kafka-go's reader hands
// back (each logged), and returns the next record once the broker is
// back on the same address — where the reader's own FetchMessage would
// have returned the first failure and left the partition unread.
func TestFetchMessageRidesOutABrokerRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, err := embeddedkafka.Start(embeddedkafka.Config{Dir: dir, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The same address before and after the restart.
	cluster := kafkalog.NewCluster([]string{addr})
	defer cluster.Close()
	if _, err := kafkalog.NewClient(cluster).CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: "blip", NumPartitions: 1, ReplicationFactor: 1}},
	}); err != nil {
		t.Fatal(err)
	}
	r := kafkalog.NewPartitionReader(cluster, "blip", 0)
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		t.Fatal(err)
	}
	b.Close()

	var logs lockedBuffer
	type result struct {
		m   kafka.Message
		err error
	}
	got := make(chan result, 1)
	go func() {
		m, err := kafkalog.FetchMessage(ctx, r, slog.New(slog.NewTextHandler(&logs, nil)))
		got <- result{m, err}
	}()
	for !strings.Contains(logs.String(), "kafka reader unavailable; retrying") {
		select {
		case res := <-got:
			t.Fatalf("FetchMessage returned while the broker was down: %v", res.err)
		case <-ctx.Done():
			t.Fatal("the reader handed back no failure while the broker was down")
		case <-time.After(20 * time.Millisecond):
		}
	}

	b, err = embeddedkafka.Start(embeddedkafka.Config{Dir: dir, Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	w := kafkalog.NewWriter(cluster, "blip")
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("after the restart")}); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-got:
		if res.err != nil || string(res.m.Value) != "after the restart" {
			t.Fatalf("FetchMessage after the restart: %q, %v", res.m.Value, res.err)
		}
	case <-ctx.Done():
		t.Fatal("FetchMessage did not return the record written after the restart")
	}
}
