// The log side of a process: the embedded broker, the topics, the Kafka
// readiness check, and the free space the embedded log has left.

package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/internal/diskspace"
	"github.com/parley-chat/parley/internal/embeddedkafka"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/retry"
	"github.com/parley-chat/parley/schemas"
)

// startBroker starts the embedded broker over the data dir; it returns
// once the broker listens.
func (s *System) startBroker() error {
	b, err := embeddedkafka.Start(s.cfg.EmbeddedBroker(s.log))
	if err != nil {
		return err
	}
	s.broker = b
	s.log.Info("embedded kafka listening", "addr", b.Addr())
	return nil
}

// provision creates the topics, retrying for a minute while the cluster
// is not ready; a partition count that differs from the configured one
// is final.
func (s *System) provision(ctx context.Context) error {
	client := kafkalog.NewClient(s.kafka)
	topo := s.topology()
	b := retry.Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second, For: time.Minute, OnRetry: func(err error, wait time.Duration) {
		s.log.Warn("kafka not ready; retrying", "err", err, "backoff", wait)
	}}
	return b.Do(ctx, func(ctx context.Context) error {
		if s.cfg.Partitions == 0 {
			n, exists, err := kafkalog.ExistingPartitions(ctx, client, s.names.Topic(schemas.TopicEvents))
			if err != nil {
				return err
			}
			s.cfg.Partitions = autoPartitions(n, exists, s.cfg.Embedded())
			s.log.Info("topic partitions", "count", s.cfg.Partitions, "existing", exists)
			topo = s.topology()
		}
		err := kafkalog.Provision(ctx, client, topo)
		if errors.Is(err, kafkalog.ErrPartitionMismatch) {
			return retry.Permanent(err)
		}
		return err
	})
}

// autoPartitions is the partition count PARLEY_PARTITIONS=auto (the
// default) gives: the existing topics' count, for it is fixed once
// chosen; else 4 on the embedded broker, which runs on one machine, and
// 12 on a Kafka cluster, whose consumer groups may grow to that many
// members. Partitions beyond what a machine's CPUs use cost: every one is
// a batch, a request and a fetch of its own for each hop of the few
// messages it gets; on 2 CPUs at 2,000 msg/s, 4 rather than 12 took the
// send→deliver p99 from 22–26 ms to 15–17 ms and 0.1 cores off the
// server (BENCHMARKS.md, "Four partitions on one machine").
func autoPartitions(existing int, exists, embedded bool) int {
	switch {
	case exists:
		return existing
	case embedded:
		return 4
	}
	return 12
}

func (s *System) topology() kafkalog.Topology {
	return kafkalog.Topology{Names: s.names, Partitions: s.cfg.Partitions, ReplicationFactor: s.cfg.ReplicationFactor, MinInsyncReplicas: s.cfg.MinInsyncReplicas}
}

// kafkaReady is the /readyz check of the log: chat.events answers.
func (s *System) kafkaReady(ctx context.Context) error {
	_, err := kafkalog.Partitions(ctx, kafkalog.NewClient(s.kafka), s.names.Topic(schemas.TopicEvents))
	return err
}

// diskCheckInterval is how often the data directory's free space is
// measured: what the node appends within one interval comes out of the
// reserve.
const diskCheckInterval = time.Second

// watchDisk measures the free space of the file system holding the data
// directory — the embedded broker's log and the stores — every
// diskCheckInterval until the roles stop. The gateways refuse writes
// while it is below PARLEY_DISK_RESERVE (package diskspace).
func (s *System) watchDisk(runCtx context.Context) error {
	g, err := diskspace.NewGuard(s.cfg.DataDir, uint64(s.cfg.DiskReserve), s.log.With("component", "disk"))
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	s.disk = g
	s.metrics.WatchDisk(g.FreeBytes, g.Reserve(), g.Low)
	s.wg.Go(func() { g.Run(runCtx, diskCheckInterval) })
	return nil
}
