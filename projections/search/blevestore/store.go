// The Bleve search index: generations on disk, versioned indexing,
// searches with scopes, filters, highlights and cursors.

package blevestore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search/highlight/highlighter/html"
	"github.com/blevesearch/bleve/v2/search/query"

	bsearch "github.com/blevesearch/bleve/v2/search"

	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/schemas"
)

// currentFile names the live generation's directory.
const currentFile = "CURRENT"

// Option configures Open.
type Option func(*options)

type options struct {
	log          *slog.Logger
	lockTimeout  time.Duration
	termsFilters int
}

// WithLogger sets the logger. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithLockTimeout sets how long Open waits for another process to release
// the index before failing. Default: 2s.
func WithLockTimeout(d time.Duration) Option { return func(o *options) { o.lockTimeout = d } }

// WithTermFilterLimit sets the largest set of conversations a search
// filters with one term query per conversation; a larger set is checked
// on each candidate's document id instead (a map lookup), which is
// cheaper than advancing hundreds of term searchers (see
// BenchmarkSearch_1M: term queries win at 100 conversations, ids at
// 1000). Default: 200.
func WithTermFilterLimit(n int) Option { return func(o *options) { o.termsFilters = n } }

// Store is the embedded search index. See the package doc.
type Store struct {
	dir  string
	opts options
	log  *slog.Logger

	// mu guards live and closed. Every call holds it for reading while it
	// uses live; Promote and Close take it for writing.
	mu     sync.RWMutex
	live   *generation
	closed bool
	// genMu serializes NewGeneration and Promote.
	genMu sync.Mutex
}

var (
	_ search.Index       = (*Store)(nil)
	_ search.Rebuildable = (*Store)(nil)
	_ search.Pinger      = (*Store)(nil)
)

// generation is one Bleve index directory.
type generation struct {
	name string
	path string
	idx  bleve.Index
	text analysis.Analyzer
	log  *slog.Logger
	// termsFilters is WithTermFilterLimit.
	termsFilters int
	// ordered is whether the generation's mapping has the order key
	// (fieldOrder). One made before indexes seq and sent_at instead, and
	// sorts and filters on them; a rebuild brings it up to date.
	ordered bool
	// outdated is whether the generation was made with an older mapping
	// than newMapping's (see Store.Outdated).
	outdated bool
	// wmu serializes writes, so that reading the stored versions and
	// writing the batch that depends on them is atomic.
	wmu sync.Mutex
}

// Open opens the index under dir, creating it if needed.
func Open(dir string, opt ...Option) (*Store, error) {
	o := options{log: slog.New(slog.DiscardHandler), lockTimeout: 2 * time.Second, termsFilters: 200}
	for _, f := range opt {
		f(&o)
	}
	s := &Store{dir: dir, opts: o, log: o.log.With("component", "search-index", "dir", dir)}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("search index dir: %w", err)
	}
	cur, err := os.ReadFile(filepath.Join(dir, currentFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		name := genName(1)
		// Never live: CURRENT is written right after creation.
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return nil, fmt.Errorf("removing unfinished search index: %w", err)
		}
		g, err := s.create(name)
		if err != nil {
			return nil, err
		}
		if err := writeCurrent(dir, name); err != nil {
			_ = g.idx.Close()
			return nil, err
		}
		s.live = g
	case err != nil:
		return nil, fmt.Errorf("reading %s: %w", currentFile, err)
	default:
		name := strings.TrimSpace(string(cur))
		if _, ok := parseGen(name); !ok {
			return nil, fmt.Errorf("%s names %q, not a generation", currentFile, name)
		}
		g, err := s.open(name)
		if err != nil {
			return nil, err
		}
		s.live = g
	}
	s.removeOlder()
	return s, nil
}

func genName(n int) string { return fmt.Sprintf("gen-%06d", n) }

func parseGen(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "gen-")
	if !ok || len(rest) != 6 {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n > 0
}

func (s *Store) runtimeConfig() map[string]any {
	return map[string]any{"bolt_timeout": s.opts.lockTimeout.String()}
}

