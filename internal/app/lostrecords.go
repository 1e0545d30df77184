// A log that lost records its consumer groups had read.
//
// A partition can end before the offset a group committed on it: the
// embedded broker truncates a partition at its first damaged batch (a
// crash of the machine before it synced the tail, a damaged disk), and a
// Kafka cluster does the same after an unclean leader election. The
// groups then skip what is appended until the log grows past their
// offsets, the decider numbers the lost messages' seqs again, and the
// stores hold what the log no longer has. Nothing of it shows unless it
// is looked for, so:
//
//   - a process does not start roles whose groups are past the log's end
//     (refuseLostRecords), and says which partitions lost how much;
//   - the lag monitor reports it (parley_consumer_lost_records) and logs
//     it, for a loss while running;
//   - `parley recover` (Recover) accepts the log as it is: every group
//     that lost records takes the log again from its start, but the
//     router's, which goes on from its end; the decider decides again the
//     commands whose events were lost; a local store those groups built
//     is moved aside, to be made again from the log at the next start.
//
// Restoring the data dir from a backup instead is the operator's choice;
// that is why the start is refused rather than the log accepted.

package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// ErrLostRecords is returned by Start when the log lost records that the
// consumer groups of its roles had read.
var ErrLostRecords = errors.New("the log lost records its consumer groups had read")

// electionGrace is how long a start waits to look again on a Kafka
// cluster, where a partition's new leader may report a lower end for a
// moment after an election.
const electionGrace = 5 * time.Second

// refuseLostRecords returns ErrLostRecords, naming every partition that
// ends before the offset one of groups committed on it; groups whose
// local store is new are left out: they take the log from its start.
func (s *System) refuseLostRecords(ctx context.Context, groups []groupTopics) error {
	var sources []consumers.LagSource
	for _, g := range groups {
		if g.store != "" {
			fresh, err := storeIsNew(g.store)
			if err != nil {
				return err
			}
			if fresh {
				continue
			}
		}
		sources = append(sources, g.lagSources()...)
	}
	client := kafkalog.NewClient(s.kafka)
	lost, err := consumers.FindLostRecords(ctx, client, sources)
	if err == nil && len(lost) > 0 && !s.cfg.Embedded() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(electionGrace):
		}
		lost, err = consumers.FindLostRecords(ctx, client, sources)
	}
	if err != nil {
		return fmt.Errorf("comparing the consumer groups' offsets with the log: %w", err)
	}
	if len(lost) == 0 {
		return nil
	}
	parts := make([]string, len(lost))
	for i, l := range lost {
		parts[i] = l.String()
	}
	return fmt.Errorf("%w: %s. The stores hold what the log no longer has, and the decider would give the lost messages' seqs again. "+
		"Restore the data dir from a backup, or accept the log as it is: stop every process and run `parley recover` with the same settings (README, A log that lost records)",
		ErrLostRecords, strings.Join(parts, "; "))
}

// storeIsNew reports whether the local store of dir will be made, or
// was made and not yet given the log from its start (newstores.go).
func storeIsNew(dir string) (bool, error) {
	if empty, err := emptyDir(dir); err != nil || empty {
		return empty, err
	}
	if _, err := os.Stat(newMark(dir)); err == nil {
		return true, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("reading the mark of %s: %w", dir, err)
	}
	return false, nil
}

