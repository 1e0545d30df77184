// Consumer lag per group and partition, for /metrics.

package consumers

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// LagSource names a consumer group and the topic it consumes.
type LagSource struct {
	Group string
	Topic string
}

// Lag returns, per partition of src.Topic, how many records src.Group
// has not committed yet: the high watermark minus the committed offset
// (the whole partition when the group has committed nothing).
func Lag(ctx context.Context, client *kafka.Client, src LagSource) (map[int]int64, error) {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{src.Topic}})
	if err != nil || len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return nil, fmt.Errorf("reading metadata of %s: %w", src.Topic, err)
	}
	var parts []int
	var reqs []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		parts = append(parts, p.ID)
		reqs = append(reqs, kafka.LastOffsetOf(p.ID))
	}
	ends, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{src.Topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("listing offsets of %s: %w", src.Topic, err)
	}
	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: src.Group, Topics: map[string][]int{src.Topic: parts}})
	if err != nil {
		return nil, fmt.Errorf("fetching offsets of group %s: %w", src.Group, err)
	}
	done := map[int]int64{}
	for _, p := range committed.Topics[src.Topic] {
		if p.Error == nil && p.CommittedOffset >= 0 {
			done[p.Partition] = p.CommittedOffset
		}
	}
	lag := make(map[int]int64, len(parts))
	for _, po := range ends.Topics[src.Topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("listing offsets of %s/%d: %w", src.Topic, po.Partition, po.Error)
		}
		lag[po.Partition] = max(0, po.LastOffset-done[po.Partition])
	}
	return lag, nil
}

// MonitorLag sets gauge{group, topic, partition} to each source's lag
// every interval until ctx is done. A group that reads several topics
// has a series per topic: their partitions share numbers. Failures are
// logged and retried next time.
func MonitorLag(ctx context.Context, client *kafka.Client, sources []LagSource, gauge *prometheus.GaugeVec, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, src := range sources {
			qctx, cancel := context.WithTimeout(ctx, interval)
			lag, err := Lag(qctx, client, src)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("measuring consumer lag", "group", src.Group, "err", err)
				}
				continue
			}
			for p, n := range lag {
				gauge.WithLabelValues(src.Group, src.Topic, strconv.Itoa(p)).Set(float64(n))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
