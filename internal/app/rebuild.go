// Rebuilding the search index from chat.events into a new generation.

package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/parley-chat/parley/internal/embeddedkafka"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/schemas"
)

// RebuildSearch is `parley project search --rebuild`: it reindexes
// chat.events from offset 0 into a new index generation and swaps it in
// (an alias swap on Elasticsearch, which runs beside the live system). On
// the embedded default it starts the embedded broker over the data dir,
// so `parley run` must be stopped first (Bleve refuses a second opener).
func RebuildSearch(ctx context.Context, cfg Config, out io.Writer, log *slog.Logger) error {
	brokers := cfg.KafkaBrokers
	if cfg.Embedded() {
		b, err := embeddedkafka.Start(embeddedkafka.Config{Dir: filepath.Join(cfg.DataDir, "kafka"), Addr: cfg.KafkaListen, Logger: log})
		if err != nil {
			return err
		}
		defer b.Close()
		brokers = []string{b.Addr()}
	}
	octx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	ix, err := openSearch(octx, cfg, log.With("component", "search-index"), &wg)
	if err != nil {
		return err
	}
	defer func() {
		if err := ix.Close(); err != nil {
			log.Warn("closing the search index", "err", err)
		}
	}()
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	rb, err := ix.rebuildable(wctx)
	if err != nil {
		return errors.Join(fmt.Errorf("search index: %w", err), ix.Ready(ctx))
	}
	st, err := search.Rebuild(ctx, search.RebuildConfig{
		Brokers: brokers, Topic: kafkalog.Names{Prefix: cfg.TopicPrefix}.Topic(schemas.TopicEvents), Target: rb, Progress: search.ProgressPrinter(out, 5*time.Second), Logger: log,
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "search rebuild: done, %d records (%d skipped) in %v\n", st.Records, st.Skipped, st.Took.Round(time.Millisecond))
	return err
}
