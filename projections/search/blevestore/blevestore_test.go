package blevestore_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/projections/search/blevestore"
	"github.com/parley-chat/parley/projections/search/searchtest"
)

func open(t testing.TB, dir string, opt ...blevestore.Option) *blevestore.Store {
	t.Helper()
	s, err := blevestore.Open(dir, opt...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// TestIndex runs the conformance suite, one directory per index.
func TestIndex(t *testing.T) {
	t.Parallel()
	searchtest.Run(t, func(t *testing.T) search.Index { return open(t, t.TempDir()) })
}

func TestReopenKeepsDocumentsAndVersions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir)
	d := searchtest.Msg("c1", 1, "ann", "durable words", searchtest.At(1))
	d.Version = 7
	if err := s.Index(t.Context(), []search.Doc{d}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	stale := searchtest.Msg("c1", 1, "ann", "stale words", searchtest.At(1))
	stale.Version = 6
	if err := s.Index(t.Context(), []search.Doc{stale}); err != nil {
		t.Fatal(err)
	}
	for text, want := range map[string]int{"durable": 1, "stale": 0} {
		res, err := s.Search(t.Context(), search.Query{Text: text, Conversations: []string{"c1"}, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Hits) != want {
			t.Errorf("after reopening, %q finds %d, want %d", text, len(res.Hits), want)
		}
	}
}

func TestSecondProcessIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	start := time.Now()
	_, err := blevestore.Open(dir, blevestore.WithLockTimeout(100*time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open: got %v, want an error saying the index is in use", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("second Open took %v, want about the lock timeout", d)
	}
}

func TestPromoteSwitchesDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir)
	gen, err := s.NewGeneration(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.Index(t.Context(), []search.Doc{searchtest.Msg("c1", 1, "ann", "rebuilt", searchtest.At(1))}); err != nil {
		t.Fatal(err)
	}
	if err := gen.Promote(t.Context()); err != nil {
		t.Fatal(err)
	}
	cur, err := os.ReadFile(filepath.Join(dir, "CURRENT"))
	if err != nil || strings.TrimSpace(string(cur)) != "gen-000002" {
		t.Fatalf("CURRENT is %q (%v), want gen-000002", cur, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "gen-000001")); !os.IsNotExist(err) {
		t.Errorf("the previous generation is still there: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	res, err := s.Search(t.Context(), search.Query{Text: "rebuilt", Conversations: []string{"c1"}, Limit: 10})
	if err != nil || len(res.Hits) != 1 {
		t.Fatalf("after reopening the promoted generation: %v hits, err %v; want 1", len(res.Hits), err)
	}
}

func TestOpenRemovesOlderGenerations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// As if a rebuild in another process promoted gen-000002 while this
	// one was stopped, but could not remove gen-000001.
	if err := os.Rename(filepath.Join(dir, "gen-000001"), filepath.Join(dir, "gen-000002")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "gen-000001"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "CURRENT"), []byte("gen-000002\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, "gen-000001")); !os.IsNotExist(err) {
		t.Errorf("the older generation was kept: %v", err)
	}
}

func TestCorruptCurrentIsAnError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "CURRENT"), []byte("../../etc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := blevestore.Open(dir); err == nil {
		t.Fatal("Open with a CURRENT naming no generation succeeded")
	}
}

