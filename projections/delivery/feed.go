// The Feed interface, and the partition readers both feeds run.

package delivery

import (
	"context"
	"fmt"
	"sync"

	"github.com/parley-chat/parley/consumers"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// Feed is a node's source of records: how events, replies and signals
// reach its Hub, and so what the hub knows of a conversation. Its two
// implementations are broadcast (broadcast.go: every node reads every
// record) and targeted (targeted.go: the router sends each node what it
// needs); Config.Node chooses. A feed hands what it reads to its hub's
// sessions (Hub.pushTo) and waiters; its methods are safe for concurrent
// use.
type Feed interface {
	// Run reads the feed's topics until ctx is done, closing the hub's
	// Ready channel once it follows every partition.
	Run(ctx context.Context) error
	// Conversation returns a conversation's summary with its members, as
	// the node knows it.
	Conversation(ctx context.Context, id string) (history.Conversation, error)
	// firstEvent is told of the first event of a conversation the
	// session did not resume, before it is written to sink, and reports
	// whether the event is not to be written. It is called from the
	// session's Run.
	firstEvent(ctx context.Context, s *Session, sink Sink, it *item) (skip bool, err error)
}

// newFeed returns the feed cfg selects for h.
func newFeed(h *Hub) Feed {
	if h.cfg.Node != "" {
		return newTargeted(h)
	}
	return &broadcast{h: h, taken: newHandoff()}
}

// handler handles one record read from topic.
type handler func(ctx context.Context, topic string, attrs schemas.Attributes, m kafka.Message)

// followAll reads each partition of topics from the offset from gives
// it, handing every record to handle, until ctx is done or a reader
// fails (see readAll).
func (h *Hub) followAll(ctx context.Context, offsets map[string][]kafka.PartitionOffsets, from func(topic string, po kafka.PartitionOffsets) int64, handle handler) error {
	return h.readAll(ctx, offsets, func(ctx context.Context, topic string, po kafka.PartitionOffsets) error {
		return h.follow(ctx, topic, po.Partition, from(topic, po), handle)
	})
}

// readAll runs read for each partition of offsets, each in its own
// goroutine, and closes the hub's Ready channel once all have started.
// It returns when ctx is done, or as soon as one read fails: then it
// stops the others and returns that error, so that the node does not go
// on deaf to a partition. Either way it waits for every read to return.
func (h *Hub) readAll(ctx context.Context, offsets map[string][]kafka.PartitionOffsets, read func(ctx context.Context, topic string, po kafka.PartitionOffsets) error) error {
	n := 0
	for topic, parts := range offsets {
		for _, po := range parts {
			if po.Error != nil {
				return fmt.Errorf("listing offsets of %s/%d: %w", topic, po.Partition, po.Error)
			}
			n++
		}
	}
	ctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop() // before the wait: the other reads end with it
	errs := make(chan error, n)
	for topic, parts := range offsets {
		for _, po := range parts {
			wg.Go(func() {
				if err := read(ctx, topic, po); err != nil && ctx.Err() == nil {
					errs <- err
				}
			})
		}
	}
	close(h.ready)
	select {
	case <-ctx.Done():
		return nil
	case err := <-errs:
		return err
	}
}

// follow reads one partition from offset from, handing every record to
// handle, until ctx is done; a broker out of reach for a while only
// delays it (kafkalog.FetchMessage).
func (h *Hub) follow(ctx context.Context, topic string, p int, from int64, handle handler) error {
	log := h.log.With("topic", topic, "partition", p)
	r := kafkalog.NewPartitionReader(h.cfg.Kafka, topic, p,
		kafkalog.ReaderErrors(log, h.cfg.Metrics.KafkaReaderErrors.WithLabelValues("", topic)))
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		return fmt.Errorf("seeking %s/%d: %w", topic, p, err)
	}
	read := h.cfg.Metrics.DeliveryRecordsRead.WithLabelValues(topic)
	for {
		m, err := kafkalog.FetchMessage(ctx, r, log)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading %s/%d: %w", topic, p, err)
		}
		read.Inc()
		attrs, err := kafkalog.Decode(m)
		if err == nil && h.hadEvent(topic, attrs) {
			continue // the later copy of an event handed off: not opened
		}
		var rec consumers.Record
		if err == nil {
			rec, err = consumers.OpenRecord(ctx, m, attrs, h.cfg.Opener)
		}
		if err != nil {
			h.log.Warn("skipping record", "topic", topic, "partition", p, "offset", m.Offset, "err", err)
			continue
		}
		handle(ctx, topic, rec.Attrs, rec.Message)
	}
}
