package blevestore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/cputime"
	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/projections/search/blevestore"
)

// corpus generates chat-like messages deterministically: bodies of 6 to
// 20 words drawn from a vocabulary of 20,000 with a Zipf distribution, as
// natural language has.
type corpus struct {
	rng  *rand.Rand
	zipf *rand.Zipf
}

func newCorpus(seed uint64) *corpus {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return &corpus{rng: rng, zipf: rand.NewZipf(rng, 1.07, 2, 19_999)}
}

func word(i uint64) string { return fmt.Sprintf("w%d", i) }

func (c *corpus) body() string {
	n := 6 + c.rng.IntN(15)
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(word(c.zipf.Uint64()))
	}
	return b.String()
}

var benchBase = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// newMessages fills docs with new messages, numbered on from *seq, over
// 1,000 conversations.
func (c *corpus) newMessages(docs []search.Doc, seq *uint64) {
	for i := range docs {
		*seq++
		conv := fmt.Sprintf("g_%d", *seq%1000)
		docs[i] = search.Doc{Kind: search.KindIndex, ConversationID: conv, Seq: *seq, Version: *seq, SenderID: "u1", Body: c.body(), SentAt: benchBase.Add(time.Duration(*seq) * time.Millisecond)}
	}
}

// BenchmarkIndex_Batch500 measures indexing new messages in batches of
// 500, as the projection applies them: docs/s.
func BenchmarkIndex_Batch500(b *testing.B) {
	s, err := blevestore.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := newCorpus(1)
	const batch = 500
	var seq uint64
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		docs := make([]search.Doc, batch)
		c.newMessages(docs, &seq)
		b.StartTimer()
		if err := s.Index(ctx, docs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "docs/s")
}

const (
	bench1MDocs  = 1_000_000
	bench1MConvs = 10_000
	// bench1MVersion names the generator and the index's mapping: change
	// it with either, so that a cached index of another shape is rebuilt.
	bench1MVersion = "v2"
)

// open1M opens the 1,000,000-message index, building it on first use
// under the user's cache directory (PARLEY_BENCH_CACHE overrides it):
// building takes minutes, so it is kept between runs.
func open1M(b *testing.B, opt ...blevestore.Option) *blevestore.Store {
	b.Helper()
	root := os.Getenv("PARLEY_BENCH_CACHE")
	if root == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		root = filepath.Join(dir, "parley-bench")
	}
	dir := filepath.Join(root, "search-1M-"+bench1MVersion)
	done := filepath.Join(dir, "COMPLETE")
	if _, err := os.Stat(done); err == nil {
		s, err := blevestore.Open(dir, opt...)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	s, err := blevestore.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("building the 1M-message index under %s (once)", dir)
	start := time.Now()
	c := newCorpus(2)
	ctx := context.Background()
	docs := make([]search.Doc, 0, 5000)
	for i := range uint64(bench1MDocs) {
		conv, seq := i%bench1MConvs, i/bench1MConvs+1
		docs = append(docs, search.Doc{
			Kind: search.KindIndex, ConversationID: fmt.Sprintf("g_%d", conv), Seq: seq, Version: seq,
			SenderID: fmt.Sprintf("u%d", c.rng.IntN(50)), Body: c.body(),
			SentAt: benchBase.Add(time.Duration(i) * time.Second),
		})
		if len(docs) == cap(docs) || i == bench1MDocs-1 {
			if err := s.Index(ctx, docs); err != nil {
				b.Fatal(err)
			}
			docs = docs[:0]
		}
	}
	b.Logf("built in %v (%.0f docs/s)", time.Since(start), bench1MDocs/time.Since(start).Seconds())
	if err := os.WriteFile(done, []byte(time.Now().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	return open1M(b, opt...)
}

// BenchmarkSearch_1M measures searches of an index of 1,000,000 messages
// in 10,000 conversations: one word of middling frequency, within a
// user's allowed set. It reports the latency percentiles p50 and p99.
func BenchmarkSearch_1M(b *testing.B) {
	if err := open1M(b).Close(); err != nil { // build it outside the timings
		b.Fatal(err)
	}
	cases := []struct {
		name       string
		convs      int
		sort       search.Sort
		termFilter int  // WithTermFilterLimit
		timed      bool // a tenth of the index's time span
	}{
		{"1000convs_recent", 1000, search.SortRecent, 200, false},
		{"1000convs_relevance", 1000, search.SortRelevance, 200, false},
		{"1000convs_recent_termfilter", 1000, search.SortRecent, 1000, false},
		{"100convs_recent", 100, search.SortRecent, 200, false},
		{"100convs_recent_idfilter", 100, search.SortRecent, 0, false},
		{"20convs_recent", 20, search.SortRecent, 200, false},
		{"20convs_recent_idfilter", 20, search.SortRecent, 0, false},
		{"100convs_recent_timerange", 100, search.SortRecent, 200, true},
		{"100convs_relevance_timerange", 100, search.SortRelevance, 200, true},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			s := open1M(b, blevestore.WithTermFilterLimit(tc.termFilter))
			defer s.Close()
			rng := rand.New(rand.NewPCG(3, 4))
			var lat []time.Duration
			hits := 0
			ctx := context.Background()
			for b.Loop() {
				convs := make([]string, tc.convs)
				first := rng.IntN(bench1MConvs - tc.convs)
				for i := range convs {
					convs[i] = fmt.Sprintf("g_%d", first+i)
				}
				q := search.Query{Text: word(uint64(20 + rng.IntN(200))), Conversations: convs, Sort: tc.sort, Limit: 20}
				if tc.timed {
					q.From = benchBase.Add(bench1MDocs * time.Second * 3 / 10)
					q.To = benchBase.Add(bench1MDocs * time.Second * 4 / 10)
				}
				start := time.Now()
				res, err := s.Search(ctx, q)
				lat = append(lat, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				hits += len(res.Hits)
			}
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50_ms")
			b.ReportMetric(pct(0.99), "p99_ms")
			b.ReportMetric(float64(hits)/float64(len(lat)), "hits/op")
		})
	}
}

// BenchmarkIndex_Chunks indexes new messages one pacing chunk (256
// documents) per call, as the search projection does under a heavy load,
// over 1,000 conversations. Beside docs/s it reports the process's CPU
// per document (getrusage), which counts Bleve's background work — the
// persister writing segments and the merger merging them — and not only
// the calls' own time.
func BenchmarkIndex_Chunks(b *testing.B) {
	s, err := blevestore.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := newCorpus(1)
	const chunk = 256
	var seq uint64
	ctx := context.Background()
	docs := make([]search.Doc, chunk)
	cpu0, err := cputime.Process()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		c.newMessages(docs, &seq)
		if err := s.Index(ctx, docs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "docs/s")
	cpu, err := cputime.Process()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((cpu-cpu0).Microseconds())/float64(seq), "cpu-µs/doc")
}