func (s *Store) create(name string) (*generation, error) {
	m, err := newMapping()
	if err != nil {
		return nil, fmt.Errorf("search index mapping: %w", err)
	}
	path := filepath.Join(s.dir, name)
	idx, err := bleve.NewUsing(path, m, bleve.Config.DefaultIndexType, bleve.Config.DefaultKVStore, s.runtimeConfig())
	if err != nil {
		return nil, fmt.Errorf("creating search index %s: %w", path, err)
	}
	return s.wrap(name, path, idx)
}

func (s *Store) open(name string) (*generation, error) {
	path := filepath.Join(s.dir, name)
	idx, err := bleve.OpenUsing(path, s.runtimeConfig())
	if err != nil {
		if strings.Contains(err.Error(), "timeout") {
			return nil, fmt.Errorf("opening search index %s: in use by another process (stop it first): %w", path, err)
		}
		return nil, fmt.Errorf("opening search index %s: %w", path, err)
	}
	return s.wrap(name, path, idx)
}

func (s *Store) wrap(name, path string, idx bleve.Index) (*generation, error) {
	a := idx.Mapping().AnalyzerNamed(textAnalyzer)
	if a == nil {
		_ = idx.Close()
		return nil, fmt.Errorf("search index %s has no analyzer %s: rebuild it", path, textAnalyzer)
	}
	g := &generation{name: name, path: path, idx: idx, text: a, log: s.log, termsFilters: s.opts.termsFilters}
	if m, ok := idx.Mapping().(*mapping.IndexMappingImpl); ok {
		fields := m.DefaultMapping.Properties
		g.ordered = fields[fieldOrder] != nil
		// An index made before it kept file names drops them from an
		// edit of a message with files.
		g.outdated = !g.ordered || fields[fieldFiles] == nil
	}
	return g, nil
}

// removeOlder removes generations older than the live one: left by a
// rebuild that promoted a generation while they were open elsewhere.
func (s *Store) removeOlder() {
	cur, _ := parseGen(s.live.name)
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		s.log.Warn("listing search index dir", "err", err)
		return
	}
	for _, e := range entries {
		if n, ok := parseGen(e.Name()); ok && e.IsDir() && n < cur {
			if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
				s.log.Warn("removing an old search index generation", "generation", e.Name(), "err", err)
			} else {
				s.log.Info("removed an old search index generation", "generation", e.Name())
			}
		}
	}
}

// writeCurrent points CURRENT at name, atomically and durably.
func writeCurrent(dir, name string) error {
	tmp := filepath.Join(dir, currentFile+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("writing %s: %w", currentFile, err)
	}
	_, err = f.WriteString(name + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, currentFile))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", currentFile, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// acquire returns the live generation, holding mu for reading until
// release is called.
func (s *Store) acquire() (*generation, func(), error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, nil, errors.New("search index is closed")
	}
	return s.live, s.mu.RUnlock, nil
}

// Index implements search.Indexer.
//
// A batch of more than paceChunk documents is indexed in chunks of
// paceChunk, in order, and after each chunk but the last Index rests
// paceRest times as long as the chunk took, up to paceMaxRest in all
// per call (see the package doc, Pacing). Each chunk is one Bleve batch:
// a search beside it may see the first chunks of a batch before the
// rest, and a failure leaves the chunks before it indexed, which
// indexing the batch again skips by version.
func (s *Store) Index(ctx context.Context, docs []search.Doc) error {
	var rested time.Duration
	for {
		n := min(len(docs), paceChunk)
		start := time.Now()
		if err := s.indexChunk(ctx, docs[:n]); err != nil {
			return err
		}
		docs = docs[n:]
		if len(docs) == 0 {
			return nil
		}
		d := restAfter(time.Since(start), rested)
		if d <= 0 {
			continue
		}
		rested += d
		rest := time.NewTimer(d)
		select {
		case <-ctx.Done():
			rest.Stop()
			return fmt.Errorf("indexing: %w", ctx.Err())
		case <-rest.C:
		}
	}
}

