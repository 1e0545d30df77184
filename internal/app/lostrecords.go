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
		"Restore the data dir from a backup, or accept the log as it is: stop every process and run `parley recover` with the same settings (-dry-run first to see what it would do; README, A log that lost records)",
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
// (rewound). A local store such a group built is moved aside
// first, to DIR.lost-TIME, and made again from the log at the next
// start; an external one (ScyllaDB, Elasticsearch) keeps what the log
// lost, and the command says how to rebuild it. Every process must be
// stopped: a group with members is not moved, and the embedded broker
// and stores have one opener. A log that lost nothing is left as it is.
// With dryRun it prints what it would do, and does nothing.
func Recover(ctx context.Context, cfg Config, dryRun bool, out io.Writer, log *slog.Logger) error {
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
	steps, err := recoverySteps(ctx, client, cfg, groups, lost)
	if err != nil {
		return err
	}
	prefix := "recover: "
	if dryRun {
		prefix = "recover would do: "
	}
	for _, st := range steps {
		if !dryRun {
			if err := st.do(); err != nil {
				return err
			}
		}
		if _, err := fmt.Fprintf(out, "%s%s\n", prefix, st.says); err != nil {
			return err
		}
	}
	if dryRun {
		_, err = fmt.Fprintln(out, "recover: nothing done (-dry-run)")
		return err
	}
	_, err = fmt.Fprintln(out, "recover: done; start Parley again")
	return err
}

// step is one thing Recover does: what it says, and doing it.
type step struct {
	says string
	do   func() error
}

// recoverySteps are what Recover does about lost, for groups: see
// Recover.
func recoverySteps(ctx context.Context, client *kafka.Client, cfg Config, groups []groupTopics, lost []consumers.LostRecords) ([]step, error) {
	stopped := func(err error) error {
		if err != nil {
			return fmt.Errorf("%w (is every process stopped?)", err)
		}
		return nil
	}
	lostBy := map[string]bool{}
	for _, l := range lost {
		lostBy[l.Group] = true
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	var steps []step
	var stores []string
	decider := deciderGroup(cfg)
	for _, g := range groups {
		switch {
		case g.group == decider.group:
			if parts := rewound(cfg, lost); len(parts) > 0 {
				steps = append(steps, step{
					says: fmt.Sprintf("%s decides again the commands of partitions %v that no event answers", g.group, parts),
					do:   func() error { return stopped(consumers.Rewind(ctx, client, g.group, g.topics[0], parts)) },
				})
			}
		case !lostBy[g.group]:
		case g.fromEnd:
			steps = append(steps, step{
				says: g.group + " goes on from the log's end",
				do: func() error {
					_, err := consumers.MoveBackToEnd(ctx, client, g.group, g.topics...)
					return stopped(err)
				},
			})
		default:
			if g.store != "" && !slices.Contains(stores, g.store) {
				stores = append(stores, g.store)
				empty, err := emptyDir(g.store)
				if err != nil {
					return nil, err
				}
				if !empty {
					dir, aside := g.store, filepath.Clean(g.store)+".lost-"+stamp
					steps = append(steps, step{
						says: fmt.Sprintf("%s moved aside to %s; it is made again from the log at the next start (delete the old one once satisfied)", dir, aside),
						do:   func() error { return moveAside(dir, aside) },
					})
				}
			}
			steps = append(steps, step{
				says: g.group + " takes the log again from its start",
				do:   func() error { return stopped(consumers.StartAtBeginning(ctx, client, g.group, g.topics...)) },
			})
			if advice := externalStore(cfg, g.group); advice != "" {
				steps = append(steps, step{says: advice, do: func() error { return nil }})
			}
		}
	}
	return steps, nil
}

// rewound are the partitions of chat.commands on which the decider's
// group is rewound: those whose chat.events or chat.commands partition
// lost records. The decider resumes a partition from the later of its
// committed offset and one past the last command its events answer,
// within the log (runPartition): rewound, it decides again the commands
// whose events were lost, in their order, which gives them their seqs
// again; commands lost with them are lost. A command after the last one
// answered that appended nothing (a duplicate, a refusal, a dead letter)
// is answered again.
func rewound(cfg Config, lost []consumers.LostRecords) []int {
	events, decider := cfg.names().Topic(schemas.TopicEvents), deciderGroup(cfg)
	var parts []int
	for _, l := range lost {
		if (l.Topic == events || l.Group == decider.group) && !slices.Contains(parts, l.Partition) {
			parts = append(parts, l.Partition)
		}
	}
	slices.Sort(parts)
	return parts
}

// moveAside renames the store dir to aside, and syncs their directory.
func moveAside(dir, aside string) error {
	if err := os.Rename(dir, aside); err != nil {
		return fmt.Errorf("moving the store %s aside: %w", dir, err)
	}
	return syncDir(filepath.Dir(aside))
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
