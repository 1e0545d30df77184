package esindex_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/projections/search/esindex"
	"github.com/parley-chat/parley/projections/search/esindex/esfake"
	"github.com/parley-chat/parley/projections/search/searchtest"
	"github.com/parley-chat/parley/schemas/elasticsearch"
)

// runID makes the aliases of one test run unique on a shared cluster.
var (
	runID = func() string {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}()
	aliases atomic.Int64
)

func newAlias() string { return fmt.Sprintf("parley-test-%s-%d", runID, aliases.Add(1)) }

// open opens an index under a fresh alias and drops its indices and
// template when t ends.
func open(t testing.TB, addresses []string) *esindex.Index {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := esindex.Config{Addresses: addresses, Alias: newAlias(), Timeout: 30 * time.Second}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := esindex.Drop(ctx, cfg); err != nil {
			t.Errorf("dropping %s: %v", cfg.Alias, err)
		}
	})
	idx, err := esindex.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return idx
}

// TestIndex runs the conformance suite against the adapter talking HTTP
// to the in-process stand-in, one alias per index.
func TestIndex(t *testing.T) {
	t.Parallel()
	srv := esfake.Start(t)
	searchtest.Run(t, func(t *testing.T) search.Index { return open(t, []string{srv.URL()}) })
}

// TestIndexElasticsearch runs the conformance suite against a real
// cluster when PARLEY_ELASTICSEARCH_URL names it. Every index gets an
// alias (and template and indices) of its own, deleted when the test
// ends.
func TestIndexElasticsearch(t *testing.T) {
	url := os.Getenv("PARLEY_ELASTICSEARCH_URL")
	if url == "" {
		t.Skip("PARLEY_ELASTICSEARCH_URL is not set")
	}
	t.Parallel()
	searchtest.Run(t, func(t *testing.T) search.Index { return open(t, esindex.ParseAddresses(url)) })
}

func TestOpenCreatesTemplateAliasAndFirstIndex(t *testing.T) {
	t.Parallel()
	srv := esfake.Start(t)
	idx := open(t, []string{srv.URL()})
	defer idx.Close()
	want := idx.Alias() + "-000001"
	if got := srv.Indices(); !slices.Equal(got, []string{want}) {
		t.Fatalf("indices %v, want [%s]", got, want)
	}
	// A second Open of the same alias, as a second process would, keeps
	// the index.
	again, err := esindex.Open(t.Context(), esindex.Config{Addresses: []string{srv.URL()}, Alias: idx.Alias()})
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer again.Close()
	if got := srv.Indices(); !slices.Equal(got, []string{want}) {
		t.Errorf("after a second Open: indices %v, want [%s]", got, want)
	}
	if n := srv.Requests()["PUT /_index_template/{name}"]; n != 2 {
		t.Errorf("template put %d times, want once per Open", n)
	}
}