// Pacing of live indexing (Store.Index): chunks of paceChunk documents,
// each followed by a rest of paceRest times its duration, the rests of
// one call adding up to paceMaxRest at most.
const (
	paceChunk   = 256
	paceRest    = 2
	paceMaxRest = 500 * time.Millisecond
)

// restAfter is how long Index rests after a chunk that took took, having
// rested rested in the call so far.
func restAfter(took, rested time.Duration) time.Duration {
	return max(0, min(paceRest*took, paceMaxRest-rested))
}

func (s *Store) indexChunk(ctx context.Context, docs []search.Doc) error {
	g, release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	return g.index(ctx, docs)
}

// probeKey is the internal (non-document) key Ping writes and deletes.
var probeKey = []byte("parley_probe")

// Ping writes an internal key of the live index and deletes it again: it
// succeeds when the index takes writes now (search.Pinger).
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g, release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	if err := g.idx.SetInternal(probeKey, []byte{1}); err != nil {
		return fmt.Errorf("search index: ping: %w", err)
	}
	if err := g.idx.DeleteInternal(probeKey); err != nil {
		return fmt.Errorf("search index: ping: %w", err)
	}
	return nil
}

// Search implements search.Searcher.
func (s *Store) Search(ctx context.Context, q search.Query) (search.Result, error) {
	g, release, err := s.acquire()
	if err != nil {
		return search.Result{}, err
	}
	defer release()
	return g.search(ctx, q)
}

// Refresh does nothing: Bleve's writes are visible when Index returns.
func (s *Store) Refresh(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("refreshing search index: %w", err)
	}
	return nil
}

// DocCount returns how many documents the index holds, tombstones
// included.
func (s *Store) DocCount() (uint64, error) {
	g, release, err := s.acquire()
	if err != nil {
		return 0, err
	}
	defer release()
	return g.idx.DocCount()
}

// Outdated reports whether the live index was made with an older mapping
// than the one this version creates. It serves all the same, but a
// rebuild (search.Rebuild) makes it cheaper to write to and, if it was
// made before it kept file names, keeps the names of the files of an
// edited message.
func (s *Store) Outdated() bool {
	g, release, err := s.acquire()
	if err != nil {
		return false
	}
	defer release()
	return g.outdated
}

// Close closes the index. It waits for calls in progress.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.live.idx.Close(); err != nil {
		return fmt.Errorf("closing search index: %w", err)
	}
	return nil
}

// NewGeneration creates an empty index in the next generation directory,
// beside the live one, for search.Rebuild.
func (s *Store) NewGeneration(ctx context.Context) (search.Generation, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("new search index generation: %w", err)
	}
	s.genMu.Lock()
	defer s.genMu.Unlock()
	g, release, err := s.acquire()
	if err != nil {
		return nil, err
	}
	live := g.name
	release()
	next, _ := parseGen(live)
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("listing search index dir: %w", err)
	}
	for _, e := range entries {
		if n, ok := parseGen(e.Name()); ok && n > next {
			next = n
		}
	}
	ng, err := s.create(genName(next + 1))
	if err != nil {
		return nil, err
	}
	s.log.Info("created search index generation", "generation", ng.name, "live", live)
	return &Generation{s: s, g: ng}, nil
}

// Generation is an index being rebuilt beside the live one.
type Generation struct {
	s *Store
	g *generation

	mu       sync.Mutex
	promoted bool
	done     bool
}

// Index implements search.Indexer. After Promote it writes to what is
// now the live index.
func (g *Generation) Index(ctx context.Context, docs []search.Doc) error {
	g.mu.Lock()
	discarded, promoted := g.done && !g.promoted, g.promoted
	g.mu.Unlock()
	if discarded {
		return errors.New("search index generation was discarded")
	}
	if promoted {
		return g.s.Index(ctx, docs)
	}
	return g.g.index(ctx, docs)
}

// Refresh does nothing, as Store.Refresh.
func (g *Generation) Refresh(ctx context.Context) error { return g.s.Refresh(ctx) }

