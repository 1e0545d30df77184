// Package rebuild is the verified rebuild of a projection: it replays
// the log from its first offset into a fresh store beside the live one,
// then compares the two, a checksum per conversation (and per user for
// what is kept per user, such as the inbox), and reports every key whose
// checksums differ. `parley rebuild NAME` runs it; nothing is swapped:
// the report is the proof that the live store is what the log says.
//
// The comparison goes through the stores' read ports (history.Reader for
// the history store; search.Lister for the search index, which the
// embedded Bleve index implements; PushReader for the push store, which
// compares what the log alone decides, not the notifications sent;
// FilesReader for the files projection's records in the file store, which
// are rebuilt in memory since they share their bucket with the uploads),
// so it holds for every adapter that has them. Sealed records (crypto-shredding) are opened with
// Config.Opener, as the live projections open them. The live store is compared once its
// consumer groups have committed the offsets the rebuild read up to (or
// after Config.WaitLive, with the lag reported), so that a live
// projection that is merely behind is told apart from one that is wrong.
package rebuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/kafkalog"
)

// Checksums are the checksums of a store, by key: "conversation/ID" or
// "user/ID".
type Checksums map[string]string

// Difference is a key whose checksums differ; "" stands for a key one
// side does not have.
type Difference struct {
	Key           string
	Live, Rebuilt string
}