// Recover is `parley recover`: it accepts a log that lost records its
// consumer groups had read. It prints every partition that did; then
// every group that lost records takes the log again from its start
// (consumers.StartAtBeginning), but the router's, which goes on from its
// end (consumers.MoveBackToEnd): its deliveries are live; and the
// decider decides again the commands no event answers any more
// (rewindDecider). A local store such a group built is moved aside
// first, to DIR.lost-TIME, and made again from the log at the next
// start; an external one (ScyllaDB, Elasticsearch) keeps what the log
// lost, and the command says how to rebuild it. Every process must be
// stopped: a group with members is not moved, and the embedded broker
// and stores have one opener. A log that lost nothing is left as it is.
func Recover(ctx context.Context, cfg Config, out io.Writer, log *slog.Logger) error {
	// The embedded file store is not opened here, but Start makes the
	// data dir absolute too: the stores' paths must be the same.
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	cfg.DataDir = dataDir
	cluster, closeCluster, err := rebuildCluster(cfg, log)
	if err != nil {
		return err
	}
	defer closeCluster()
	client := kafkalog.NewClient(cluster)

	// Every group, the router's too: it may have run under targeted
	// routing before.
	every := cfg
	every.Routing = RoutingTargeted
	groups := consumerGroups(every, All)
	var sources []consumers.LagSource
	for _, g := range groups {
		sources = append(sources, g.lagSources()...)
	}
	lost, err := consumers.FindLostRecords(ctx, client, sources)
	if err != nil {
		return fmt.Errorf("comparing the consumer groups' offsets with the log: %w", err)
	}
	if len(lost) == 0 {
		_, err := fmt.Fprintln(out, "recover: the log holds every record its consumer groups have read; nothing to do")
		return err
	}
	for _, l := range lost {
		if _, err := fmt.Fprintf(out, "lost: %s\n", l); err != nil {
			return err
		}
	}
	lostBy := map[string]bool{}
	for _, l := range lost {
		lostBy[l.Group] = true
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	var moved []string
	decider := deciderGroup(cfg)
	for _, g := range groups {
		if g.group == decider.group {
			if err := rewindDecider(ctx, client, cfg, lost, out); err != nil {
				return err
			}
			continue
		}
		if !lostBy[g.group] {
			continue
		}
		if g.fromEnd {
			if _, err := consumers.MoveBackToEnd(ctx, client, g.group, g.topics...); err != nil {
				return fmt.Errorf("%w (is every process stopped?)", err)
			}
			if _, err := fmt.Fprintf(out, "recover: %s goes on from the log's end\n", g.group); err != nil {
				return err
			}
			continue
		}
		if g.store != "" && !slices.Contains(moved, g.store) {
			aside, err := moveAside(g.store, stamp)
			if err != nil {
				return err
			}
			moved = append(moved, g.store)
			if aside != "" {
				if _, err := fmt.Fprintf(out, "recover: %s moved aside to %s; it is made again from the log at the next start (delete the old one once satisfied)\n", g.store, aside); err != nil {
					return err
				}
			}
		}
		if err := consumers.StartAtBeginning(ctx, client, g.group, g.topics...); err != nil {
			return fmt.Errorf("%w (is every process stopped?)", err)
		}
		if _, err := fmt.Fprintf(out, "recover: %s takes the log again from its start\n", g.group); err != nil {
			return err
		}
		if advice := externalStore(cfg, g.group); advice != "" {
			if _, err := fmt.Fprintf(out, "recover: %s\n", advice); err != nil {
				return err
			}
		}
	}
	_, err = fmt.Fprintln(out, "recover: done; start Parley again")
	return err
}

// rewindDecider rewinds the decider's group on the partitions of
// chat.commands whose chat.events or chat.commands partition lost
// records. The decider resumes a partition from the later of its
// committed offset and one past the last command its events answer,
// within the log (runPartition): rewound, it decides again the commands
// whose events were lost, in their order, which gives them their seqs
// again; commands lost with them are lost. A command after the last one
// answered that appended nothing (a duplicate, a refusal, a dead letter)
// is answered again.
func rewindDecider(ctx context.Context, client *kafka.Client, cfg Config, lost []consumers.LostRecords, out io.Writer) error {
	names, decider := cfg.names(), deciderGroup(cfg)
	var parts []int
	for _, l := range lost {
		if (l.Topic == names.Topic(schemas.TopicEvents) || l.Group == decider.group) && !slices.Contains(parts, l.Partition) {
			parts = append(parts, l.Partition)
		}
	}
	if len(parts) == 0 {
		return nil
	}
	slices.Sort(parts)
	if err := consumers.Rewind(ctx, client, decider.group, decider.topics[0], parts); err != nil {
		return fmt.Errorf("%w (is every process stopped?)", err)
	}
	_, err := fmt.Fprintf(out, "recover: %s decides again the commands of partitions %v that no event answers\n", decider.group, parts)
	return err
}

// moveAside renames the store dir to dir.lost-stamp and returns that
// name: "" when dir is missing or empty, which the next start makes
// anyway.
func moveAside(dir, stamp string) (string, error) {
	if empty, err := emptyDir(dir); err != nil || empty {
		return "", err
	}
	aside := filepath.Clean(dir) + ".lost-" + stamp
	if err := os.Rename(dir, aside); err != nil {
		return "", fmt.Errorf("moving the store %s aside: %w", dir, err)
	}
	if err := syncDir(filepath.Dir(aside)); err != nil {
		return "", err
	}
	return aside, nil
}

// externalStore says how to make the external store of group agree with
// the log again, or "" when the group builds none.
func externalStore(cfg Config, group string) string {
	switch {
	case len(cfg.ScyllaHosts) > 0 && (group == historyGroup(cfg).group || group == receiptsGroup(cfg).group):
		return "ScyllaDB still holds what the log lost: `parley rebuild history` lists the conversations that differ, in a keyspace of its own made from the log; point PARLEY_SCYLLA_KEYSPACE at it"
	case len(cfg.ElasticsearchURL) > 0 && group == searchGroup(cfg).group:
		return "Elasticsearch still holds what the log lost: `parley rebuild search -swap` replaces the index with one made from the log"
	}
	return ""
}