// Promote points CURRENT at the generation, makes it the Store's live
// index, and closes and removes the previous one.
func (g *Generation) Promote(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("promoting search index generation: %w", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return errors.New("search index generation was already promoted or discarded")
	}
	s := g.s
	s.genMu.Lock()
	defer s.genMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("search index is closed")
	}
	if err := writeCurrent(s.dir, g.g.name); err != nil {
		s.mu.Unlock()
		return err
	}
	old := s.live
	s.live = g.g
	s.mu.Unlock()
	g.promoted, g.done = true, true
	s.log.Info("promoted search index generation", "generation", g.g.name, "previous", old.name)
	if err := old.idx.Close(); err != nil {
		s.log.Warn("closing the previous search index", "generation", old.name, "err", err)
	}
	if err := os.RemoveAll(old.path); err != nil {
		s.log.Warn("removing the previous search index", "generation", old.name, "err", err)
	}
	return nil
}

// Discard closes and removes a generation that was not promoted.
func (g *Generation) Discard(context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return nil
	}
	g.done = true
	err := g.g.idx.Close()
	if rerr := os.RemoveAll(g.g.path); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("discarding search index generation %s: %w", g.g.name, err)
	}
	return nil
}

// index applies docs: the changes of each document are folded in version
// order (search.Latest), a change no newer than what is stored is
// skipped, and an edit takes the stored document's files.
func (g *generation) index(ctx context.Context, docs []search.Doc) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("indexing: %w", err)
	}
	for _, d := range docs {
		switch d.Kind {
		case search.KindNone, search.KindDelete:
		case search.KindIndex, search.KindEdit:
			if !search.InTimeRange(d.SentAt) {
				return fmt.Errorf("indexing %s: sent_at %s out of range", d.ID(), d.SentAt)
			}
		default:
			return fmt.Errorf("indexing %s: unknown kind %v", d.ID(), d.Kind)
		}
	}
	latest := search.Latest(docs)
	if len(latest) == 0 {
		return nil
	}
	ids := make([]string, 0, len(latest))
	for id := range latest {
		ids = append(ids, id)
	}
	sort.Strings(ids)

	g.wmu.Lock()
	defer g.wmu.Unlock()
	stored, err := g.stored(ctx, ids)
	if err != nil {
		return err
	}
	b := g.idx.NewBatch()
	for _, id := range ids {
		d := latest[id]
		cur, ok := stored[id]
		if ok && cur.Version >= d.Version {
			continue // stale or repeated
		}
		if d = search.Fold(cur, d); d.Kind == search.KindDelete && ok && cur.Kind == search.KindDelete {
			continue // an edit of a deleted message
		}
		fields, err := g.docFields(d)
		if err != nil {
			return fmt.Errorf("indexing %s: %w", id, err)
		}
		if err := b.Index(id, fields); err != nil {
			return fmt.Errorf("indexing %s: %w", id, err)
		}
	}
	if b.Size() == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("indexing: %w", err)
	}
	if err := g.idx.Batch(b); err != nil {
		return fmt.Errorf("indexing a batch of %d: %w", b.Size(), err)
	}
	return nil
}

// docFields are the fields of d, a change folded (KindIndex or
// KindDelete), as g's mapping indexes them.
func (g *generation) docFields(d search.Doc) (map[string]any, error) {
	if d.Kind == search.KindDelete {
		// A tombstone: the text is gone, the version stays.
		return map[string]any{
			fieldConversation: d.ConversationID,
			fieldSeq:          float64(d.Seq),
			fieldVersion:      float64(d.Version),
			fieldDeleted:      true,
		}, nil
	}
	fields := map[string]any{
		fieldConversation: d.ConversationID,
		fieldSeq:          float64(d.Seq),
		fieldSender:       d.SenderID,
		fieldBody:         d.Text(),
		fieldSent:         d.SentAt.UTC().Format(time.RFC3339Nano),
		fieldVersion:      float64(d.Version),
	}
	if g.ordered {
		fields[fieldOrder] = orderKey(d.SentAt, d.ConversationID, d.Seq)
	} else {
		fields[fieldSentAt] = d.SentAt.UTC()
	}
	if len(d.Files) > 0 {
		files, err := json.Marshal(d.Files)
		if err != nil {
			return nil, fmt.Errorf("encoding its files: %w", err)
		}
		fields[fieldFiles] = string(files)
	}
	return fields, nil
}