func TestConcurrentOpens(t *testing.T) {
	t.Parallel()
	srv := esfake.Start(t)
	alias := newAlias()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			idx, err := esindex.Open(t.Context(), esindex.Config{Addresses: []string{srv.URL()}, Alias: alias})
			if err == nil {
				err = idx.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
	if got := srv.Indices(); !slices.Equal(got, []string{alias + "-000001"}) {
		t.Errorf("indices %v, want one", got)
	}
}

func TestIndexFailsWhileTheClusterFails(t *testing.T) {
	t.Parallel()
	srv := esfake.Start(t)
	idx := open(t, []string{srv.URL()})
	defer idx.Close()
	doc := searchtest.Msg("c1", 1, "ann", "hello", searchtest.At(1))
	// 500 is not among the statuses the client retries by itself.
	srv.FailNext(1, http.StatusInternalServerError)
	if err := idx.Index(t.Context(), []search.Doc{doc}); err == nil {
		t.Fatal("Index succeeded while the bulk request failed")
	}
	// The projection retries the batch; now it goes through.
	if err := idx.Index(t.Context(), []search.Doc{doc}); err != nil {
		t.Fatalf("retried Index: %v", err)
	}
	if err := idx.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv.FailNext(1, http.StatusInternalServerError)
	if _, err := idx.Search(t.Context(), search.Query{Text: "hello", Conversations: []string{"c1"}, Limit: 1}); err == nil {
		t.Error("Search succeeded while the cluster failed")
	}
	res, err := idx.Search(t.Context(), search.Query{Text: "hello", Conversations: []string{"c1"}, Limit: 1})
	if err != nil || len(res.Hits) != 1 {
		t.Errorf("Search after the failure: %d hits, %v; want 1", len(res.Hits), err)
	}
}

// TestIndexRidesOutARestartedCluster: while the cluster is down, Index
// and Search fail (the projection retries the batch); once it is back on
// the same address, the same Index — its client and bulk indexer — works
// again and nothing written before or after is lost.
func TestIndexRidesOutARestartedCluster(t *testing.T) {
	t.Parallel()
	srv := esfake.Start(t)
	idx := open(t, []string{srv.URL()})
	defer idx.Close()
	before := searchtest.Msg("c1", 1, "ann", "hello before", searchtest.At(1))
	after := searchtest.Msg("c1", 2, "ann", "hello after", searchtest.At(2))
	if err := idx.Index(t.Context(), []search.Doc{before}); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := idx.Index(ctx, []search.Doc{after}); err == nil {
		t.Fatal("Index succeeded while the cluster was down")
	}
	if _, err := idx.Search(ctx, search.Query{Text: "hello", Conversations: []string{"c1"}, Limit: 5}); err == nil {
		t.Fatal("Search succeeded while the cluster was down")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// The projection's retry of the failed batch.
	if err := idx.Index(ctx, []search.Doc{after}); err != nil {
		t.Fatalf("Index after the restart: %v", err)
	}
	if err := idx.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := idx.Search(ctx, search.Query{Text: "hello", Conversations: []string{"c1"}, Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, h := range res.Hits {
		seqs = append(seqs, h.Seq)
	}
	slices.Sort(seqs)
	if !slices.Equal(seqs, []uint64{1, 2}) {
		t.Errorf("after the restart the index holds seqs %v, want [1 2]", seqs)
	}
}

func TestOpenRefusesWhatIsNotElasticsearch(t *testing.T) {
	t.Parallel()
	plain := http.NewServeMux()
	plain.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"version":{"number":"8.19.7"}}`))
	})
	srv := startHTTP(t, plain)
	if _, err := esindex.Open(t.Context(), esindex.Config{Addresses: []string{srv}}); err == nil {
		t.Fatal("Open accepted a server without the X-Elastic-Product header")
	}
	old := http.NewServeMux()
	old.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		_, _ = w.Write([]byte(`{"version":{"number":"7.17.0"}}`))
	})
	if _, err := esindex.Open(t.Context(), esindex.Config{Addresses: []string{startHTTP(t, old)}}); err == nil {
		t.Fatal("Open accepted Elasticsearch 7")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	err := esindex.Config{Addresses: []string{"elasticsearch:9200"}, Alias: "Bad", Refresh: "sometimes"}.Validate()
	if err == nil {
		t.Fatal("an invalid config passed")
	}
	for _, want := range []string{"not an http(s) URL", "invalid alias", "refresh must be"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if err := (esindex.Config{Addresses: esindex.ParseAddresses(" http://a:9200, https://b:9200 ,")}).Validate(); err != nil {
		t.Errorf("a valid config: %v", err)
	}
}

// TestOpenAddsTheFilesFieldToAnOlderIndex: an index created before its
// mapping had the files field (strict, so a document with files would be
// refused) gets the field when the adapter opens it, and keeps a
// message's file names through an edit.
func TestOpenAddsTheFilesFieldToAnOlderIndex(t *testing.T) {
	t.Parallel()
	srv := esfake.Start(t)
	alias := newAlias()
	tmpl, err := elasticsearch.Template(alias)
	if err != nil {
		t.Fatal(err)
	}
	var tm struct {
		Template struct {
			Settings map[string]any `json:"settings"`
			Mappings struct {
				Dynamic    string         `json:"dynamic"`
				Routing    map[string]any `json:"_routing"`
				Properties map[string]any `json:"properties"`
			} `json:"mappings"`
		} `json:"template"`
	}
	if err := json.Unmarshal(tmpl, &tm); err != nil {
		t.Fatal(err)
	}
	if _, ok := tm.Template.Mappings.Properties["files"]; !ok {
		t.Fatal("the template has no files field")
	}
	delete(tm.Template.Mappings.Properties, "files")
	older, _ := json.Marshal(map[string]any{
		"settings": tm.Template.Settings,
		"mappings": map[string]any{"dynamic": tm.Template.Mappings.Dynamic, "_routing": tm.Template.Mappings.Routing, "properties": tm.Template.Mappings.Properties},
		"aliases":  map[string]any{alias: map[string]any{"is_write_index": true}},
	})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL()+"/"+alias+"-000001", bytes.NewReader(older))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("creating the older index: %s", res.Status)
	}

	cfg := esindex.Config{Addresses: []string{srv.URL()}, Alias: alias, Timeout: 30 * time.Second}
	idx, err := esindex.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = idx.Close() })
	if got := srv.Indices(); !slices.Equal(got, []string{alias + "-000001"}) {
		t.Fatalf("indices %v, want the older one only", got)
	}
	docs := []search.Doc{
		searchtest.WithFiles("c1", 1, "ann", "look", searchtest.At(1), "whiteboard.jpg"),
		searchtest.Edited("c1", 1, 2, "ann", "have a look", searchtest.At(1)),
	}
	for _, d := range docs {
		if err := idx.Index(t.Context(), []search.Doc{d}); err != nil {
			t.Fatalf("Index(%v): %v", d.Kind, err)
		}
	}
	if err := idx.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := idx.Search(t.Context(), search.Query{Text: "whiteboard", Conversations: []string{"c1"}, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Hits) != 1 || got.Hits[0].Seq != 1 {
		t.Errorf("whiteboard after an edit: hits %+v, want message 1", got.Hits)
	}
}

// TestListingPagesAPointInTimeAndClosesIt: Documents reads one point in
// time of the alias, page by page (500 a page), and closes it (esfake's
// TestPointInTime shows what a point in time keeps).
func TestListingPagesAPointInTimeAndClosesIt(t *testing.T) {
	t.Parallel()
	srv := esfake.Start(t)
	idx := open(t, []string{srv.URL()})
	ctx := t.Context()
	var docs []search.Doc
	for i := 1; i <= 1001; i++ {
		docs = append(docs, searchtest.Msg("g", uint64(i), "ann", fmt.Sprintf("message %d", i), searchtest.At(i)))
	}
	if err := idx.Index(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if err := idx.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	before := srv.Requests()
	got, err := idx.Documents(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1001 || got[0].Seq != 1 || got[1000].Seq != 1001 || got[500].Version != 501 || got[500].Body != "message 501" {
		t.Fatalf("listed %d documents", len(got))
	}
	after := srv.Requests()
	for shape, want := range map[string]int{"POST /{index}/_pit": 1, "POST /_search": 3, "DELETE /_pit": 1} {
		if n := after[shape] - before[shape]; n != want {
			t.Errorf("%s: %d requests; want %d", shape, n, want)
		}
	}
}
