// The verified rebuild of the history projection: chat.events and
// chat.receipts into a fresh history store, compared per conversation and
// per user (the inbox).

package rebuild

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// HistoryConfig configures History.
type HistoryConfig struct {
	Config
	// Names resolves the topics and groups. Default: no prefix.
	Names kafkalog.Names
	// Live is the store the live projection writes. Required.
	Live history.Reader
	// Fresh is an empty store, beside the live one, to rebuild into.
	// Required.
	Fresh history.Store
}

// History rebuilds the history store (messages, summaries, members,
// markers) from the first offsets of chat.events and chat.receipts up to
// their ends when it starts into cfg.Fresh, then compares cfg.Live with
// it: per conversation, the summary, every event of the timeline as
// Page returns it (edits, deletions and reactions folded in) and the
// markers; per member, the inbox (Conversations).
func History(ctx context.Context, cfg HistoryConfig) (Report, error) {
	start := time.Now()
	cfg.Config = cfg.withDefaults()
	if cfg.Kafka == nil || cfg.Live == nil || cfg.Fresh == nil {
		return Report{}, errors.New("rebuild history: a Kafka cluster, the live store and a fresh store are required")
	}
	rep, ids, err := replayAll(ctx, cfg.Config, "the history store", []Source{
		{Topic: cfg.Names.Topic(schemas.TopicEvents), Group: cfg.Names.Group(schemas.GroupHistory)},
		{Topic: cfg.Names.Topic(schemas.TopicReceipts), Group: cfg.Names.Group(schemas.GroupReceipts)},
	},
		collect(cfg.Config, history.Projection{W: cfg.Fresh}, func(e history.Event) string { return e.ConversationID }),
		collect(cfg.Config, history.ReceiptProjection{W: cfg.Fresh}, func(r history.Receipt) string { return r.ConversationID }),
	)
	if err != nil {
		return rep, fmt.Errorf("rebuild history: %w", err)
	}
	live, liveUsers, err := conversationSums(ctx, cfg.Live, ids)
	if err != nil {
		return rep, fmt.Errorf("rebuild history: the live store: %w", err)
	}
	rebuilt, rebuiltUsers, err := conversationSums(ctx, cfg.Fresh, ids)
	if err != nil {
		return rep, fmt.Errorf("rebuild history: the rebuilt store: %w", err)
	}
	for u := range rebuiltUsers {
		liveUsers[u] = true
	}
	users := keys(liveUsers)
	if err := userSums(ctx, cfg.Live, users, live); err != nil {
		return rep, fmt.Errorf("rebuild history: the live store: %w", err)
	}
	if err := userSums(ctx, cfg.Fresh, users, rebuilt); err != nil {
		return rep, fmt.Errorf("rebuild history: the rebuilt store: %w", err)
	}
	rep.Keys = len(ids) + len(users)
	rep.Differences = Compare(live, rebuilt)
	rep.Took = time.Since(start)
	cfg.Logger.Info("history store rebuilt and compared", "records", rep.Records, "keys", rep.Keys, "differences", len(rep.Differences), "live_behind", rep.LiveBehind)
	return rep, nil
}

// pageSize is how many events a checksum reads per Page.
const pageSize = 500

// conversationSums returns the checksum of each conversation of ids r
// knows ("conversation/ID"), and the users who are members of one.
func conversationSums(ctx context.Context, r history.Reader, ids []string) (Checksums, map[string]bool, error) {
	sums := Checksums{}
	users := map[string]bool{}
	for _, id := range ids {
		conv, err := r.Conversation(ctx, id)
		if errors.Is(err, history.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		for _, m := range conv.Members {
			users[m.UserID] = true
		}
		var events []history.Event
		for after := uint64(0); ; {
			page, err := r.Page(ctx, id, history.PageQuery{Forward: true, After: after, Limit: pageSize})
			if err != nil {
				return nil, nil, fmt.Errorf("reading %s: %w", id, err)
			}
			events = append(events, page.Events...)
			if !page.HasMore || len(page.Events) == 0 {
				break
			}
			after = page.Events[len(page.Events)-1].Seq
		}
		receipts, err := r.Receipts(ctx, id)
		if err != nil && !errors.Is(err, history.ErrNotFound) {
			return nil, nil, fmt.Errorf("reading the markers of %s: %w", id, err)
		}
		if sums["conversation/"+id], err = checksum(conv, events, receipts); err != nil {
			return nil, nil, err
		}
	}
	return sums, users, nil
}

// inboxLimit bounds one user's inbox as a checksum reads it.
const inboxLimit = 1 << 20

// userSums adds the checksum of each user's inbox ("user/ID") to sums.
func userSums(ctx context.Context, r history.Reader, users []string, sums Checksums) error {
	for _, u := range users {
		inbox, err := r.Conversations(ctx, u, inboxLimit)
		if err != nil {
			return fmt.Errorf("reading the inbox of %s: %w", u, err)
		}
		if sums["user/"+u], err = checksum(inbox); err != nil {
			return err
		}
	}
	return nil
}

// seen is a set of keys, safe for concurrent use.
type seen struct {
	mu   sync.Mutex
	keys map[string]bool
}

func (s *seen) add(k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = map[string]bool{}
	}
	s.keys[k] = true
}

func (s *seen) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return keys(s.keys)
}

// collecting is a projection that notes the key of every value it
// applies ("" stands for none: a record the projection has nothing to do
// with).
type collecting[T any] struct {
	p    consumers.Projection[T]
	seen *seen
	key  func(T) string
}

func (c collecting[T]) Decode(r consumers.Record) (T, error) { return c.p.Decode(r) }

func (c collecting[T]) Apply(ctx context.Context, batch []T) error {
	for _, v := range batch {
		if k := c.key(v); k != "" {
			c.seen.add(k)
		}
	}
	return c.p.Apply(ctx, batch)
}