// Erase implements search.Eraser on the live index.
func (s *Store) Erase(ctx context.Context, e search.Erasure) error {
	g, release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	return g.erase(ctx, e)
}

// Erase implements search.Eraser on the generation.
func (g *Generation) Erase(ctx context.Context, e search.Erasure) error {
	return g.g.erase(ctx, e)
}

// erase finds the erased user by hashing the senders the index knows
// (the terms of the sender field) and rewrites each of their messages
// sent at or before e.At as search.ErasedDoc, with its version.
func (g *generation) erase(ctx context.Context, e search.Erasure) error {
	dict, err := g.idx.FieldDict(fieldSender)
	if err != nil {
		return fmt.Errorf("erasing: listing senders: %w", err)
	}
	var senders []string
	for {
		entry, err := dict.Next()
		if err != nil {
			_ = dict.Close()
			return fmt.Errorf("erasing: listing senders: %w", err)
		}
		if entry == nil {
			break
		}
		if schemas.ErasureRef(entry.Term) == e.SubjectRef {
			senders = append(senders, entry.Term)
		}
	}
	if err := dict.Close(); err != nil {
		return fmt.Errorf("erasing: listing senders: %w", err)
	}
	g.wmu.Lock()
	defer g.wmu.Unlock()
	for _, sender := range senders {
		b := g.idx.NewBatch()
		for from := 0; ; from += listPage {
			req := bleve.NewSearchRequestOptions(term(fieldSender, sender), listPage, from, false)
			req.Fields = []string{fieldConversation, fieldSeq, fieldVersion, fieldBody, fieldSent, fieldFiles}
			req.SortBy([]string{"_id"})
			res, err := g.idx.SearchInContext(ctx, req)
			if err != nil {
				return fmt.Errorf("erasing: %w", err)
			}
			for _, h := range res.Hits {
				sent, ok := h.Fields[fieldSent].(string)
				if !ok {
					continue
				}
				d := search.Doc{Kind: search.KindIndex, SenderID: sender}
				if d.SentAt, err = time.Parse(time.RFC3339Nano, sent); err != nil {
					return fmt.Errorf("erasing: %s: %w", h.ID, err)
				}
				if d.SentAt.After(e.At) {
					continue
				}
				d.ConversationID, _ = h.Fields[fieldConversation].(string)
				seq, _ := h.Fields[fieldSeq].(float64)
				version, _ := h.Fields[fieldVersion].(float64)
				d.Seq, d.Version = uint64(seq), uint64(version)
				if files, ok := h.Fields[fieldFiles].(string); ok {
					if err := json.Unmarshal([]byte(files), &d.Files); err != nil {
						return fmt.Errorf("erasing: the files of %s: %w", h.ID, err)
					}
				}
				body, _ := h.Fields[fieldBody].(string)
				d = search.ErasedDoc(d)
				if body == d.Text() {
					continue // blank already
				}
				fields, err := g.docFields(d)
				if err != nil {
					return fmt.Errorf("erasing %s: %w", h.ID, err)
				}
				if err := b.Index(h.ID, fields); err != nil {
					return fmt.Errorf("erasing %s: %w", h.ID, err)
				}
			}
			if len(res.Hits) < listPage {
				break
			}
		}
		if b.Size() == 0 {
			continue
		}
		if err := g.idx.Batch(b); err != nil {
			return fmt.Errorf("erasing: a batch of %d: %w", b.Size(), err)
		}
	}
	return nil
}

