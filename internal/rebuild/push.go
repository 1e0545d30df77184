// The verified rebuild of the push store: chat.events and chat.receipts
// into a fresh store, compared per conversation and per user.

package rebuild

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/projections/push"
	"github.com/parley-chat/parley/schemas"
)

// PushReader is the push store as the comparison reads it (push.Store).
type PushReader interface {
	Conversation(conv string) (push.ConversationState, bool, error)
	User(user string) (push.UserState, error)
}

// PushConfig configures Push.
type PushConfig struct {
	Config
	// Names resolves the topics and group. Default: no prefix.
	Names kafkalog.Names
	// Live is the store the live projection writes. Required.
	Live PushReader
	// Fresh is an empty store, beside the live one, to rebuild into.
	// Required.
	Fresh *push.Store
}

// Push rebuilds the push store from the first offsets of chat.events and
// chat.receipts up to their ends when it starts into cfg.Fresh (through
// push.RebuildProjection: no device is known, nothing is sent), then
// compares cfg.Live with it: per conversation, the members, last seq,
// encryption flag and messages; per member, the read marker and unread
// count of each conversation and the badge. The notifications pending
// and sent are not compared: they depend on the devices registered, the
// clock and the providers' answers, not on the log alone.
func Push(ctx context.Context, cfg PushConfig) (Report, error) {
	start := time.Now()
	cfg.Config = cfg.withDefaults()
	if cfg.Kafka == nil || cfg.Live == nil || cfg.Fresh == nil {
		return Report{}, errors.New("rebuild push: a Kafka cluster, the live store and a fresh store are required")
	}
	p := push.RebuildProjection(cfg.Fresh)
	conv := func(it push.Item) string { return it.ConversationOf() }
	group := cfg.Names.Group(schemas.GroupPush)
	rep, ids, err := replayAll(ctx, cfg.Config, "the push store", []Source{
		{Topic: cfg.Names.Topic(schemas.TopicEvents), Group: group},
		{Topic: cfg.Names.Topic(schemas.TopicReceipts), Group: group},
	}, collect(cfg.Config, p, conv), collect(cfg.Config, p, conv))
	if err != nil {
		return rep, fmt.Errorf("rebuild push: %w", err)
	}
	live, liveUsers, err := pushConversationSums(cfg.Live, ids)
	if err != nil {
		return rep, fmt.Errorf("rebuild push: the live store: %w", err)
	}
	rebuilt, rebuiltUsers, err := pushConversationSums(cfg.Fresh, ids)
	if err != nil {
		return rep, fmt.Errorf("rebuild push: the rebuilt store: %w", err)
	}
	for u := range rebuiltUsers {
		liveUsers[u] = true
	}
	users := keys(liveUsers)
	if err := pushUserSums(cfg.Live, users, live); err != nil {
		return rep, fmt.Errorf("rebuild push: the live store: %w", err)
	}
	if err := pushUserSums(cfg.Fresh, users, rebuilt); err != nil {
		return rep, fmt.Errorf("rebuild push: the rebuilt store: %w", err)
	}
	rep.Keys = len(ids) + len(users)
	rep.Differences = Compare(live, rebuilt)
	rep.Took = time.Since(start)
	cfg.Logger.Info("push store rebuilt and compared", "records", rep.Records, "keys", rep.Keys, "differences", len(rep.Differences), "live_behind", rep.LiveBehind)
	return rep, nil
}

// pushConversationSums returns the checksum of each conversation of ids
// r knows ("conversation/ID"), and the users who are members of one.
func pushConversationSums(r PushReader, ids []string) (Checksums, map[string]bool, error) {
	sums := Checksums{}
	users := map[string]bool{}
	for _, id := range ids {
		c, found, err := r.Conversation(id)
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", id, err)
		}
		if !found {
			continue
		}
		for _, u := range c.Members {
			users[u] = true
		}
		if sums["conversation/"+id], err = checksum(c); err != nil {
			return nil, nil, err
		}
	}
	return sums, users, nil
}

// pushUserSums adds the checksum of each user's read markers, unread
// counts and badge ("user/ID") to sums.
func pushUserSums(r PushReader, users []string, sums Checksums) error {
	for _, u := range users {
		st, err := r.User(u)
		if err != nil {
			return fmt.Errorf("reading %s: %w", u, err)
		}
		if sums["user/"+u], err = checksum(st); err != nil {
			return err
		}
	}
	return nil
}
