// Package replay reads a topic of Parley's log the way an analytics team
// does: every partition from an offset or a time up to the end it had
// when the replay started, filtered by conversation, event type and time,
// each record's CloudEvents attributes parsed and its value decoded and
// validated against the public contract (schemas.Decode and the JSON
// Schema of its type, schemacheck), then handed to a Sink: NDJSON in the
// CloudEvents JSON format (NDJSON) or Parquet (Parquet).
//
// Partitions are read in parallel, each in order; a Sink sees the
// records of one partition in offset order and those of different
// partitions interleaved (the order Kafka itself guarantees). A record
// that is not a valid CloudEvent of a known type, or breaks its schema,
// is counted in Stats.Invalid, logged with its position and left out.
//
// A sealed record (crypto-shredding, schemas.ContentTypeSealed) is
// decoded by consumers.DecodeRecord, the decoding every reader of the log
// shares: opened with Config.Opener, or else as its envelope's redacted
// event, metadata only. Either way Event.Attrs.Sealed is set.
//
// Run reads with plain partition readers, outside any consumer group: it
// changes nothing on the cluster.
package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
	"github.com/parley-chat/parley/schemas/schemacheck"
)

// Event is one record of a replay: its place in the log, its CloudEvents
// attributes and its value (the event's JSON as it is in the log).
type Event struct {
	Topic     string
	Partition int
	Offset    int64
	Key       string
	Attrs     schemas.Attributes
	Data      json.RawMessage
}

// Sink receives the events of a replay. Run calls Write from one
// goroutine at a time; the slice and its events are the Sink's until
// Write returns, not after.
type Sink interface {
	Write(events []Event) error
}

// Filter selects events. An empty field selects everything.
type Filter struct {
	// Conversations, if not empty, selects events whose subject
	// (ce_subject, the conversation id) is one of them.
	Conversations []string
	// Types, if not empty, selects events whose ce_type is one of them.
	Types []string
	// Since and Until, if not zero, select events with Since <= ce_time
	// < Until.
	Since, Until time.Time
}

// matcher is a Filter made fast to apply.
type matcher struct {
	conversations, types map[string]bool
	since, until         time.Time
}

func (f Filter) matcher() matcher {
	m := matcher{since: f.Since, until: f.Until}
	if len(f.Conversations) > 0 {
		m.conversations = make(map[string]bool, len(f.Conversations))
		for _, c := range f.Conversations {
			m.conversations[c] = true
		}
	}
	if len(f.Types) > 0 {
		m.types = make(map[string]bool, len(f.Types))
		for _, t := range f.Types {
			m.types[t] = true
		}
	}
	return m
}

func (m matcher) match(a schemas.Attributes) bool {
	switch {
	case m.conversations != nil && !m.conversations[a.Subject]:
		return false
	case m.types != nil && !m.types[a.Type]:
		return false
	case !m.since.IsZero() && a.Time.Before(m.since):
		return false
	case !m.until.IsZero() && !a.Time.Before(m.until):
		return false
	}
	return true
}

// Check says how a record's value is checked before it is written.
type Check int

const (
	// CheckSchema decodes the value as its type's Go value
	// (schemas.Decode) and validates it against the type's JSON Schema
	// (schemacheck): the whole public contract. The default.
	CheckSchema Check = iota
	// CheckDecode only decodes the value as its type's Go value, with the
	// checks every Parley consumer applies: a little faster (see
	// BENCHMARKS.md), for logs Parley itself wrote.
	CheckDecode
)

// Config configures Run.
type Config struct {
	// Kafka is the cluster to read. Required.
	Kafka *kafkalog.Cluster
	// Topic is the topic read, with any prefix. Required.
	Topic string
	// FromOffset, if not negative, starts every partition at this offset
	// (or its first offset, if that is later). Default: -1, from the
	// first offset, unless FromTime is set.
	FromOffset int64
	// FromTime, if not zero, starts every partition at its first record
	// whose broker timestamp is at or after it. It cannot be combined
	// with a FromOffset of 0 or more.
	FromTime time.Time
	// Filter selects the events written.
	Filter Filter
	// Check is how each record's value is checked. Default: CheckSchema.
	Check Check
	// Concurrency is the most partitions read at once. Default: 4.
	Concurrency int
	// BatchSize is the most events per Sink.Write. Default: 1000.
	BatchSize int
	// Progress, if set, is called with the records read so far and the
	// records in the range; calls never overlap. See progress.Printer.
	Progress func(done, total int64)
	// Logger receives invalid records (with partition and offset) and
	// milestones. Default: discard.
	Logger *slog.Logger
	// Opener opens sealed events (consumers.DecodeRecord): with it, a
	// replay has their personal content; without it (the default), their
	// redacted form, metadata only.
	Opener consumers.Opener
}

// Stats describes a finished replay.
type Stats struct {
	// Read is how many records were read; Written how many were passed
	// to the Sink; Invalid how many were left out as not valid. The rest
	// did not match the filter.
	Read, Written, Invalid int64
	Took                   time.Duration
}

// ErrConfig is returned for a Config Run cannot use.
var ErrConfig = errors.New("replay: invalid configuration")

