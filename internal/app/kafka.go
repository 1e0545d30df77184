// The log side of a process: the embedded broker, the topics, and the
// Kafka readiness check.

package app

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/parley-chat/parley/internal/embeddedkafka"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/retry"
	"github.com/parley-chat/parley/schemas"
)

// startBroker starts the embedded broker over the data dir; it returns
// once the broker listens.
func (s *System) startBroker() error {
	b, err := embeddedkafka.Start(embeddedkafka.Config{Dir: filepath.Join(s.cfg.DataDir, "kafka"), Addr: s.cfg.KafkaListen, Logger: s.log})
	if err != nil {
		return err
	}
	s.broker = b
	s.brokers = []string{b.Addr()}
	s.log.Info("embedded kafka listening", "addr", b.Addr())
	return nil
}

// provision creates the topics, retrying for a minute while the cluster
// is not ready; a partition count that differs from the configured one
// is final.
func (s *System) provision(ctx context.Context) error {
	client := kafkalog.NewClient(s.brokers)
	topo := s.topology()
	b := retry.Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second, For: time.Minute, OnRetry: func(err error, wait time.Duration) {
		s.log.Warn("kafka not ready; retrying", "err", err, "backoff", wait)
	}}
	return b.Do(ctx, func(ctx context.Context) error {
		err := kafkalog.Provision(ctx, client, topo)
		if errors.Is(err, kafkalog.ErrPartitionMismatch) {
			return retry.Permanent(err)
		}
		return err
	})
}

func (s *System) topology() kafkalog.Topology {
	return kafkalog.Topology{Names: s.names, Partitions: s.cfg.Partitions, ReplicationFactor: s.cfg.ReplicationFactor, MinInsyncReplicas: s.cfg.MinInsyncReplicas}
}

// kafkaReady is the /readyz check of the log: chat.events answers.
func (s *System) kafkaReady(ctx context.Context) error {
	_, err := kafkalog.Partitions(ctx, kafkalog.NewClient(s.brokers), s.names.Topic(schemas.TopicEvents))
	return err
}