// Compare returns the keys of live and rebuilt whose checksums differ,
// sorted.
func Compare(live, rebuilt Checksums) []Difference {
	var out []Difference
	for k, l := range live {
		if r := rebuilt[k]; r != l {
			out = append(out, Difference{Key: k, Live: l, Rebuilt: r})
		}
	}
	for k, r := range rebuilt {
		if _, ok := live[k]; !ok {
			out = append(out, Difference{Key: k, Rebuilt: r})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// checksum returns the SHA-256, in hex, of the JSON of every value in
// turn: the canonical form of what a read port returns.
func checksum(values ...any) (string, error) {
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, v := range values {
		if err := enc.Encode(v); err != nil {
			return "", fmt.Errorf("checksum: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Source is one topic a projection reads and the consumer group that
// reads it live.
type Source struct {
	Topic, Group string // resolved (Names.Topic, Names.Group)
}

// Report is the outcome of a verified rebuild.
type Report struct {
	// Records is how many records were replayed, Skipped how many of
	// them did not decode (the live groups dead-letter those).
	Records, Skipped int64
	// Keys is how many keys were compared.
	Keys int
	// Differences are the keys whose checksums differ.
	Differences []Difference
	// LiveBehind is how many records the live groups had still not
	// committed, of those the rebuild read, when the comparison was made:
	// differences may then be lag rather than faults.
	LiveBehind int64
	// Ends are, by topic, the end offsets of its partitions the rebuild
	// read up to: where a rebuilt store that replaces the live one
	// catches up from.
	Ends map[string][]int64
	Took time.Duration
}

// Config is what every verified rebuild needs.
type Config struct {
	// Kafka is the cluster to read. Required.
	Kafka *kafkalog.Cluster
	// WaitLive is how long to wait for the live groups to commit what
	// the rebuild read before comparing. Default: 30s; negative: do not
	// wait (the live projection is stopped).
	WaitLive time.Duration
	// Progress, if set, is called with the records replayed so far and
	// the records to replay; calls never overlap. See progress.Printer.
	Progress func(done, total int64)
	// Logger receives skipped records and milestones. Default: discard.
	Logger *slog.Logger
	// Opener opens sealed records (consumers.DecodeRecord), as the live
	// projection does. Default: none, sealed content is read redacted.
	Opener consumers.Opener
}

func (c Config) withDefaults() Config {
	if c.WaitLive == 0 {
		c.WaitLive = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// span is the range of one source the rebuild reads.
type span struct {
	src      Source
	from, to []int64
}

// spans returns, for each source, its first offsets and its end offsets
// now.
func spans(ctx context.Context, client *kafka.Client, srcs []Source) ([]span, int64, error) {
	var out []span
	var total int64
	for _, s := range srcs {
		n, err := kafkalog.Partitions(ctx, client, s.Topic)
		if err != nil {
			return nil, 0, err
		}
		from, err := kafkalog.Offsets(ctx, client, s.Topic, n, kafka.FirstOffsetOf)
		if err != nil {
			return nil, 0, err
		}
		to, err := kafkalog.Offsets(ctx, client, s.Topic, n, kafka.LastOffsetOf)
		if err != nil {
			return nil, 0, err
		}
		for p := range from {
			total += max(0, to[p]-from[p])
		}
		out = append(out, span{src: s, from: from, to: to})
	}
	return out, total, nil
}

// counter sums the progress of several ApplyRange calls.
type counter struct {
	mu       sync.Mutex
	base     int64
	total    int64
	progress func(done, total int64)
}

func (c *counter) report(read int64) {
	if c.progress == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.progress(c.base+read, c.total)
}

func (c *counter) next(read int64) {
	c.mu.Lock()
	c.base += read
	c.mu.Unlock()
}

// replay applies every span to the projection of its source.
func replay[T any](ctx context.Context, cfg Config, c *counter, s span, p consumers.Projection[T]) (consumers.RangeStats, error) {
	st, err := consumers.ApplyRange(ctx, consumers.RangeConfig{
		Kafka: cfg.Kafka, Topic: s.src.Topic, From: s.from, To: s.to, Progress: c.report, Logger: cfg.Logger, Opener: cfg.Opener,
	}, p)
	c.next(st.Records)
	return st, err
}

// step replays the span of one source into the fresh store, adding the
// conversations it holds to convs.
type step func(ctx context.Context, c *counter, s span, convs *seen) (consumers.RangeStats, error)

// collect is the step that replays a span into p, noting each record's
// conversation by key.
func collect[T any](cfg Config, p consumers.Projection[T], key func(T) string) step {
	return func(ctx context.Context, c *counter, s span, convs *seen) (consumers.RangeStats, error) {
		return replay(ctx, cfg, c, s, collecting[T]{p: p, seen: convs, key: key})
	}
}

// replayAll reads srcs from their first offsets up to their ends now,
// each with the step of the same index, in order, and then, when
// cfg.WaitLive > 0, waits for the live groups to commit as far. It
// returns the report so far (records, skipped, live behind) and the
// conversations the steps saw, to compare; what names the store in the
// log.
func replayAll(ctx context.Context, cfg Config, what string, srcs []Source, steps ...step) (Report, []string, error) {
	client := kafkalog.NewClient(cfg.Kafka)
	ss, total, err := spans(ctx, client, srcs)
	if err != nil {
		return Report{}, nil, err
	}
	cfg.Logger.Info("rebuilding "+what, "records", total)
	c := &counter{total: total, progress: cfg.Progress}
	convs := &seen{}
	rep := Report{Ends: map[string][]int64{}}
	for _, s := range ss {
		rep.Ends[s.src.Topic] = s.to
	}
	for i, s := range ss {
		st, err := steps[i](ctx, c, s, convs)
		rep.Records, rep.Skipped = rep.Records+st.Records, rep.Skipped+st.Skipped
		if err != nil {
			return rep, nil, err
		}
	}
	if cfg.Progress != nil {
		cfg.Progress(total, total) // ranges may end in offsets with no record
	}
	if cfg.WaitLive > 0 {
		if rep.LiveBehind, err = waitLive(ctx, cfg, client, ss); err != nil {
			return rep, nil, err
		}
	}
	return rep, convs.list(), nil
}

// behind returns how many records of spans the live groups have not
// committed.
func behind(ctx context.Context, client *kafka.Client, ss []span) (int64, error) {
	var n int64
	for _, s := range ss {
		parts := make([]int, len(s.to))
		for p := range parts {
			parts[p] = p
		}
		resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: s.src.Group, Topics: map[string][]int{s.src.Topic: parts}})
		if err != nil {
			return 0, fmt.Errorf("fetching the offsets of group %s: %w", s.src.Group, err)
		}
		committed := make([]int64, len(s.to))
		for _, po := range resp.Topics[s.src.Topic] {
			if po.Error == nil && po.Partition >= 0 && po.Partition < len(committed) {
				committed[po.Partition] = max(0, po.CommittedOffset)
			}
		}
		for p := range s.to {
			n += max(0, s.to[p]-max(committed[p], s.from[p]))
		}
	}
	return n, nil
}

// waitLive waits, up to cfg.WaitLive, for the live groups to commit
// every span, and returns what they still had not.
func waitLive(ctx context.Context, cfg Config, client *kafka.Client, ss []span) (int64, error) {
	deadline := time.Now().Add(max(0, cfg.WaitLive))
	for {
		n, err := behind(ctx, client, ss)
		if err != nil || n == 0 || !time.Now().Before(deadline) {
			return n, err
		}
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return n, ctx.Err()
		case <-t.C:
		}
	}
}

// keys returns the sorted keys of m.
func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
