// Rebuilding projections from the log: the search index into a new
// generation, and the verified rebuilds of the history store, the search
// index, the push store and the files projection's records.

package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/embeddedkafka"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/progress"
	"github.com/parley-chat/parley/internal/rebuild"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/pebblestore"
	"github.com/parley-chat/parley/projections/history/scyllastore"
	"github.com/parley-chat/parley/projections/push"
	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/schemas"
)

// RebuildSearch is `parley project search --rebuild`: it reindexes
// chat.events from offset 0 into a new index generation and swaps it in
// (an alias swap on Elasticsearch, which runs beside the live system). On
// the embedded default it starts the embedded broker over the data dir,
// so `parley run` must be stopped first (Bleve refuses a second opener).
func RebuildSearch(ctx context.Context, cfg Config, out io.Writer, log *slog.Logger) error {
	cluster, keys, rb, closeAll, err := openSearchRebuild(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeAll()
	st, err := search.Rebuild(ctx, search.RebuildConfig{
		Opener: opener(keys),
		Kafka:  cluster, Topic: cfg.names().Topic(schemas.TopicEvents), Target: rb, Progress: search.ProgressPrinter(out, 5*time.Second), Logger: log,
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "search rebuild: done, %d records (%d skipped) in %v\n", st.Records, st.Skipped, st.Took.Round(time.Millisecond))
	return err
}

// openRebuildLog opens what every rebuild reads the log with: the
// cluster (see rebuildCluster) and the content keyring (nil when content
// is not sealed). closeAll closes both.
func openRebuildLog(ctx context.Context, cfg Config, log *slog.Logger) (cluster *kafkalog.Cluster, keys *contentkeys.Keyring, closeAll func(), err error) {
	cluster, closeCluster, err := rebuildCluster(cfg, log)
	if err != nil {
		return nil, nil, nil, err
	}
	keys, closeKeys, err := OpenKeyring(ctx, cfg, log)
	if err != nil {
		closeCluster()
		return nil, nil, nil, err
	}
	return cluster, keys, func() { _ = closeKeys(); closeCluster() }, nil
}

// openSearchRebuild opens what a rebuild of the search index needs: the
// log (openRebuildLog) and the index (openRebuildableSearch). closeAll
// closes them all.
func openSearchRebuild(ctx context.Context, cfg Config, log *slog.Logger) (cluster *kafkalog.Cluster, keys *contentkeys.Keyring, rb search.Rebuildable, closeAll func(), err error) {
	cluster, keys, closeLog, err := openRebuildLog(ctx, cfg, log)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	rb, closeIndex, err := openRebuildableSearch(ctx, cfg, log)
	if err != nil {
		closeLog()
		return nil, nil, nil, nil, err
	}
	return cluster, keys, rb, func() { closeIndex(); closeLog() }, nil
}

// openRebuildableSearch opens the configured search index for a rebuild
// and waits (a minute at most) until it is ready. closeIndex closes it.
func openRebuildableSearch(ctx context.Context, cfg Config, log *slog.Logger) (rb search.Rebuildable, closeIndex func(), err error) {
	octx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stop := func() { cancel(); wg.Wait() }
	ix, err := openSearch(octx, cfg, log.With("component", "search-index"), &wg)
	if err != nil {
		stop()
		return nil, nil, err
	}
	closeIndex = func() {
		if err := ix.Close(); err != nil {
			log.Warn("closing the search index", "err", err)
		}
		stop()
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	rb, err = ix.rebuildable(wctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("search index: %w", err), ix.Ready(ctx))
		closeIndex()
		return nil, nil, err
	}
	return rb, closeIndex, nil
}

// rebuildCluster returns the configured cluster or, on the embedded
// default, starts the embedded broker over the data dir (the stores of
// the data dir are then free too only when `parley run` is stopped).
// closeCluster closes the cluster's connections, then the broker.
func rebuildCluster(cfg Config, log *slog.Logger) (_ *kafkalog.Cluster, closeCluster func(), _ error) {
	if !cfg.Embedded() {
		c := kafkalog.NewCluster(cfg.KafkaBrokers)
		return c, c.Close, nil
	}
	b, err := embeddedkafka.Start(cfg.EmbeddedBroker(log))
	if err != nil {
		return nil, nil, err
	}
	c := kafkalog.NewCluster([]string{b.Addr()}, kafkalog.DialWith(b.Dial))
	return c, func() { c.Close(); b.Close() }, nil
}

// ErrRebuildDiffers is returned by RebuildHistory when the live store
// differs from the one rebuilt from the log.
var ErrRebuildDiffers = errors.New("the live store differs from the log")

// rebuildSuffix names the fresh store a verified rebuild writes beside
// the live one: a directory of the data dir, or a keyspace.
const rebuildSuffix = "_rebuild"

// RebuildHistory is `parley rebuild history`: it rebuilds the history
// store from offset 0 of chat.events and chat.receipts into a fresh store
// beside the live one (the directory history_rebuild of the data dir, or
// a new keyspace PARLEY_SCYLLA_KEYSPACE_rebuild_UNIXTIME), compares them, prints
// every conversation or inbox that differs and returns
// ErrRebuildDiffers if any does. On the embedded default `parley run`
// must be stopped first (Pebble has one opener); the directory is
// removed afterwards. On ScyllaDB the live projection runs on, and the
// comparison waits for it to commit what the rebuild read; the rebuild
// keyspace is left for inspection, for the operator to drop.
//
// With swap, on the embedded default only, the rebuilt store then
// replaces the live one whatever the comparison found: after an erasure
// (see the README, *Erasure*) that is how the erased content leaves the
// history store.
func RebuildHistory(ctx context.Context, cfg Config, swap bool, out io.Writer, log *slog.Logger) error {
	if swap && len(cfg.ScyllaHosts) > 0 {
		return errors.New("rebuild history -swap works on the embedded store only: on ScyllaDB, point PARLEY_SCYLLA_KEYSPACE at the rebuilt keyspace")
	}
	cluster, keys, closeLog, err := openRebuildLog(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeLog()
	live, fresh, wait, closeStores, err := rebuildStores(ctx, cfg, log)
	if err != nil {
		return err
	}
	swapped := false
	defer func() {
		if !swapped {
			closeStores(false)
		}
	}()
	rep, err := rebuild.History(ctx, rebuild.HistoryConfig{
		Config: rebuild.Config{Kafka: cluster, WaitLive: wait, Logger: log, Opener: opener(keys),
			Progress: progress.New(out, "history rebuild", 5*time.Second, nil).Report},
		Names: cfg.names(), Live: live, Fresh: fresh,
	})
	if err != nil {
		return err
	}
	if !swap {
		return printReport(out, "history", rep)
	}
	if err := printReport(out, "history", rep); err != nil && !errors.Is(err, ErrRebuildDiffers) {
		return err
	}
	swapped = true
	if err := closeStores(true); err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, "history rebuild: the rebuilt store replaced the live one")
	return err
}

// RebuildPush is `parley rebuild push`: it rebuilds the push store from
// offset 0 of chat.events and chat.receipts into a fresh store beside the
// live one (push/store_rebuild in the data dir, removed afterwards),
// compares them, prints every conversation or user that differs and
// returns ErrRebuildDiffers if any does. The push store is the push
// role's own Pebble directory, so the command runs where that role keeps
// its data dir, with the role stopped. There is no -swap: the rebuilt
// store knows no notification pending or sent.
func RebuildPush(ctx context.Context, cfg Config, swap bool, out io.Writer, log *slog.Logger) error {
	if swap {
		return errors.New("rebuild push has no -swap: the rebuilt store holds no notification pending or sent")
	}
	liveDir := pushDir(cfg)
	if _, err := os.Stat(liveDir); err != nil {
		return fmt.Errorf("the push store (does the push role keep its data here?): %w", err)
	}
	cluster, keys, closeLog, err := openRebuildLog(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeLog()
	live, err := push.OpenStore(liveDir, log)
	if err != nil {
		return fmt.Errorf("opening the push store (is parley run stopped?): %w", err)
	}
	defer func() { _ = live.Close() }()
	dir := liveDir + rebuildSuffix
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	fresh, err := push.OpenStore(dir, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := errors.Join(fresh.Close(), os.RemoveAll(dir)); err != nil {
			log.Warn("removing the rebuilt push store", "dir", dir, "err", err)
		}
	}()
	rep, err := rebuild.Push(ctx, rebuild.PushConfig{
		Config: rebuild.Config{Kafka: cluster, WaitLive: -1, Logger: log, Opener: opener(keys),
			Progress: progress.New(out, "push rebuild", 5*time.Second, nil).Report},
		Names: cfg.names(), Live: live, Fresh: fresh,
	})
	if err != nil {
		return err
	}
	return printReport(out, "push", rep)
}

// RebuildFiles is `parley rebuild files`: it rebuilds the files
// projection's records (which uploads are attached to which message, and
// which messages' files were deleted) from offset 0 of chat.events in
// memory, compares them with the records in the live file store, prints
// every conversation that differs and returns ErrRebuildDiffers if any
// does. On the embedded file store it starts it over the data dir, so
// `parley run` must be stopped first. There is no -swap: the records
// share the bucket with the uploads, so there is no store to swap, only
// the live bucket to rewrite in place, which is a repair, not a verified
// rebuild.
func RebuildFiles(ctx context.Context, cfg Config, swap bool, out io.Writer, log *slog.Logger) error {
	if swap {
		return errors.New("rebuild files has no -swap: the records share the bucket with the uploads, there is no store to swap")
	}
	// The embedded S3 server changes the working directory: a relative
	// data dir must be resolved before.
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	cfg.DataDir = dataDir
	cluster, keys, closeLog, err := openRebuildLog(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeLog()
	live, wait, closeStore, err := openRebuildFiles(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	rep, err := rebuild.Files(ctx, rebuild.FilesConfig{
		Config: rebuild.Config{Kafka: cluster, WaitLive: wait, Logger: log, Opener: opener(keys),
			Progress: progress.New(out, "files rebuild", 5*time.Second, nil).Report},
		Names: cfg.names(), Live: live,
	})
	if err != nil {
		return err
	}
	return printReport(out, "files", rep)
}

// printReport prints a verified rebuild's differences and summary.
func printReport(out io.Writer, name string, rep rebuild.Report) error {
	for _, d := range rep.Differences {
		l, r := cmp.Or(d.Live, "(none)"), cmp.Or(d.Rebuilt, "(none)")
		if _, err := fmt.Fprintf(out, "differs: %s live=%s rebuilt=%s\n", d.Key, l, r); err != nil {
			return err
		}
	}
	keys := map[string]string{"history": "conversations and inboxes", "search": "conversations", "push": "conversations and users", "files": "conversations"}[name]
	if _, err := fmt.Fprintf(out, "%s rebuild: %d records (%d skipped), %d %s compared, %d differ, in %v\n",
		name, rep.Records, rep.Skipped, rep.Keys, keys, len(rep.Differences), rep.Took.Round(time.Millisecond)); err != nil {
		return err
	}
	if rep.LiveBehind > 0 {
		if _, err := fmt.Fprintf(out, "%s rebuild: the live projection had not committed %d of the records read: differences may be lag\n", name, rep.LiveBehind); err != nil {
			return err
		}
	}
	if len(rep.Differences) > 0 {
		return fmt.Errorf("%s: %d %s: %w", name, len(rep.Differences), keys, ErrRebuildDiffers)
	}
	return nil
}

// rebuildStores opens the live history store and an empty one beside it,
// and says how long to wait for the live projection. closeAll closes both
// and removes the rebuilt one, or, with swap (embedded only), puts it in
// place of the live one.
func rebuildStores(ctx context.Context, cfg Config, log *slog.Logger) (live history.Reader, fresh history.Store, wait time.Duration, closeAll func(swap bool) error, err error) {
	if len(cfg.ScyllaHosts) == 0 {
		dir := filepath.Join(cfg.DataDir, "history"+rebuildSuffix)
		if err := os.RemoveAll(dir); err != nil {
			return nil, nil, 0, nil, err
		}
		liveDir := historyDir(cfg)
		l, err := pebblestore.Open(liveDir, pebblestore.WithLogger(log))
		if err != nil {
			return nil, nil, 0, nil, fmt.Errorf("opening the history store (is parley run stopped?): %w", err)
		}
		f, err := pebblestore.Open(dir, pebblestore.WithLogger(log))
		if err != nil {
			_ = l.Close()
			return nil, nil, 0, nil, err
		}
		return l, f, -1, func(swap bool) error {
			if err := errors.Join(l.Close(), f.Close()); err != nil {
				return err
			}
			if !swap {
				if err := os.RemoveAll(dir); err != nil {
					log.Warn("removing the rebuilt history store", "dir", dir, "err", err)
				}
				return nil
			}
			old := liveDir + "_replaced"
			if err := os.RemoveAll(old); err != nil {
				return err
			}
			if err := os.Rename(liveDir, old); err != nil {
				return err
			}
			if err := os.Rename(dir, liveDir); err != nil {
				return errors.Join(err, os.Rename(old, liveDir))
			}
			return os.RemoveAll(old)
		}, nil
	}
	lc, err := scyllaConfig(cfg, cfg.ScyllaKeyspace, log)
	if err != nil {
		return nil, nil, 0, nil, err
	}
	ks := fmt.Sprintf("%s%s_%d", cfg.ScyllaKeyspace, rebuildSuffix, time.Now().Unix())
	fc, err := scyllaConfig(cfg, ks, log)
	if err != nil {
		return nil, nil, 0, nil, err
	}
	l, err := scyllastore.Open(ctx, lc)
	if err != nil {
		return nil, nil, 0, nil, err
	}
	log.Info("rebuilding into a keyspace of its own, left for inspection: drop it when done", "keyspace", ks)
	f, err := scyllastore.Open(ctx, fc)
	if err != nil {
		_ = l.Close()
		return nil, nil, 0, nil, err
	}
	return l, f, 0, func(bool) error { return errors.Join(l.Close(), f.Close()) }, nil
}

// opener is keys as a consumers.Opener: none when content is not sealed.
func opener(keys *contentkeys.Keyring) consumers.Opener {
	if keys == nil {
		return nil
	}
	return keys
}

// VerifySearch is `parley rebuild search`: it rebuilds the search index
// from offset 0 of chat.events into a new generation beside the live
// index, compares the two conversation by conversation, prints every one
// that differs and returns ErrRebuildDiffers if any does; the generation
// is then discarded, or, with swap, promoted in place of the live index
// whatever the comparison found (after an erasure: how the erased
// content leaves the index), and what was appended since the rebuild
// read the log is read into it. It needs an index that lists what it
// holds (search.Lister): the embedded Bleve index, with `parley run`
// stopped, or Elasticsearch (a new index beside the alias, listed
// through points in time; the live roles keep running and the comparison
// waits for the live group; with swap the alias moves to the new index).
func VerifySearch(ctx context.Context, cfg Config, swap bool, out io.Writer, log *slog.Logger) error {
	cluster, keys, rb, closeAll, err := openSearchRebuild(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeAll()
	live, ok := rb.(search.Lister)
	if !ok {
		return fmt.Errorf("the search index %T cannot list what it holds, so it cannot be compared: use parley project search --rebuild", rb)
	}
	gen, err := rb.NewGeneration(ctx)
	if err != nil {
		return err
	}
	promoted := false
	defer func() {
		if !promoted {
			if err := gen.Discard(context.WithoutCancel(ctx)); err != nil {
				log.Warn("discarding the rebuilt generation", "err", err)
			}
		}
	}()
	fresh, ok := gen.(rebuild.FreshIndex)
	if !ok {
		return fmt.Errorf("the search index generation %T cannot list what it holds", gen)
	}
	// The embedded index is only free with `parley run` stopped; on
	// Elasticsearch the live roles keep running, and the comparison
	// waits for the live group as on ScyllaDB.
	wait := time.Duration(-1)
	if len(cfg.ElasticsearchURL) > 0 {
		wait = 0
	}
	names := cfg.names()
	rep, err := rebuild.Search(ctx, rebuild.SearchConfig{
		Config: rebuild.Config{Kafka: cluster, WaitLive: wait, Logger: log, Opener: opener(keys),
			Progress: progress.New(out, "search rebuild", 5*time.Second, nil).Report},
		Names: names, Live: live, Fresh: fresh,
	})
	if err != nil {
		return err
	}
	perr := printReport(out, "search", rep)
	if !swap || (perr != nil && !errors.Is(perr, ErrRebuildDiffers)) {
		return perr
	}
	if err := gen.Promote(ctx); err != nil {
		return err
	}
	promoted = true
	// What was appended since the rebuild's end offsets went to the
	// index the alias left (Elasticsearch: the live roles ran on): read
	// it into the promoted one, as parley project search --rebuild does.
	topic := names.Topic(schemas.TopicEvents)
	st, err := search.CatchUp(ctx, search.RebuildConfig{Kafka: cluster, Topic: topic, Logger: log, Opener: opener(keys)}, gen, rep.Ends[topic])
	if err != nil {
		return fmt.Errorf("search rebuild: the rebuilt index replaced the live one, but catching up failed (run parley project search --rebuild): %w", err)
	}
	_, err = fmt.Fprintf(out, "search rebuild: the rebuilt index replaced the live one (%d records appended meanwhile read into it)\n", st.Records)
	return err
}