// stored returns what the index holds of each of ids that exists, as a
// search.Doc for search.Fold: its version, and either a message's files
// (KindIndex) or a tombstone (KindDelete).
func (g *generation) stored(ctx context.Context, ids []string) (map[string]search.Doc, error) {
	req := bleve.NewSearchRequestOptions(query.NewDocIDQuery(ids), len(ids), 0, false)
	req.Fields = []string{fieldVersion, fieldSent, fieldFiles}
	req.Score = "none"
	res, err := g.idx.SearchInContext(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("reading stored documents: %w", err)
	}
	out := make(map[string]search.Doc, len(res.Hits))
	for _, h := range res.Hits {
		v, ok := h.Fields[fieldVersion].(float64)
		if !ok {
			return nil, fmt.Errorf("reading stored documents: document %s has no version", h.ID)
		}
		d := search.Doc{Kind: search.KindDelete, Version: uint64(v)}
		if _, message := h.Fields[fieldSent].(string); message {
			d.Kind = search.KindIndex
		}
		if files, ok := h.Fields[fieldFiles].(string); ok {
			if err := json.Unmarshal([]byte(files), &d.Files); err != nil {
				return nil, fmt.Errorf("reading stored documents: the files of %s: %w", h.ID, err)
			}
		}
		out[h.ID] = d
	}
	return out, nil
}

// listPage is how many documents documents reads per request.
const listPage = 1000

// documents returns every document of conversation, tombstones included,
// in seq order (search.Lister).
func (g *generation) documents(ctx context.Context, conversation string) ([]search.Doc, error) {
	q := query.NewTermQuery(conversation)
	q.SetField(fieldConversation)
	var out []search.Doc
	for from := 0; ; from += listPage {
		req := bleve.NewSearchRequestOptions(q, listPage, from, false)
		req.Fields = []string{fieldSeq, fieldVersion, fieldSender, fieldBody, fieldSent, fieldFiles}
		// Pages in id order, in both mappings (seq has no doc values
		// in the current one); seq order at the end.
		req.SortBy([]string{"_id"})
		res, err := g.idx.SearchInContext(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("listing the documents of %s: %w", conversation, err)
		}
		for _, h := range res.Hits {
			seq, _ := h.Fields[fieldSeq].(float64)
			version, _ := h.Fields[fieldVersion].(float64)
			d := search.Doc{Kind: search.KindDelete, ConversationID: conversation, Seq: uint64(seq), Version: uint64(version)}
			if sent, ok := h.Fields[fieldSent].(string); ok {
				d.Kind = search.KindIndex
				d.SenderID, _ = h.Fields[fieldSender].(string)
				d.Body, _ = h.Fields[fieldBody].(string)
				if d.SentAt, err = time.Parse(time.RFC3339Nano, sent); err != nil {
					return nil, fmt.Errorf("listing the documents of %s: %s: %w", conversation, h.ID, err)
				}
			}
			if files, ok := h.Fields[fieldFiles].(string); ok {
				if err := json.Unmarshal([]byte(files), &d.Files); err != nil {
					return nil, fmt.Errorf("listing the documents of %s: the files of %s: %w", conversation, h.ID, err)
				}
			}
			out = append(out, d)
		}
		if len(res.Hits) < listPage {
			slices.SortFunc(out, func(a, b search.Doc) int { return cmp.Compare(a.Seq, b.Seq) })
			return out, nil
		}
	}
}

// Documents implements search.Lister on the live index.
func (s *Store) Documents(ctx context.Context, conversation string) ([]search.Doc, error) {
	g, release, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	return g.documents(ctx, conversation)
}

// Documents implements search.Lister on the generation.
func (g *Generation) Documents(ctx context.Context, conversation string) ([]search.Doc, error) {
	return g.g.documents(ctx, conversation)
}

var (
	_ search.Lister = (*Store)(nil)
	_ search.Lister = (*Generation)(nil)
)

// search answers q: it builds the Bleve query of q's text and filters,
// runs it in q's order from q's cursor, and turns the hits into a page.
func (g *generation) search(ctx context.Context, q search.Query) (search.Result, error) {
	if err := ctx.Err(); err != nil {
		return search.Result{}, fmt.Errorf("searching: %w", err)
	}
	if err := q.Validate(); err != nil {
		return search.Result{}, err
	}
	q = q.Normalize()
	if len(q.Conversations) == 0 {
		return search.Result{}, nil
	}
	text, err := search.ParseText(q.Text)
	if err != nil {
		return search.Result{}, err
	}
	bq, ok := g.textQuery(text)
	if !ok {
		return search.Result{}, nil
	}
	root := g.filter(bq, q)
	res, err := g.idx.SearchInContext(ctx, g.request(root, q))
	if err != nil {
		if ctx.Err() != nil {
			return search.Result{}, fmt.Errorf("searching: %w", ctx.Err())
		}
		return search.Result{}, fmt.Errorf("searching: %w", err)
	}
	return g.page(res, q)
}

