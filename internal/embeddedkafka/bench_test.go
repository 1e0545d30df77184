package embeddedkafka_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/cputime"
	"github.com/parley-chat/parley/internal/embeddedkafka"
	"github.com/parley-chat/parley/internal/kafkalog"
)

// BenchmarkProduce: one record appended and acknowledged at a time, by a
// client of the process that runs the broker over the broker's local
// socket (Broker.Dial, as Parley's own clients) and over its TCP address
// (as another process's). Beside the time per record it reports the
// process's CPU per record (getrusage), client and broker together: what
// a request and its answer cost the machine either way.
//
//	go test -run '^$' -bench Produce -benchtime 20000x -count 3 ./internal/embeddedkafka
func BenchmarkProduce(b *testing.B) {
	bk, err := embeddedkafka.Start(embeddedkafka.Config{Dir: b.TempDir(), Addr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer bk.Close()
	runs := 0
	for _, c := range []struct {
		name string
		opts []kafkalog.ClusterOption
	}{
		{"local", []kafkalog.ClusterOption{kafkalog.DialWith(bk.Dial)}},
		{"tcp", nil},
	} {
		b.Run(c.name, func(b *testing.B) {
			cluster := kafkalog.NewCluster([]string{bk.Addr()}, c.opts...)
			defer cluster.Close()
			ctx := context.Background()
			runs++
			topic := fmt.Sprintf("produce-%d", runs)
			createTopics(ctx, b, cluster, kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1})
			w := kafkalog.NewWriter(cluster, topic, kafkalog.FlushAtOnce())
			defer w.Close()
			record := kafka.Message{Value: make([]byte, 200)}
			// The first write dials and reads the metadata.
			if err := w.WriteMessages(ctx, record); err != nil {
				b.Fatal(err)
			}
			cpu0, err := cputime.Process()
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := w.WriteMessages(ctx, record); err != nil {
					b.Fatal(err)
				}
			}
			cpu, err := cputime.Process()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64((cpu-cpu0).Microseconds())/float64(b.N), "cpu-µs/record")
		})
	}
}