func TestClosedStoreFails(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping of an open index: %v", err)
	}
	if n, err := s.DocCount(); err != nil || n != 0 {
		t.Errorf("after Ping the index holds %d documents (%v), want none", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping after Close succeeded")
	}
	if err := s.Index(t.Context(), []search.Doc{searchtest.Msg("c1", 1, "ann", "x", searchtest.At(1))}); err == nil {
		t.Error("Index after Close succeeded")
	}
	if _, err := s.Search(t.Context(), search.Query{Text: "x", Conversations: []string{"c1"}, Limit: 1}); err == nil {
		t.Error("Search after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestIndexIDFilter runs the suite with every conversation set checked on
// document ids, the path large sets take.
func TestIndexIDFilter(t *testing.T) {
	t.Parallel()
	searchtest.Run(t, func(t *testing.T) search.Index {
		return open(t, t.TempDir(), blevestore.WithTermFilterLimit(0))
	})
}

// TestIndexLargeBatchInChunks indexes a batch of several pacing chunks
// in which a message's edit comes chunks after the message and a stale
// change of another comes after it: every message is indexed once, the
// edit applies, and the stale change is skipped.
func TestIndexLargeBatchInChunks(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	defer s.Close()
	const n = 600
	var docs []search.Doc
	for i := range n {
		docs = append(docs, searchtest.Msg("c1", uint64(i+1), "ann", fmt.Sprintf("word%d", i+1), searchtest.At(i)))
	}
	docs = append(docs, searchtest.Edited("c1", 1, n+1, "ann", "rewritten", searchtest.At(0)))
	stale := searchtest.Msg("c1", 2, "ann", "stale", searchtest.At(1))
	stale.Version = 1
	docs = append(docs, stale)
	if err := s.Index(t.Context(), docs); err != nil {
		t.Fatal(err)
	}
	if c, err := s.DocCount(); err != nil || c != n {
		t.Errorf("DocCount = %d, %v; want %d", c, err, n)
	}
	for text, want := range map[string]int{"rewritten": 1, "word1": 0, "word2": 1, "stale": 0, fmt.Sprintf("word%d", n): 1} {
		res, err := s.Search(t.Context(), search.Query{Text: text, Conversations: []string{"c1"}, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Hits) != want {
			t.Errorf("%q finds %d, want %d", text, len(res.Hits), want)
		}
	}
}

// openBeforeOrderKey opens a copy of testdata/before-order-key: an empty
// index as the version before the order key made it (numeric seq and
// date-time sent_at, indexed; no file names kept).
func openBeforeOrderKey(t *testing.T, opt ...blevestore.Option) (*blevestore.Store, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", "before-order-key"))); err != nil {
		t.Fatal(err)
	}
	s := open(t, dir, opt...)
	if !s.Outdated() {
		t.Errorf("an index made before the order key is not outdated")
	}
	return s, dir
}

// TestIndexMadeBeforeTheOrderKey runs the conformance suite on indexes
// made by the version before the order key: until a rebuild they serve,
// sort and filter as they were made to.
func TestIndexMadeBeforeTheOrderKey(t *testing.T) {
	t.Parallel()
	t.Run("term filters", func(t *testing.T) {
		t.Parallel()
		searchtest.Run(t, func(t *testing.T) search.Index { s, _ := openBeforeOrderKey(t); return s })
	})
	t.Run("id filter", func(t *testing.T) {
		t.Parallel()
		searchtest.Run(t, func(t *testing.T) search.Index {
			s, _ := openBeforeOrderKey(t, blevestore.WithTermFilterLimit(0))
			return s
		})
	})
}

// TestRebuildBringsAnOutdatedIndexUpToDate rebuilds an index made before
// the order key: the promoted generation is up to date, also when opened
// again, and serves what was indexed into it.
func TestRebuildBringsAnOutdatedIndexUpToDate(t *testing.T) {
	t.Parallel()
	s, dir := openBeforeOrderKey(t)
	if err := s.Index(t.Context(), []search.Doc{searchtest.Msg("c1", 1, "ann", "before", searchtest.At(1))}); err != nil {
		t.Fatal(err)
	}
	gen, err := s.NewGeneration(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	docs := []search.Doc{
		searchtest.Msg("c1", 1, "ann", "before", searchtest.At(1)),
		searchtest.Msg("c1", 2, "bob", "after", searchtest.At(2)),
	}
	if err := gen.Index(t.Context(), docs); err != nil {
		t.Fatal(err)
	}
	if !s.Outdated() {
		t.Error("the live index is up to date before the promotion")
	}
	if err := gen.Promote(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s.Outdated() {
		t.Error("the promoted generation is outdated")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	if s.Outdated() {
		t.Error("the promoted generation is outdated when opened again")
	}
	for _, tc := range []struct {
		text string
		want uint64
	}{{"before", 1}, {"after", 2}} {
		res, err := s.Search(t.Context(), search.Query{Text: tc.text, Conversations: []string{"c1"}, Limit: 10})
		if err != nil || len(res.Hits) != 1 || res.Hits[0].Seq != tc.want {
			t.Errorf("%q finds %+v (%v), want c1/%d", tc.text, res.Hits, err, tc.want)
		}
	}
}
