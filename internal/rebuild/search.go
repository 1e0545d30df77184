// The verified rebuild of the search index: chat.events into a fresh
// index generation, compared per conversation.

package rebuild

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/schemas"
)

// FreshIndex is an empty index to rebuild into (a search.Generation of
// the live index) that lists what it holds.
type FreshIndex interface {
	search.Indexer
	search.Lister
	Refresh(ctx context.Context) error
}

// SearchConfig configures Search.
type SearchConfig struct {
	Config
	// Names resolves the topic and group. Default: no prefix.
	Names kafkalog.Names
	// Live is the index the live projection writes. Required. If it has
	// a Refresh method (search.Index), it is refreshed before it is
	// listed.
	Live search.Lister
	// Fresh is an empty index to rebuild into. Required.
	Fresh FreshIndex
}

// Search rebuilds the search index from the first offsets of chat.events
// up to their ends when it starts into cfg.Fresh, then compares cfg.Live
// with it, conversation by conversation: every document (messages with
// their sender, text, files and time; tombstones of deleted ones) and its
// version.
func Search(ctx context.Context, cfg SearchConfig) (Report, error) {
	start := time.Now()
	cfg.Config = cfg.withDefaults()
	if cfg.Kafka == nil || cfg.Live == nil || cfg.Fresh == nil {
		return Report{}, errors.New("rebuild search: a Kafka cluster, the live index and a fresh one are required")
	}
	fill := collect(cfg.Config, search.Projection{Index: cfg.Fresh}, func(d search.Doc) string { return d.ConversationID })
	rep, ids, err := replayAll(ctx, cfg.Config, "the search index", []Source{
		{Topic: cfg.Names.Topic(schemas.TopicEvents), Group: cfg.Names.Group(schemas.GroupSearch)},
	}, func(ctx context.Context, c *counter, s span, convs *seen) (consumers.RangeStats, error) {
		st, err := fill(ctx, c, s, convs)
		if err == nil {
			err = cfg.Fresh.Refresh(ctx)
		}
		return st, err
	})
	if err != nil {
		return rep, fmt.Errorf("rebuild search: %w", err)
	}
	// What the live projection wrote is compared, not only what its
	// index had refreshed (Elasticsearch lists what a refresh made
	// searchable).
	if r, ok := cfg.Live.(interface{ Refresh(context.Context) error }); ok {
		if err := r.Refresh(ctx); err != nil {
			return rep, fmt.Errorf("rebuild search: refreshing the live index: %w", err)
		}
	}
	live, err := documentSums(ctx, cfg.Live, ids)
	if err != nil {
		return rep, fmt.Errorf("rebuild search: the live index: %w", err)
	}
	rebuilt, err := documentSums(ctx, cfg.Fresh, ids)
	if err != nil {
		return rep, fmt.Errorf("rebuild search: the rebuilt index: %w", err)
	}
	rep.Keys = len(ids)
	rep.Differences = Compare(live, rebuilt)
	rep.Took = time.Since(start)
	cfg.Logger.Info("search index rebuilt and compared", "records", rep.Records, "keys", rep.Keys, "differences", len(rep.Differences), "live_behind", rep.LiveBehind)
	return rep, nil
}

// documentSums returns the checksum of the documents of each conversation
// of ids that has any ("conversation/ID").
func documentSums(ctx context.Context, l search.Lister, ids []string) (Checksums, error) {
	sums := Checksums{}
	for _, id := range ids {
		docs, err := l.Documents(ctx, id)
		if err != nil {
			return nil, err
		}
		if len(docs) == 0 {
			continue
		}
		if sums["conversation/"+id], err = checksum(docs); err != nil {
			return nil, err
		}
	}
	return sums, nil
}
