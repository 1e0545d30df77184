// The search index of a process: Bleve or Elasticsearch behind one type.

package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/projections/search/blevestore"
	"github.com/parley-chat/parley/projections/search/esindex"
)

var errSearchUnavailable = errors.New("search index not connected yet")

// searchIndex is the search index of the process: Bleve under
// data-dir/search, or Elasticsearch when PARLEY_ELASTICSEARCH_URL is set.
// An Elasticsearch that is unreachable at start does not stop the
// process: see lazy.
type searchIndex struct {
	*lazy[search.Index]
}

var _ search.Index = (*searchIndex)(nil)

// searchDir is the embedded search index's directory.
func searchDir(cfg Config) string { return filepath.Join(cfg.DataDir, "search") }

func openSearch(ctx context.Context, cfg Config, log *slog.Logger, wg *sync.WaitGroup) (*searchIndex, error) {
	s := &searchIndex{newLazy[search.Index](errSearchUnavailable)}
	if len(cfg.ElasticsearchURL) == 0 {
		if err := markIfNew(searchDir(cfg)); err != nil {
			return nil, fmt.Errorf("opening search index: %w", err)
		}
		ix, err := blevestore.Open(searchDir(cfg), blevestore.WithLogger(log))
		if err != nil {
			return nil, fmt.Errorf("opening search index: %w", err)
		}
		s.set(ix)
		return s, nil
	}
	ec := esindex.Config{Addresses: cfg.ElasticsearchURL, Logger: log}
	if err := ec.Validate(); err != nil {
		return nil, fmt.Errorf("elasticsearch config: %w", err)
	}
	s.connect(ctx, wg, log.With("addresses", cfg.ElasticsearchURL), func(ctx context.Context) (search.Index, error) {
		return esindex.Open(ctx, ec)
	})
	return s, nil
}

// Ready is the /readyz check.
func (s *searchIndex) Ready(context.Context) error { _, err := s.get(); return err }

// Ping is the index's Ping (search.Pinger), for the projection's Probe:
// an error while the index is not open, or cannot be probed.
func (s *searchIndex) Ping(ctx context.Context) error {
	ix, err := s.get()
	if err != nil {
		return err
	}
	p, ok := ix.(search.Pinger)
	if !ok {
		return fmt.Errorf("search index %T cannot be probed", ix)
	}
	return p.Ping(ctx)
}

func (s *searchIndex) Index(ctx context.Context, docs []search.Doc) error {
	ix, err := s.get()
	if err != nil {
		return err
	}
	return ix.Index(ctx, docs)
}

func (s *searchIndex) Erase(ctx context.Context, e search.Erasure) error {
	ix, err := s.get()
	if err != nil {
		return err
	}
	return ix.Erase(ctx, e)
}

func (s *searchIndex) Search(ctx context.Context, q search.Query) (search.Result, error) {
	ix, err := s.get()
	if err != nil {
		return search.Result{}, err
	}
	return ix.Search(ctx, q)
}

func (s *searchIndex) Refresh(ctx context.Context) error {
	ix, err := s.get()
	if err != nil {
		return err
	}
	return ix.Refresh(ctx)
}

func (s *searchIndex) rebuildable(ctx context.Context) (search.Rebuildable, error) {
	if err := s.Wait(ctx); err != nil {
		return nil, err
	}
	ix, err := s.get()
	if err != nil {
		return nil, err
	}
	rb, ok := ix.(search.Rebuildable)
	if !ok {
		return nil, fmt.Errorf("search index %T cannot be rebuilt", ix)
	}
	return rb, nil
}