// Run replays cfg.Topic into sink; see the package doc. It returns when
// every partition has been read up to the end it had when Run started,
// or at the first error (of the cluster, of ctx or of the sink).
func Run(ctx context.Context, cfg Config, sink Sink) (Stats, error) {
	start := time.Now()
	if cfg.Kafka == nil || cfg.Topic == "" || sink == nil {
		return Stats{}, fmt.Errorf("%w: a Kafka cluster, a topic and a sink are required", ErrConfig)
	}
	if cfg.FromOffset >= 0 && !cfg.FromTime.IsZero() {
		return Stats{}, fmt.Errorf("%w: a start offset and a start time both given", ErrConfig)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var v *schemacheck.Validator
	if cfg.Check == CheckSchema {
		var err error
		if v, err = schemacheck.New(); err != nil {
			return Stats{}, err
		}
	}
	r := &run{cfg: cfg, sink: sink, match: cfg.Filter.matcher(), validator: v, log: cfg.Logger.With("topic", cfg.Topic)}
	from, to, err := r.ranges(ctx)
	if err != nil {
		return r.stats(start), fmt.Errorf("replay: %w", err)
	}
	for p := range from {
		if to[p] > from[p] {
			r.total += to[p] - from[p]
		}
	}
	r.log.Info("replaying", "partitions", len(from), "records", r.total)
	err = r.readAll(ctx, from, to)
	if err == nil && r.cfg.Progress != nil {
		r.cfg.Progress(r.total, r.total) // ranges may end in offsets with no record
	}
	return r.stats(start), err
}

type run struct {
	cfg       Config
	sink      Sink
	match     matcher
	validator *schemacheck.Validator
	log       *slog.Logger

	mu                            sync.Mutex // guards the sink and the counters
	total, read, written, invalid int64
}

func (r *run) stats(start time.Time) Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{Read: r.read, Written: r.written, Invalid: r.invalid, Took: time.Since(start)}
}

// ranges returns the offset each partition starts at and the end it
// stops before.
func (r *run) ranges(ctx context.Context) (from, to []int64, err error) {
	client := kafkalog.NewClient(r.cfg.Kafka)
	n, err := kafkalog.Partitions(ctx, client, r.cfg.Topic)
	if err != nil {
		return nil, nil, err
	}
	first, err := kafkalog.Offsets(ctx, client, r.cfg.Topic, n, kafka.FirstOffsetOf)
	if err != nil {
		return nil, nil, err
	}
	end, err := kafkalog.Offsets(ctx, client, r.cfg.Topic, n, kafka.LastOffsetOf)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case !r.cfg.FromTime.IsZero():
		at, err := kafkalog.Offsets(ctx, client, r.cfg.Topic, n, func(p int) kafka.OffsetRequest { return kafka.TimeOffsetOf(p, r.cfg.FromTime) })
		if err != nil {
			return nil, nil, err
		}
		for p := range first {
			if at[p] < 0 { // no record at or after the time
				at[p] = end[p]
			}
			first[p] = max(first[p], at[p])
		}
	case r.cfg.FromOffset >= 0:
		for p := range first {
			first[p] = max(first[p], r.cfg.FromOffset)
		}
	}
	return first, end, nil
}

// readAll reads [from[p], to[p]) of every partition.
func (r *run) readAll(ctx context.Context, from, to []int64) error {
	if err := kafkalog.EachRange(ctx, from, to, r.cfg.Concurrency, r.readPartition); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}

func (r *run) readPartition(ctx context.Context, p int, from, to int64) error {
	batch := make([]Event, 0, r.cfg.BatchSize)
	var read, invalid int64
	flush := func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(batch) > 0 {
			if err := r.sink.Write(batch); err != nil {
				return fmt.Errorf("writing: %w", err)
			}
		}
		r.read += read
		r.written += int64(len(batch))
		r.invalid += invalid
		if r.cfg.Progress != nil {
			r.cfg.Progress(r.read, r.total)
		}
		batch, read, invalid = batch[:0], 0, 0
		return nil
	}
	err := kafkalog.ReadRange(ctx, r.cfg.Kafka, r.cfg.Topic, p, from, to, func(m kafka.Message) error {
		read++
		e, ok, err := r.event(ctx, m)
		switch {
		case err != nil:
			invalid++
			r.log.Warn("leaving out an invalid record", "partition", m.Partition, "offset", m.Offset, "err", err)
		case ok:
			batch = append(batch, e)
		}
		if len(batch) >= r.cfg.BatchSize || read >= int64(r.cfg.BatchSize) {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// event parses m; ok is false for a valid record the filter leaves out.
func (r *run) event(ctx context.Context, m kafka.Message) (e Event, ok bool, err error) {
	attrs, err := kafkalog.Decode(m)
	if err != nil {
		return Event{}, false, err
	}
	if !r.match.match(attrs) {
		return Event{}, false, nil
	}
	if attrs.Sealed {
		rec, err := consumers.DecodeRecord(ctx, m, r.cfg.Opener)
		if err != nil {
			return Event{}, false, err
		}
		m = rec.Message
	}
	if err := r.validate(attrs.Type, m.Value); err != nil {
		return Event{}, false, err
	}
	return Event{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: string(m.Key), Attrs: attrs, Data: m.Value}, true, nil
}

// validate decodes value as its type's Go value (the checks every
// consumer applies) and, unless the check is CheckDecode, validates it
// against the type's JSON Schema.
func (r *run) validate(typ string, value []byte) error {
	if _, err := schemas.Decode(typ, value); err != nil {
		return err
	}
	if r.validator == nil {
		return nil
	}
	return r.validator.Validate(typ, value)
}
