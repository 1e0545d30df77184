// New stores take the log from its start.
//
// A projection's store on the local disk — the history store, the search
// index, the push store — follows the log from its consumer groups'
// committed offsets, which the broker keeps. A store made again while
// those offsets remain (its directory lost or deleted, a disk replaced)
// would skip everything before them: conversations gone from history,
// messages from search, with nothing to say so. So a store that is about
// to be made is first marked, by a file beside its directory; the role
// that runs its groups resets them to the start of the log before they
// join (consumers.StartAtBeginning), then removes the mark. A process
// stopped in between resets them again at its next start, which costs
// applying the log again and nothing else: projections apply a record
// any number of times to the same effect.
//
// The other way round, stores without their log, is refused: a new log
// beside stores made from another one (see storesOfAnotherLog).

package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/kafkalog"
)

// newMark is the file that marks the store of dir as new.
func newMark(dir string) string { return filepath.Clean(dir) + ".new" }

// markIfNew marks the store of dir as new when dir is missing or empty;
// call it before the store is opened, which makes its files. The mark is
// synced, with its directory, before it returns: no store file exists
// without it.
func markIfNew(dir string) error {
	if empty, err := emptyDir(dir); err != nil || !empty {
		return err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("making %s: %w", parent, err)
	}
	f, err := os.OpenFile(newMark(dir), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("marking %s new: %w", dir, err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("marking %s new: %w", dir, err)
	}
	return syncDir(parent)
}

// groupTopics is a consumer group and the topics it consumes.
type groupTopics struct {
	group  string
	topics []string
	// store is the directory of the local store the group builds: ""
	// for a group that builds none, or builds an external one.
	store string
	// fromEnd is a group that goes on from the log's end where the log
	// lost records it had read, rather than from its start
	// (lostrecords.go).
	fromEnd bool
}

// lagSources are g's topics, as the lag monitor measures them.
func (g groupTopics) lagSources() []consumers.LagSource {
	out := make([]consumers.LagSource, len(g.topics))
	for i, t := range g.topics {
		out[i] = consumers.LagSource{Group: g.group, Topic: t}
	}
	return out
}

// startNewStore resets groups to the start of their topics if the store
// of dir is marked new, then removes the mark; nothing if it is not.
func (s *System) startNewStore(ctx context.Context, dir string, groups ...groupTopics) error {
	mark := newMark(dir)
	if _, err := os.Stat(mark); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("reading the mark of %s: %w", dir, err)
	}
	client := kafkalog.NewClient(s.kafka)
	for _, g := range groups {
		s.log.Info("the store is new: its consumer group takes the log from the start", "store", dir, "group", g.group)
		if err := consumers.StartAtBeginning(ctx, client, g.group, g.topics...); err != nil {
			return fmt.Errorf("the store %s is new: %w", dir, err)
		}
	}
	if err := os.Remove(mark); err != nil {
		return fmt.Errorf("unmarking %s: %w", dir, err)
	}
	return syncDir(filepath.Dir(mark))
}

// syncDir syncs the directory dir, so that what was made or removed in
// it survives a crash of the machine.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	if err := errors.Join(d.Sync(), d.Close()); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// emptyDir reports whether dir is missing or holds nothing.
func emptyDir(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", dir, err)
	}
	return len(entries) == 0, nil
}

// storesOfAnotherLog refuses to start the embedded default on a log that
// is new — its directory missing or empty — beside local stores that are
// not: they were made from another log, deleted or lost since. The
// decider would number each conversation's messages from 1 again, and
// the history store would take them over the old ones. Restoring that
// log, or moving the stores aside to have them made again from this
// one, is the operator's choice.
func storesOfAnotherLog(cfg Config) error {
	log := cfg.EmbeddedBroker(nil).Dir
	if empty, err := emptyDir(log); err != nil || !empty {
		return err
	}
	stores := []string{pushDir(cfg)}
	if len(cfg.ScyllaHosts) == 0 {
		stores = append(stores, historyDir(cfg))
	}
	if len(cfg.ElasticsearchURL) == 0 {
		stores = append(stores, searchDir(cfg))
	}
	var held []string
	for _, dir := range stores {
		empty, err := emptyDir(dir)
		if err != nil {
			return err
		}
		if !empty {
			held = append(held, dir)
		}
	}
	if len(held) > 0 {
		return fmt.Errorf("the log (%s) is new, but %s hold what was made from another log: restore that log, or move them aside to have them made again from this one (README, Backups)", log, strings.Join(held, ", "))
	}
	return nil
}
