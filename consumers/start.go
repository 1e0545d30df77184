// Starting a group at the end of its topics, or again from their start,
// or moving it back to the end of a log that lost what it had read.

package consumers

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// StartAtEnd commits, for every partition of topics on which group has
// never committed, the partition's current end, so that the group starts
// there whenever its members join. A group that only matters from now on
// (the router: nobody waits for yesterday's deliveries) calls it before
// joining; unlike a StartOffset of kafka.LastOffset, which takes the end
// at the moment a member is first assigned the partition, records
// appended between the call and the first join are not skipped.
//
// It commits as a "simple" consumer (generation -1), which brokers accept
// only while the group has no members; if members are already there, they
// have committed or are about to, and the error is ignored.
func StartAtEnd(ctx context.Context, client *kafka.Client, group string, topics ...string) error {
	parts, err := partitionsOf(ctx, client, topics)
	if err != nil {
		return err
	}
	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: parts})
	if err != nil {
		return fmt.Errorf("fetching offsets of group %s: %w", group, err)
	}
	has := map[string]map[int]bool{}
	for topic, ps := range committed.Topics {
		has[topic] = map[int]bool{}
		for _, p := range ps {
			if p.Error == nil && p.CommittedOffset >= 0 {
				has[topic][p.Partition] = true
			}
		}
	}
	ends, err := boundsOf(ctx, client, parts, false)
	if err != nil {
		return err
	}
	commits := map[string][]kafka.OffsetCommit{}
	for topic, ps := range ends {
		for _, c := range ps {
			if !has[topic][c.Partition] {
				commits[topic] = append(commits[topic], c)
			}
		}
	}
	if len(commits) == 0 {
		return nil
	}
	return commitAsSimpleConsumer(ctx, client, group, commits, func(err error) bool {
		return errors.Is(err, kafka.IllegalGeneration) || errors.Is(err, kafka.UnknownMemberId) || errors.Is(err, kafka.RebalanceInProgress)
	})
}

// StartAtBeginning commits, for every partition of topics, its first
// offset for group, so that the group takes the whole log again when its
// members join. A projection whose store is new — made empty, or lost
// and made again — calls it before joining: the group's committed
// offsets belong to the store that is gone, and would skip everything
// before them.
//
// It commits as a "simple" consumer (generation -1), which brokers accept
// only while the group has no members: with members, nothing is reset
// and it returns the error.
func StartAtBeginning(ctx context.Context, client *kafka.Client, group string, topics ...string) error {
	parts, err := partitionsOf(ctx, client, topics)
	if err != nil {
		return err
	}
	starts, err := boundsOf(ctx, client, parts, true)
	if err != nil {
		return err
	}
	return commitAsSimpleConsumer(ctx, client, group, starts, func(error) bool { return false })
}

// Rewind commits the first offset of partitions of topic for group, so
// that the group reads them again from their start when its members
// join; StartAtBeginning, for some partitions of one topic. It commits
// as a "simple" consumer, refused while the group has members.
func Rewind(ctx context.Context, client *kafka.Client, group, topic string, partitions []int) error {
	starts, err := boundsOf(ctx, client, map[string][]int{topic: partitions}, true)
	if err != nil {
		return err
	}
	return commitAsSimpleConsumer(ctx, client, group, starts, func(error) bool { return false })
}

// MoveBackToEnd commits, for every partition of topics whose log ends
// before group's committed offset (Position.Lost), the log's end, so
// that the group reads what is appended from now on instead of skipping
// it until the log grows past the offset it had; it returns those
// partitions as they were. A group whose records were lost and that
// builds no store calls it: the records are gone for it either way.
//
// It commits as a "simple" consumer (generation -1), which brokers
// accept only while the group has no members: with members, nothing is
// moved and it returns the error.
func MoveBackToEnd(ctx context.Context, client *kafka.Client, group string, topics ...string) ([]LostRecords, error) {
	sources := make([]LagSource, len(topics))
	for i, t := range topics {
		sources[i] = LagSource{Group: group, Topic: t}
	}
	lost, err := FindLostRecords(ctx, client, sources)
	if err != nil || len(lost) == 0 {
		return nil, err
	}
	commits := map[string][]kafka.OffsetCommit{}
	for _, l := range lost {
		commits[l.Topic] = append(commits[l.Topic], kafka.OffsetCommit{Partition: l.Partition, Offset: l.End})
	}
	if err := commitAsSimpleConsumer(ctx, client, group, commits, func(error) bool { return false }); err != nil {
		return nil, err
	}
	return lost, nil
}

// partitionsOf is every partition of each of topics.
func partitionsOf(ctx context.Context, client *kafka.Client, topics []string) (map[string][]int, error) {
	parts := map[string][]int{}
	for _, topic := range topics {
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			return nil, fmt.Errorf("reading metadata of %s: %w", topic, err)
		}
		if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
			return nil, fmt.Errorf("reading metadata of %s: %v", topic, meta.Topics)
		}
		for _, p := range meta.Topics[0].Partitions {
			parts[topic] = append(parts[topic], p.ID)
		}
	}
	return parts, nil
}

// boundsOf is, for every partition of parts, the commit of its first
// offset (first) or of its end.
func boundsOf(ctx context.Context, client *kafka.Client, parts map[string][]int, first bool) (map[string][]kafka.OffsetCommit, error) {
	at := kafka.LastOffsetOf
	if first {
		at = kafka.FirstOffsetOf
	}
	reqs := map[string][]kafka.OffsetRequest{}
	for topic, ps := range parts {
		for _, p := range ps {
			reqs[topic] = append(reqs[topic], at(p))
		}
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: reqs})
	if err != nil {
		return nil, fmt.Errorf("listing offsets: %w", err)
	}
	out := map[string][]kafka.OffsetCommit{}
	for topic, ps := range resp.Topics {
		for _, po := range ps {
			if po.Error != nil {
				return nil, fmt.Errorf("listing offsets of %s/%d: %w", topic, po.Partition, po.Error)
			}
			offset := po.LastOffset
			if first {
				offset = po.FirstOffset
			}
			out[topic] = append(out[topic], kafka.OffsetCommit{Partition: po.Partition, Offset: offset})
		}
	}
	return out, nil
}

// commitAsSimpleConsumer commits commits for group with generation -1;
// an error of a partition's commit that ignore says nothing of fails it.
func commitAsSimpleConsumer(ctx context.Context, client *kafka.Client, group string, commits map[string][]kafka.OffsetCommit, ignore func(error) bool) error {
	resp, err := client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: commits})
	if err != nil {
		return fmt.Errorf("committing start offsets of group %s: %w", group, err)
	}
	for topic, ps := range resp.Topics {
		for _, p := range ps {
			if p.Error != nil && !ignore(p.Error) {
				return fmt.Errorf("committing the start offset of %s/%d for group %s (a simple consumer's commit: does the group have members?): %w", topic, p.Partition, group, p.Error)
			}
		}
	}
	return nil
}
