// The Elasticsearch index: opening (template, alias), bulk indexing with
// external versions and tombstones, refreshes.

package esindex

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/elastic/go-elasticsearch/v8/esutil"

	"github.com/parley-chat/parley/projections/search"
	esschema "github.com/parley-chat/parley/schemas/elasticsearch"
)

// Index is the Elasticsearch search index. See the package doc.
type Index struct {
	cfg Config
	es  *elasticsearch.Client
	bi  esutil.BulkIndexer
	log *slog.Logger

	closeOnce sync.Once
	closeErr  error
}

var (
	_ search.Index       = (*Index)(nil)
	_ search.Rebuildable = (*Index)(nil)
)

// Open connects to the cluster, checks that it is Elasticsearch 8 or
// later, puts the index template and creates the first index behind the
// alias if the alias does not exist. It does not retry: the caller does,
// with backoff.
func Open(ctx context.Context, cfg Config) (*Index, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	es, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses: cfg.Addresses,
		Username:  cfg.Username,
		Password:  cfg.Password,
		APIKey:    cfg.APIKey,
		Transport: timeoutTransport{rt: cfg.Transport, d: cfg.Timeout},
	})
	if err != nil {
		return nil, fmt.Errorf("elasticsearch client: %w", err)
	}
	ix := &Index{cfg: cfg, es: es, log: cfg.Logger.With("component", "search-index", "alias", cfg.Alias)}
	if err := ix.checkVersion(ctx); err != nil {
		return nil, err
	}
	if err := ix.putTemplate(ctx); err != nil {
		return nil, err
	}
	if err := ix.ensureAlias(ctx); err != nil {
		return nil, err
	}
	if err := ix.putFilesMapping(ctx); err != nil {
		return nil, err
	}
	ix.bi, err = esutil.NewBulkIndexer(esutil.BulkIndexerConfig{
		Client:     es,
		NumWorkers: cfg.Workers,
		FlushBytes: cfg.FlushBytes,
		// Index flushes what it added before returning; the interval only
		// bounds how long an item abandoned by a cancelled Index waits.
		FlushInterval: time.Second,
		Refresh:       cfg.Refresh,
		OnError: func(_ context.Context, err error) {
			ix.log.Warn("bulk request failed", "err", err)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("bulk indexer: %w", err)
	}
	return ix, nil
}

// Alias is the alias the index serves.
func (ix *Index) Alias() string { return ix.cfg.Alias }

// esError is an error answer of Elasticsearch.
type esError struct {
	Status int
	Type   string
	Reason string
}

func (e *esError) Error() string {
	return fmt.Sprintf("elasticsearch: %d %s: %s", e.Status, e.Type, e.Reason)
}

// do runs a request and decodes a 2xx body into out (if not nil). An
// error answer becomes an *esError.
func (ix *Index) do(ctx context.Context, what string, req esapi.Request, out any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	res, err := req.Do(ctx, ix.es)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	defer res.Body.Close()
	if res.IsError() {
		return fmt.Errorf("%s: %w", what, readError(res))
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		return nil
	}
	dec := json.NewDecoder(res.Body)
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%s: decoding the answer: %w", what, err)
	}
	return nil
}

func readError(res *esapi.Response) *esError {
	e := &esError{Status: res.StatusCode}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	var v struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &v) == nil && len(v.Error) > 0 {
		var obj struct{ Type, Reason string }
		if json.Unmarshal(v.Error, &obj) == nil && obj.Type != "" {
			e.Type, e.Reason = obj.Type, obj.Reason
			return e
		}
		var s string
		if json.Unmarshal(v.Error, &s) == nil {
			e.Reason = s
			return e
		}
	}
	e.Reason = strings.TrimSpace(string(body))
	return e
}

func isType(err error, typ string) bool {
	var e *esError
	return errors.As(err, &e) && e.Type == typ
}

func isStatus(err error, status int) bool {
	var e *esError
	return errors.As(err, &e) && e.Status == status
}

func (ix *Index) checkVersion(ctx context.Context) error {
	var info struct {
		Version struct {
			Number string `json:"number"`
		} `json:"version"`
	}
	if err := ix.do(ctx, "reading cluster info", esapi.InfoRequest{}, &info); err != nil {
		return err
	}
	major, _, _ := strings.Cut(info.Version.Number, ".")
	if n, err := strconv.Atoi(major); err != nil || n < 8 {
		return fmt.Errorf("elasticsearch %q is not supported: version 8 or later is required", info.Version.Number)
	}
	return nil
}

func (ix *Index) putTemplate(ctx context.Context) error {
	body, err := esschema.Template(ix.cfg.Alias)
	if err != nil {
		return err
	}
	return ix.do(ctx, "putting the index template", esapi.IndicesPutIndexTemplateRequest{Name: ix.cfg.Alias, Body: bytes.NewReader(body)}, nil)
}

