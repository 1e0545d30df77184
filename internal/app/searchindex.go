package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/projections/search/blevestore"
	"github.com/parley-chat/parley/projections/search/esindex"
)

var errSearchUnavailable = errors.New("search index not connected yet")

// searchIndex is the search index of the process: Bleve under
// data-dir/search, or Elasticsearch when PARLEY_ELASTICSEARCH_URL is set.
// Like historyStore, an Elasticsearch that is unreachable at start does
// not stop the process: it is connected in the background with backoff,
// /readyz says why it is not ready, searches answer "unavailable", and the
// search projection waits.
type searchIndex struct {
	mu      sync.RWMutex
	ix      search.Index
	lastErr error
	ready   chan struct{}
}

var _ search.Index = (*searchIndex)(nil)

func openSearch(ctx context.Context, cfg Config, log *slog.Logger, wg *sync.WaitGroup) (*searchIndex, error) {
	s := &searchIndex{ready: make(chan struct{})}
	if len(cfg.ElasticsearchURL) == 0 {
		ix, err := blevestore.Open(filepath.Join(cfg.DataDir, "search"), blevestore.WithLogger(log))
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
	s.lastErr = errSearchUnavailable
	wg.Go(func() {
		backoff := 250 * time.Millisecond
		for {
			ix, err := esindex.Open(ctx, ec)
			if err == nil {
				s.set(ix)
				log.Info("search index connected", "addresses", cfg.ElasticsearchURL, "alias", ix.Alias())
				return
			}
			s.mu.Lock()
			s.lastErr = err
			s.mu.Unlock()
			log.Warn("search index unavailable; retrying", "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 10*time.Second)
		}
	})
	return s, nil
}

func (s *searchIndex) set(ix search.Index) {
	s.mu.Lock()
	s.ix, s.lastErr = ix, nil
	s.mu.Unlock()
	close(s.ready)
}

func (s *searchIndex) get() (search.Index, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ix == nil {
		return nil, fmt.Errorf("%w: %w", errSearchUnavailable, s.lastErr)
	}
	return s.ix, nil
}

// Wait blocks until the index is connected or ctx is done.
func (s *searchIndex) Wait(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ready is the /readyz check.
func (s *searchIndex) Ready(context.Context) error { _, err := s.get(); return err }

func (s *searchIndex) Index(ctx context.Context, docs []search.Doc) error {
	ix, err := s.get()
	if err != nil {
		return err
	}
	return ix.Index(ctx, docs)
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

func (s *searchIndex) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ix == nil {
		return nil
	}
	err := s.ix.Close()
	s.ix = nil
	return err
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
