package replay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/contentkeys/pebblekeys"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/replay"
	"github.com/parley-chat/parley/schemas"
)

// benchLog writes n chat.message.sent.v3 records over 100 conversations
// to a 6-partition chat.events of a cluster of the benchmark's own.
func benchLog(b *testing.B, n int) (cluster *kafkalog.Cluster, topic string) {
	b.Helper()
	c := kafkatest.Start(b, kafkatest.Topics(kafkalog.Topology{Partitions: 6}))
	topic = c.Names.Topic(schemas.TopicEvents)
	value, err := os.ReadFile(filepath.Join("..", "..", "schemas", "testdata", schemas.TypeMessageSentV3+".json"))
	if err != nil {
		b.Fatal(err)
	}
	w := kafkalog.NewWriter(c.Cluster, topic, kafkalog.BatchSize(1000))
	defer w.Close()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	msgs := make([]kafka.Message, 0, 5000)
	for i := range n {
		a := kafkalog.NewAttributes(schemas.TypeMessageSentV3, fmt.Sprintf("g_%d", i%100), at)
		a.Seq, a.HasSeq = uint64(i/100+1), true
		msgs = append(msgs, kafkalog.Encode(a, value))
		if len(msgs) == cap(msgs) || i == n-1 {
			if err := w.WriteMessages(context.Background(), msgs...); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	return c.Cluster, topic
}

func benchmarkReplay(b *testing.B, n int, check replay.Check, sink func(io.Writer) closingSink) {
	cluster, topic := benchLog(b, n)
	b.ResetTimer()
	var total int64
	start := time.Now()
	for b.Loop() {
		s := sink(io.Discard)
		st, err := replay.Run(context.Background(), replay.Config{Kafka: cluster, Topic: topic, FromOffset: -1, Check: check}, s)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		if st.Written != int64(n) {
			b.Fatalf("wrote %d events; want %d", st.Written, n)
		}
		total += st.Written
	}
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "events/s")
}

type closingSink interface {
	replay.Sink
	Close() error
}

func ndjson(w io.Writer) closingSink    { return replay.NewNDJSON(w) }
func parquetOf(w io.Writer) closingSink { return replay.NewParquet(w) }

// The four benchmarks read the same 100,000 records (about 380 bytes of
// value each) from a 6-partition topic of the embedded broker, through
// kafka-go partition readers, to a discarded output.

func BenchmarkReplayNDJSON_100kEvents(b *testing.B) {
	benchmarkReplay(b, 100_000, replay.CheckSchema, ndjson)
}

func BenchmarkReplayNDJSONDecodeOnly_100kEvents(b *testing.B) {
	benchmarkReplay(b, 100_000, replay.CheckDecode, ndjson)
}

func BenchmarkReplayParquet_100kEvents(b *testing.B) {
	benchmarkReplay(b, 100_000, replay.CheckSchema, parquetOf)
}

func BenchmarkReplayParquetDecodeOnly_100kEvents(b *testing.B) {
	benchmarkReplay(b, 100_000, replay.CheckDecode, parquetOf)
}

// BenchmarkReplayNDJSONSealedDecrypt_100kEvents replays 100,000 sealed
// chat.message.sent.v3 records (crypto-shredding) over 100 senders,
// opening each with the keyring, as `parley replay -decrypt` does.
func BenchmarkReplayNDJSONSealedDecrypt_100kEvents(b *testing.B) {
	const n = 100_000
	c := kafkatest.Start(b, kafkatest.Topics(kafkalog.Topology{Partitions: 6}))
	topic := c.Names.Topic(schemas.TopicEvents)
	value, err := os.ReadFile(filepath.Join("..", "..", "schemas", "testdata", schemas.TypeMessageSentV3+".json"))
	if err != nil {
		b.Fatal(err)
	}
	store, err := pebblekeys.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	keys, err := contentkeys.New(store, make([]byte, contentkeys.KEKSize))
	if err != nil {
		b.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(value, &ev); err != nil {
		b.Fatal(err)
	}
	w := kafkalog.NewWriter(c.Cluster, topic, kafkalog.BatchSize(1000))
	defer w.Close()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	msgs := make([]kafka.Message, 0, 5000)
	for i := range n {
		ev["sender_id"] = fmt.Sprintf("user-%d", i%100)
		v, _ := json.Marshal(ev)
		a := kafkalog.NewAttributes(schemas.TypeMessageSentV3, fmt.Sprintf("g_%d", i%100), at)
		a.Seq, a.HasSeq = uint64(i/100+1), true
		sealed, ok, err := keys.SealEvent(context.Background(), a, v)
		if err != nil || !ok {
			b.Fatalf("sealing: %v", err)
		}
		a.Sealed = true
		msgs = append(msgs, kafkalog.Encode(a, sealed))
		if len(msgs) == cap(msgs) || i == n-1 {
			if err := w.WriteMessages(context.Background(), msgs...); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	b.ResetTimer()
	var total int64
	start := time.Now()
	for b.Loop() {
		s := replay.NewNDJSON(io.Discard)
		st, err := replay.Run(context.Background(), replay.Config{Kafka: c.Cluster, Topic: topic, FromOffset: -1, Check: replay.CheckDecode, Opener: keys}, s)
		if err != nil {
			b.Fatal(err)
		}
		if st.Written != n {
			b.Fatalf("wrote %d events (%d invalid); want %d", st.Written, st.Invalid, n)
		}
		total += st.Written
	}
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "events/s")
}