// aliasIndices returns the indices the alias points at (none if it does
// not exist).
func (ix *Index) aliasIndices(ctx context.Context) ([]string, error) {
	var out map[string]json.RawMessage
	err := ix.do(ctx, "reading the alias", esapi.IndicesGetAliasRequest{Name: []string{ix.cfg.Alias}}, &out)
	if isStatus(err, http.StatusNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// ensureAlias creates the first index with the alias unless the alias
// exists. Concurrent Opens are safe: one creates the index, the others
// see it exists and add the alias if it is still missing.
func (ix *Index) ensureAlias(ctx context.Context) error {
	names, err := ix.aliasIndices(ctx)
	if err != nil || len(names) > 0 {
		return err
	}
	first := esschema.IndexName(ix.cfg.Alias, 1)
	body, _ := json.Marshal(map[string]any{"aliases": map[string]any{ix.cfg.Alias: map[string]any{"is_write_index": true}}})
	err = ix.do(ctx, "creating the first index", esapi.IndicesCreateRequest{Index: first, Body: bytes.NewReader(body)}, nil)
	if err == nil {
		ix.log.Info("created the search index", "index", first)
		return nil
	}
	if !isType(err, "resource_already_exists_exception") {
		return err
	}
	if names, err = ix.aliasIndices(ctx); err != nil || len(names) > 0 {
		return err
	}
	return ix.updateAliases(ctx, []map[string]any{{"add": map[string]any{"index": first, "alias": ix.cfg.Alias, "is_write_index": true}}})
}

func (ix *Index) updateAliases(ctx context.Context, actions []map[string]any) error {
	body, _ := json.Marshal(map[string]any{"actions": actions})
	return ix.do(ctx, "updating the alias", esapi.IndicesUpdateAliasesRequest{Body: bytes.NewReader(body)}, nil)
}

// Index implements search.Indexer: the changes go through the bulk
// indexer with external versions; a version conflict (the stored
// document is as new or newer) counts as success.
func (ix *Index) Index(ctx context.Context, docs []search.Doc) error {
	return ix.index(ctx, docs, ix.cfg.Alias)
}

// docSource is a document's _source.
type docSource struct {
	ConversationID string  `json:"conversation_id"`
	Seq            uint64  `json:"seq"`
	SenderID       string  `json:"sender_id,omitempty"`
	Body           *string `json:"body,omitempty"`
	SentAt         string  `json:"sent_at,omitempty"`
	Deleted        bool    `json:"deleted,omitempty"`
	// Files are the names of the message's files, kept in _source only
	// (body holds their searchable text), so that an edit keeps them.
	Files []string `json:"files,omitempty"`
}

// filesMapping is the mapping of docSource.Files, as the index template
// has it.
const filesMapping = `{"properties":{"files":{"type":"keyword","index":false,"doc_values":false}}}`

// putFilesMapping adds the files field to the indices behind the alias:
// indices created from a template that did not have it yet get it at
// startup (adding a field is additive; putting it again changes
// nothing).
func (ix *Index) putFilesMapping(ctx context.Context) error {
	return ix.do(ctx, "adding the files field to the mapping", esapi.IndicesPutMappingRequest{
		Index: []string{ix.cfg.Alias}, Body: strings.NewReader(filesMapping)}, nil)
}

// storedForEdits returns, for the documents of edits (KindEdit changes
// left after folding a batch), what target holds of them as search.Doc
// for search.Fold: version, and a message's files (KindIndex) or a
// tombstone (KindDelete). It reads with _mget, which is real-time: a
// document indexed by the previous batch is seen without a refresh.
func (ix *Index) storedForEdits(ctx context.Context, latest map[string]search.Doc, target string) (map[string]search.Doc, error) {
	type getDoc struct {
		ID      string `json:"_id"`
		Routing string `json:"routing"`
	}
	var req struct {
		Docs []getDoc `json:"docs"`
	}
	for id, d := range latest {
		if d.Kind == search.KindEdit {
			req.Docs = append(req.Docs, getDoc{ID: id, Routing: d.ConversationID})
		}
	}
	if len(req.Docs) == 0 {
		return nil, nil
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding the documents to read: %w", err)
	}
	var res struct {
		Docs []struct {
			ID      string    `json:"_id"`
			Found   bool      `json:"found"`
			Version int64     `json:"_version"`
			Source  docSource `json:"_source"`
		} `json:"docs"`
	}
	if err := ix.do(ctx, "reading the documents of edits", esapi.MgetRequest{Index: target, Body: bytes.NewReader(body)}, &res); err != nil {
		return nil, err
	}
	out := make(map[string]search.Doc, len(res.Docs))
	for _, d := range res.Docs {
		if !d.Found {
			continue
		}
		s := search.Doc{Kind: search.KindIndex, Version: uint64(max(d.Version, 0)), Files: d.Source.Files}
		if d.Source.Deleted {
			s.Kind, s.Files = search.KindDelete, nil
		}
		out[d.ID] = s
	}
	return out, nil
}

func (ix *Index) index(ctx context.Context, docs []search.Doc, target string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("indexing: %w", err)
	}
	for _, d := range docs {
		switch d.Kind {
		case search.KindNone:
			continue
		case search.KindIndex, search.KindDelete, search.KindEdit:
		default:
			return fmt.Errorf("indexing %s: unknown kind %v", d.ID(), d.Kind)
		}
		if d.Version > 1<<62 {
			return fmt.Errorf("indexing %s: version %d is beyond what Elasticsearch keeps", d.ID(), d.Version)
		}
	}
	latest := search.Latest(docs)
	stored, err := ix.storedForEdits(ctx, latest, target)
	if err != nil {
		return fmt.Errorf("indexing: %w", err)
	}
	for id, d := range latest {
		if d.Kind != search.KindEdit {
			continue
		}
		cur, ok := stored[id]
		switch {
		case ok && cur.Version >= d.Version:
			delete(latest, id) // stale or repeated
		case ok && cur.Kind == search.KindDelete:
			delete(latest, id) // an edit of a deleted message
		default:
			latest[id] = search.Fold(cur, d)
		}
	}
	if len(latest) == 0 {
		return nil
	}
	var (
		mu       sync.Mutex
		pending  = len(latest)
		failures []error
		stale    int
	)
	done := func(err error, wasStale bool) {
		mu.Lock()
		defer mu.Unlock()
		pending--
		if wasStale {
			stale++
		}
		if err != nil && len(failures) < 5 {
			failures = append(failures, err)
		}
	}
	for id, d := range latest {
		src := docSource{ConversationID: d.ConversationID, Seq: d.Seq}
		if d.Kind == search.KindDelete {
			src.Deleted = true
		} else {
			body := d.Text()
			src.SenderID, src.Body, src.SentAt = d.SenderID, &body, d.SentAt.UTC().Format(time.RFC3339Nano)
			src.Files = d.Files
		}
		b, err := json.Marshal(src)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", id, err)
		}
		version := int64(d.Version)
		err = ix.bi.Add(ctx, esutil.BulkIndexerItem{
			Index:       target,
			Action:      "index",
			DocumentID:  id,
			Routing:     d.ConversationID,
			Version:     &version,
			VersionType: "external",
			Body:        bytes.NewReader(b),
			OnSuccess: func(context.Context, esutil.BulkIndexerItem, esutil.BulkIndexerResponseItem) {
				done(nil, false)
			},
			OnFailure: func(_ context.Context, item esutil.BulkIndexerItem, res esutil.BulkIndexerResponseItem, err error) {
				switch {
				case err != nil:
					done(fmt.Errorf("%s: %w", item.DocumentID, err), false)
				case res.Status == http.StatusConflict && res.Error.Type == "version_conflict_engine_exception":
					done(nil, true) // the stored document is as new or newer
				default:
					done(fmt.Errorf("%s: %d %s: %s", item.DocumentID, res.Status, res.Error.Type, res.Error.Reason), false)
				}
			},
		})
		if err != nil {
			return fmt.Errorf("indexing %s: %w", id, err)
		}
	}
	if err := ix.bi.Flush(ctx); err != nil {
		return fmt.Errorf("indexing: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		return fmt.Errorf("indexing %d documents: %w", len(latest), errors.Join(failures...))
	}
	if pending > 0 {
		return fmt.Errorf("indexing %d documents: %d got no answer", len(latest), pending)
	}
	if stale > 0 {
		ix.log.Debug("skipped stale changes", "count", stale)
	}
	return nil
}

// Refresh implements search.Index: POST <alias>/_refresh.
func (ix *Index) Refresh(ctx context.Context) error {
	return ix.refresh(ctx, ix.cfg.Alias)
}

func (ix *Index) refresh(ctx context.Context, target string) error {
	return ix.do(ctx, "refreshing", esapi.IndicesRefreshRequest{Index: []string{target}}, nil)
}

// Close flushes the bulk indexer and stops its workers. It does not wait
// for searches in progress; calls after Close fail.
func (ix *Index) Close() error {
	ix.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ix.cfg.Timeout)
		defer cancel()
		if err := ix.bi.Close(ctx); err != nil {
			ix.closeErr = fmt.Errorf("closing the bulk indexer: %w", err)
		}
		ix.es.Close(ctx)
	})
	return ix.closeErr
}