// textQuery is the boolean query of text: its words and phrases must
// match the body, its exclusions must not. It reports false when a clause
// that must match has no token, so that the search answers nothing.
func (g *generation) textQuery(text search.Text) (*query.BooleanQuery, bool) {
	bq := query.NewBooleanQuery(nil, nil, nil)
	for _, c := range text.Clauses {
		// A clause with no token would match nothing, and Bleve drops
		// such a clause from a boolean query instead: answer nothing.
		if !c.Exclude && len(g.text.Analyze([]byte(c.Text))) == 0 {
			return nil, false
		}
	}
	if w := text.Words(); w != "" {
		bq.AddMust(matchAll(w))
	}
	for _, c := range text.Clauses {
		var cq query.Query
		switch {
		case c.Phrase:
			pq := query.NewMatchPhraseQuery(c.Text)
			pq.SetField(fieldBody)
			cq = pq
		case c.Exclude:
			cq = matchAll(c.Text)
		default:
			continue // in Words
		}
		if c.Exclude {
			bq.AddMustNot(cq)
		} else {
			bq.AddMust(cq)
		}
	}
	return bq, true
}

// filter restricts bq to q's conversations, sender and time range. Up to
// the terms-filter limit the conversations are term filters; beyond it,
// each hit's document id is checked against them instead. The time range
// is checked on each hit's order key, or, in a generation made before
// the order key, is a date range filter on sent_at.
func (g *generation) filter(bq *query.BooleanQuery, q search.Query) query.Query {
	var filters []query.Query
	termConvs := len(q.Conversations) <= g.termsFilters
	if termConvs {
		convs := make([]query.Query, len(q.Conversations))
		for i, c := range q.Conversations {
			convs[i] = term(fieldConversation, c)
		}
		filters = append(filters, query.NewDisjunctionQuery(convs))
	}
	if q.Sender != "" {
		filters = append(filters, term(fieldSender, q.Sender))
	}
	timed := !q.From.IsZero() || !q.To.IsZero()
	if timed && !g.ordered {
		yes, no := true, false
		rq := query.NewDateRangeInclusiveQuery(q.From, q.To, &yes, &no)
		rq.SetField(fieldSentAt)
		filters = append(filters, rq)
	}
	if len(filters) > 0 {
		bq.AddFilter(query.NewConjunctionQuery(filters))
	}
	keyTimed := timed && g.ordered
	if termConvs && !keyTimed {
		return bq
	}
	allowed := func(string) bool { return true }
	if !termConvs {
		allowed = q.Allowed()
	}
	inTime := func(string) bool { return true }
	var fields []string
	if keyTimed {
		inTime = keyInTime(q.From, q.To)
		fields = []string{fieldOrder}
	}
	return query.NewCustomFilterQueryWithFilter(bq, func(_ context.Context, d *bsearch.DocumentMatch) (bool, error) {
		// The document id starts with the conversation id.
		conv, _, _ := strings.Cut(d.ID, "/")
		key, _ := d.Fields[fieldOrder].(string)
		return allowed(conv) && inTime(key), nil
	}, fields, nil)
}

// keyInTime reports whether an order key is of a message sent in [from,
// to); a zero time leaves that end open.
func keyInTime(from, to time.Time) func(key string) bool {
	lo, hi := "", ""
	if !from.IsZero() {
		lo = timeKey(from)
	}
	if !to.IsZero() {
		hi = timeKey(to)
	}
	return func(key string) bool {
		if len(key) < 16 {
			return false // not a message's key
		}
		t := key[:16]
		return t >= lo && (hi == "" || t < hi)
	}
}