// Drop deletes every index of cfg's alias and its index template: for
// tests and for decommissioning. Deleting needs concrete names
// (Elasticsearch 8 refuses wildcards by default), so it lists them first.
func Drop(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	es, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses: cfg.Addresses, Username: cfg.Username, Password: cfg.Password, APIKey: cfg.APIKey,
		Transport: timeoutTransport{rt: cfg.Transport, d: cfg.Timeout},
	})
	if err != nil {
		return fmt.Errorf("elasticsearch client: %w", err)
	}
	defer es.Close(ctx)
	ix := &Index{cfg: cfg, es: es, log: cfg.Logger}
	names, err := ix.indices(ctx)
	if err != nil {
		return err
	}
	if len(names) > 0 {
		if err := ix.do(ctx, "deleting indices", esapi.IndicesDeleteRequest{Index: names}, nil); err != nil {
			return err
		}
	}
	err = ix.do(ctx, "deleting the index template", esapi.IndicesDeleteIndexTemplateRequest{Name: cfg.Alias}, nil)
	if isStatus(err, http.StatusNotFound) {
		return nil
	}
	return err
}

// indices returns the names of the alias's generations, in order.
func (ix *Index) indices(ctx context.Context) ([]string, error) {
	var out map[string]json.RawMessage
	if err := ix.do(ctx, "listing indices", esapi.IndicesGetAliasRequest{Index: []string{ix.cfg.Alias + "-*"}}, &out); err != nil {
		return nil, err
	}
	var names []string
	for n := range out {
		if _, ok := esschema.ParseIndexName(ix.cfg.Alias, n); ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

// NewGeneration creates the next index of the alias, from the template,
// without the alias, for search.Rebuild.
func (ix *Index) NewGeneration(ctx context.Context) (search.Generation, error) {
	names, err := ix.indices(ctx)
	if err != nil {
		return nil, err
	}
	next := 1
	for _, n := range names {
		if g, _ := esschema.ParseIndexName(ix.cfg.Alias, n); g >= next {
			next = g + 1
		}
	}
	name := esschema.IndexName(ix.cfg.Alias, next)
	if err := ix.do(ctx, "creating index "+name, esapi.IndicesCreateRequest{Index: name}, nil); err != nil {
		return nil, err
	}
	ix.log.Info("created search index generation", "index", name)
	return &Generation{ix: ix, name: name}, nil
}

// Generation is an index being rebuilt beside the one behind the alias.
type Generation struct {
	ix   *Index
	name string

	mu                  sync.Mutex
	promoted, discarded bool
}

// Name is the generation's index.
func (g *Generation) Name() string { return g.name }

// Index implements search.Indexer, writing to the generation's index.
func (g *Generation) Index(ctx context.Context, docs []search.Doc) error {
	g.mu.Lock()
	discarded := g.discarded && !g.promoted
	g.mu.Unlock()
	if discarded {
		return errors.New("search index generation was discarded")
	}
	return g.ix.index(ctx, docs, g.name)
}

// Refresh refreshes the generation's index.
func (g *Generation) Refresh(ctx context.Context) error { return g.ix.refresh(ctx, g.name) }

// Promote moves the alias to the generation in one atomic alias update
// and deletes the indices it pointed at. A write in flight to a deleted
// index fails and is retried by its projection, through the alias.
func (g *Generation) Promote(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.promoted || g.discarded {
		return errors.New("search index generation was already promoted or discarded")
	}
	if err := g.ix.refresh(ctx, g.name); err != nil {
		return err
	}
	old, err := g.ix.aliasIndices(ctx)
	if err != nil {
		return err
	}
	actions := []map[string]any{}
	for _, o := range old {
		if o != g.name {
			actions = append(actions, map[string]any{"remove": map[string]any{"index": o, "alias": g.ix.cfg.Alias}})
		}
	}
	actions = append(actions, map[string]any{"add": map[string]any{"index": g.name, "alias": g.ix.cfg.Alias, "is_write_index": true}})
	if err := g.ix.updateAliases(ctx, actions); err != nil {
		return err
	}
	g.promoted = true
	g.ix.log.Info("promoted search index generation", "index", g.name, "previous", old)
	var stale []string
	for _, o := range old {
		if o != g.name {
			stale = append(stale, o)
		}
	}
	if len(stale) > 0 {
		if err := g.ix.do(ctx, "deleting the previous index", esapi.IndicesDeleteRequest{Index: stale}, nil); err != nil {
			g.ix.log.Warn("deleting the previous search index", "index", stale, "err", err)
		}
	}
	return nil
}

// Discard deletes a generation that was not promoted.
func (g *Generation) Discard(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.promoted || g.discarded {
		return nil
	}
	g.discarded = true
	err := g.ix.do(ctx, "deleting index "+g.name, esapi.IndicesDeleteRequest{Index: []string{g.name}}, nil)
	if isStatus(err, http.StatusNotFound) {
		return nil
	}
	return err
}