// request is the search request of root for q: newest first (best first,
// then newest, by relevance), from q's cursor, one hit more than the limit
// to tell whether there is a next page.
func (g *generation) request(root query.Query, q search.Query) *bleve.SearchRequest {
	req := bleve.NewSearchRequestOptions(root, q.Limit+1, 0, false)
	req.Fields = []string{fieldConversation, fieldSeq, fieldSender, fieldSent}
	req.Highlight = bleve.NewHighlightWithStyle(html.Name)
	req.Highlight.AddField(fieldBody)
	var order bsearch.SortOrder
	var after []string
	if g.ordered {
		order = bsearch.SortOrder{&bsearch.SortField{Field: fieldOrder, Type: bsearch.SortFieldAsString, Desc: true}}
		if a := q.After; a != nil {
			after = []string{orderKey(a.SentAt, a.ConversationID, a.Seq)}
		}
	} else {
		order = bsearch.SortOrder{
			&bsearch.SortField{Field: fieldSentAt, Type: bsearch.SortFieldAsDate, Desc: true},
			&bsearch.SortField{Field: fieldConversation, Type: bsearch.SortFieldAsString, Desc: true},
			&bsearch.SortField{Field: fieldSeq, Type: bsearch.SortFieldAsNumber, Desc: true},
		}
		if a := q.After; a != nil {
			after = []string{a.SentAt.UTC().Format(time.RFC3339Nano), a.ConversationID, strconv.FormatUint(a.Seq, 10)}
		}
	}
	if q.Sort == search.SortRelevance {
		order = append(bsearch.SortOrder{&bsearch.SortScore{Desc: true}}, order...)
		if after != nil {
			after = append([]string{strconv.FormatFloat(q.After.Score, 'g', -1, 64)}, after...)
		}
	} else {
		req.Score = "none"
	}
	req.SortByCustom(order)
	if after != nil {
		req.SetSearchAfter(after)
	}
	return req
}

// page turns res into q's page of hits, with the cursor of the next page
// when there is one. A hit outside q's conversations is logged and
// dropped: the index must never widen what a user may read.
func (g *generation) page(res *bleve.SearchResult, q search.Query) (search.Result, error) {
	allowed := q.Allowed()
	var out search.Result
	hits := res.Hits
	if len(hits) > q.Limit {
		hits = hits[:q.Limit]
	}
	for i, h := range hits {
		hit, err := toHit(h)
		if err != nil {
			return search.Result{}, err
		}
		if q.Sort == search.SortRelevance {
			hit.Score = h.Score
			hit.Key.Score = h.Score
		}
		if i == q.Limit-1 && len(res.Hits) > q.Limit {
			k := hit.Key
			out.Next = &k
		}
		if !allowed(hit.ConversationID) {
			g.log.Error("search index returned a conversation outside the query; dropped", "conversation_id", hit.ConversationID)
			continue
		}
		out.Hits = append(out.Hits, hit)
	}
	return out, nil
}

func matchAll(text string) *query.MatchQuery {
	mq := query.NewMatchQuery(text)
	mq.SetField(fieldBody)
	mq.SetOperator(query.MatchQueryOperatorAnd)
	return mq
}

func term(field, value string) *query.TermQuery {
	tq := query.NewTermQuery(value)
	tq.SetField(field)
	return tq
}

func toHit(h *bsearch.DocumentMatch) (search.Hit, error) {
	conv, _ := h.Fields[fieldConversation].(string)
	seq, _ := h.Fields[fieldSeq].(float64)
	sender, _ := h.Fields[fieldSender].(string)
	sentStr, _ := h.Fields[fieldSent].(string)
	sent, err := time.Parse(time.RFC3339Nano, sentStr)
	if conv == "" || err != nil {
		return search.Hit{}, fmt.Errorf("search index document %s lacks stored fields", h.ID)
	}
	snippet := ""
	if f := h.Fragments[fieldBody]; len(f) > 0 {
		snippet = f[0]
	}
	hit := search.Hit{
		ConversationID: conv,
		Seq:            uint64(seq),
		SenderID:       sender,
		SentAt:         sent,
		Snippet:        snippet,
	}
	hit.Key = search.Key{SentAt: sent, ConversationID: conv, Seq: hit.Seq}
	return hit, nil
}
