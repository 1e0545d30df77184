// The search index conformance suite: Run and the cases every adapter
// must pass.

package searchtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/projections/search"
)

// Base is the time of the documents the suite builds unless told
// otherwise: a time with nanoseconds, to catch indexes that round.
var Base = time.Date(2025, time.March, 14, 15, 9, 26, 535897932, time.UTC)

// At returns Base plus i milliseconds: distinct, ordered times at the
// precision every adapter sorts by.
func At(i int) time.Time { return Base.Add(time.Duration(i) * time.Millisecond) }

// Msg returns the KindIndex document of a sent message: version = seq.
func Msg(conv string, seq uint64, sender, body string, at time.Time) search.Doc {
	return search.Doc{Kind: search.KindIndex, ConversationID: conv, Seq: seq, Version: seq, SenderID: sender, Body: body, SentAt: at}
}

// WithFiles returns the document of a sent message, as Msg, with files
// of those names.
func WithFiles(conv string, seq uint64, sender, body string, at time.Time, files ...string) search.Doc {
	d := Msg(conv, seq, sender, body, at)
	d.Files = files
	return d
}

// Edited returns the edit of message seq, sent at at, by the event at
// version: its new body, without its files (an edit carries none).
func Edited(conv string, seq, version uint64, sender, body string, at time.Time) search.Doc {
	return search.Doc{Kind: search.KindEdit, ConversationID: conv, Seq: seq, Version: version, SenderID: sender, Body: body, SentAt: at}
}

// Deleted returns the deletion of message seq by the event at version.
func Deleted(conv string, seq, version uint64) search.Doc {
	return search.Doc{Kind: search.KindDelete, ConversationID: conv, Seq: seq, Version: version}
}

// hangTimeout is how long a call may take before the suite reports that
// it hangs.
const hangTimeout = time.Minute

type suite struct {
	newIndex func(t *testing.T) search.Index
}

// Run runs the conformance suite against the indexes newIndex returns.
func Run(t *testing.T, newIndex func(t *testing.T) search.Index) {
	t.Helper()
	s := &suite{newIndex: newIndex}
	tests := []struct {
		name string
		run  func(t *testing.T, s *suite)
	}{
		{"a word finds the messages holding it, whole and in any case", testMatchWord},
		{"every word must match", testAllWords},
		{"a phrase matches its words in order", testPhrase},
		{"an excluded word or phrase leaves messages out", testExclude},
		{"hits carry the document's fields exactly", testHitFields},
		{"only the given conversations are searched", testConversationFilter},
		{"the sender filter", testSenderFilter},
		{"the time range includes from and excludes to", testTimeRange},
		{"recent sort is newest first, ties by conversation and seq", testSortRecent},
		{"relevance sort puts the better match first", testSortRelevance},
		{"paging newest first visits every hit once", func(t *testing.T, s *suite) { testPaging(t, s, search.SortRecent) }},
		{"paging by relevance visits every hit once", func(t *testing.T, s *suite) { testPaging(t, s, search.SortRelevance) }},
		{"paging with filters visits every hit once", testPagingFiltered},
		{"the snippet highlights the match and escapes the body", testHighlight},
		{"a stale version is ignored", testStaleVersion},
		{"a stale version in the same batch is ignored", testStaleInBatch},
		{"a deletion removes the message and older events do not bring it back", testDelete},
		{"indexing the same batch twice changes nothing", testIdempotent},
		{"file names are searchable and an edit keeps them with its new body", testEditKeepsFiles},
		{"docs of kind none change nothing", testKindNone},
		{"an erasure blanks the user's messages up to its time, keeping their versions", testErasure},
		{"a malformed query is a bad query", testBadQuery},
		{"a word no message holds makes the whole query find nothing", testNoTokens},
		{"concurrent indexing keeps the newest version", testConcurrentVersions},
		{"a done context makes every call return its error", testContextDone},
		{"a promoted generation replaces the live index", testGenerationPromote},
		{"a discarded generation leaves the live index as it was", testGenerationDiscard},
		{"the listing holds every document of a conversation as indexed, in seq order", testListing},
		{"the listing pages through a long conversation", testListingPages},
		{"a generation lists its own documents", testListingGeneration},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, s)
		})
	}
}

// open returns a new index that is closed when t ends.
func (s *suite) open(t *testing.T) search.Index {
	t.Helper()
	idx := s.newIndex(t)
	if idx == nil {
		t.Fatal("factory returned a nil index")
	}
	t.Cleanup(func() {
		if err := idx.Close(); err != nil {
			t.Errorf("closing index: %v", err)
		}
	})
	return idx
}

// noHang runs f and fails t if it has not returned within hangTimeout.
func noHang(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(hangTimeout):
		t.Fatalf("%s did not return within %v", what, hangTimeout)
	}
}

func index(t *testing.T, idx search.Indexer, docs ...search.Doc) {
	t.Helper()
	var err error
	noHang(t, "Index", func() { err = idx.Index(t.Context(), docs) })
	if err != nil {
		t.Fatalf("Index(%d docs): %v", len(docs), err)
	}
	if r, ok := idx.(interface{ Refresh(context.Context) error }); ok {
		if err := r.Refresh(t.Context()); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
	}
}

func find(t *testing.T, idx search.Searcher, q search.Query) search.Result {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = search.MaxLimit
	}
	var res search.Result
	var err error
	noHang(t, "Search", func() { res, err = idx.Search(t.Context(), q) })
	if err != nil {
		t.Fatalf("Search(%+v): %v", q, err)
	}
	for _, h := range res.Hits {
		if !slices.Contains(q.Conversations, h.ConversationID) {
			t.Fatalf("Search(%q) returned %s/%d of a conversation it was not given %v", q.Text, h.ConversationID, h.Seq, q.Conversations)
		}
	}
	return res
}

// ids returns "conv/seq" of each hit, in order.
func ids(res search.Result) []string {
	out := make([]string, len(res.Hits))
	for i, h := range res.Hits {
		out[i] = search.DocID(h.ConversationID, h.Seq)
	}
	return out
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func wantIDs(t *testing.T, what string, got search.Result, want ...string) {
	t.Helper()
	if g := sorted(ids(got)); !slices.Equal(g, sorted(want)) {
		t.Errorf("%s: got %v, want %v", what, g, sorted(want))
	}
}

func testMatchWord(t *testing.T, s *suite) {
	idx := s.open(t)
	index(t, idx,
		Msg("c1", 1, "ann", "We deploy on Friday", At(1)),
		Msg("c1", 2, "bob", "DEPLOY, now!", At(2)),
		Msg("c1", 3, "ann", "the deployment went fine", At(3)),
		Msg("c1", 4, "bob", "nothing to see", At(4)),
		Msg("c1", 5, "ann", "Déjà vu, ÉCOLE", At(5)),
	)
	all := []string{"c1"}
	wantIDs(t, "deploy", find(t, idx, search.Query{Text: "deploy", Conversations: all}), "c1/1", "c1/2")
	wantIDs(t, "DePlOy", find(t, idx, search.Query{Text: "DePlOy", Conversations: all}), "c1/1", "c1/2")
	wantIDs(t, "deployment", find(t, idx, search.Query{Text: "deployment", Conversations: all}), "c1/3")
	wantIDs(t, "école (non-ASCII lower-casing)", find(t, idx, search.Query{Text: "école", Conversations: all}), "c1/5")
	wantIDs(t, "absent", find(t, idx, search.Query{Text: "absent", Conversations: all}))
}

func testAllWords(t *testing.T, s *suite) {
	idx := s.open(t)
	index(t, idx,
		Msg("c1", 1, "ann", "deploy on friday", At(1)),
		Msg("c1", 2, "ann", "deploy on monday", At(2)),
		Msg("c1", 3, "ann", "friday drinks", At(3)),
	)
	wantIDs(t, "deploy friday", find(t, idx, search.Query{Text: "friday deploy", Conversations: []string{"c1"}}), "c1/1")
}

func testPhrase(t *testing.T, s *suite) {
	idx := s.open(t)
	index(t, idx,
		Msg("c1", 1, "ann", "the Release Notes are out", At(1)),
		Msg("c1", 2, "ann", "notes on the release", At(2)),
		Msg("c1", 3, "ann", "release the notes", At(3)),
	)
	wantIDs(t, "phrase", find(t, idx, search.Query{Text: `"release notes"`, Conversations: []string{"c1"}}), "c1/1")
	wantIDs(t, "phrase and word", find(t, idx, search.Query{Text: `out "release   notes"`, Conversations: []string{"c1"}}), "c1/1")
}

func testExclude(t *testing.T, s *suite) {
	idx := s.open(t)
	index(t, idx,
		Msg("c1", 1, "ann", "deploy on friday", At(1)),
		Msg("c1", 2, "ann", "deploy on monday", At(2)),
		Msg("c1", 3, "ann", "deploy the old plan", At(3)),
	)
	wantIDs(t, "-friday", find(t, idx, search.Query{Text: "deploy -friday", Conversations: []string{"c1"}}), "c1/2", "c1/3")
	wantIDs(t, `-"old plan"`, find(t, idx, search.Query{Text: `deploy -"old plan"`, Conversations: []string{"c1"}}), "c1/1", "c1/2")
}

func testHitFields(t *testing.T, s *suite) {
	idx := s.open(t)
	at := time.Date(2031, time.December, 31, 23, 59, 59, 999999999, time.UTC)
	index(t, idx, Msg("g_abc-DEF_1", 4611686018427387904>>10, "user.name+tag@example.org", "hello world", at))
	res := find(t, idx, search.Query{Text: "hello", Conversations: []string{"g_abc-DEF_1"}})
	if len(res.Hits) != 1 {
		t.Fatalf("got %d hits, want 1", len(res.Hits))
	}
	h := res.Hits[0]
	if h.ConversationID != "g_abc-DEF_1" || h.Seq != 4611686018427387904>>10 || h.SenderID != "user.name+tag@example.org" || !h.SentAt.Equal(at) {
		t.Errorf("hit is %+v, want the indexed document's fields", h)
	}
	if h.Key.ConversationID != h.ConversationID || h.Key.Seq != h.Seq {
		t.Errorf("hit key %+v does not name the hit", h.Key)
	}
	if res.Next != nil {
		t.Errorf("the only page has Next %+v, want nil", res.Next)
	}
}

func testConversationFilter(t *testing.T, s *suite) {
	idx := s.open(t)
	var docs []search.Doc
	for i, c := range []string{"c1", "c2", "c3", "c10"} {
		docs = append(docs, Msg(c, 1, "ann", "secret plan", At(i)))
	}
	index(t, idx, docs...)
	wantIDs(t, "c1,c3", find(t, idx, search.Query{Text: "plan", Conversations: []string{"c1", "c3"}}), "c1/1", "c3/1")
	wantIDs(t, "c1 (not a prefix of c10)", find(t, idx, search.Query{Text: "plan", Conversations: []string{"c1"}}), "c1/1")
	wantIDs(t, "no conversations", find(t, idx, search.Query{Text: "plan", Conversations: nil}))
	wantIDs(t, "an unknown conversation", find(t, idx, search.Query{Text: "plan", Conversations: []string{"c4"}}))
	many := make([]string, search.MaxConversations)
	for i := range many {
		many[i] = fmt.Sprintf("x%d", i)
	}
	many[len(many)-1] = "c2"
	wantIDs(t, "the most conversations a query may name", find(t, idx, search.Query{Text: "plan", Conversations: many}), "c2/1")
}

func testSenderFilter(t *testing.T, s *suite) {
	idx := s.open(t)
	index(t, idx,
		Msg("c1", 1, "ann", "lunch?", At(1)),
		Msg("c1", 2, "bob", "lunch!", At(2)),
		Msg("c2", 1, "ann", "lunch at noon", At(3)),
		Msg("c2", 2, "Ann", "lunch at one", At(4)),
	)
	wantIDs(t, "sender ann", find(t, idx, search.Query{Text: "lunch", Conversations: []string{"c1", "c2"}, Sender: "ann"}), "c1/1", "c2/1")
	wantIDs(t, "sender nobody", find(t, idx, search.Query{Text: "lunch", Conversations: []string{"c1", "c2"}, Sender: "nobody"}))
}

func testTimeRange(t *testing.T, s *suite) {
	idx := s.open(t)
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	index(t, idx,
		Msg("c1", 1, "ann", "standup", t0.Add(-time.Nanosecond)),
		Msg("c1", 2, "ann", "standup", t0),
		Msg("c1", 3, "ann", "standup", t0.Add(time.Hour-time.Millisecond)),
		Msg("c1", 4, "ann", "standup", t0.Add(time.Hour)),
	)
	c := []string{"c1"}
	wantIDs(t, "[t0, t0+1h)", find(t, idx, search.Query{Text: "standup", Conversations: c, From: t0, To: t0.Add(time.Hour)}), "c1/2", "c1/3")
	wantIDs(t, "from t0", find(t, idx, search.Query{Text: "standup", Conversations: c, From: t0}), "c1/2", "c1/3", "c1/4")
	wantIDs(t, "to t0", find(t, idx, search.Query{Text: "standup", Conversations: c, To: t0}), "c1/1")
}

func testSortRecent(t *testing.T, s *suite) {
	idx := s.open(t)
	same := At(50)
	index(t, idx,
		Msg("a", 1, "ann", "ping", At(10)),
		Msg("b", 7, "ann", "ping", same),
		Msg("a", 2, "ann", "ping", same),
		Msg("b", 8, "ann", "ping", same),
		Msg("c", 1, "ann", "ping", At(90)),
		Msg("a", 3, "ann", "ping ping ping", At(20)),
		// An id that another starts with, and seqs of one and two digits.
		Msg("ab", 9, "ann", "ping", same),
		Msg("ab", 10, "ann", "ping", same),
	)
	got := ids(find(t, idx, search.Query{Text: "ping", Conversations: []string{"a", "ab", "b", "c"}}))
	want := []string{"c/1", "b/8", "b/7", "ab/10", "ab/9", "a/2", "a/3", "a/1"}
	if !slices.Equal(got, want) {
		t.Errorf("recent order %v, want %v", got, want)
	}
}

func testSortRelevance(t *testing.T, s *suite) {
	idx := s.open(t)
	long := "apple " + strings.Repeat("filler words that say nothing much ", 8)
	index(t, idx,
		Msg("c1", 1, "ann", long, At(1)),
		Msg("c1", 2, "ann", "apple apple apple", At(2)),
		Msg("c1", 3, "ann", "pear", At(3)),
		Msg("c1", 4, "ann", "an apple a day", At(4)),
	)
	res := find(t, idx, search.Query{Text: "apple", Conversations: []string{"c1"}, Sort: search.SortRelevance})
	got := ids(res)
	if len(got) != 3 || got[0] != "c1/2" || got[2] != "c1/1" {
		t.Errorf("relevance order %v, want c1/2 first and the long c1/1 last", got)
	}
	for i := 1; i < len(res.Hits); i++ {
		if res.Hits[i].Score > res.Hits[i-1].Score {
			t.Errorf("scores are not descending: %v then %v", res.Hits[i-1].Score, res.Hits[i].Score)
		}
	}
	if len(res.Hits) > 0 && res.Hits[0].Score <= 0 {
		t.Errorf("relevance hit has score %v, want > 0", res.Hits[0].Score)
	}
}

// pageAll follows the cursor with pages of size limit and returns every
// hit in order, failing on an empty page that claims more.
func pageAll(t *testing.T, idx search.Searcher, q search.Query, limit int) []string {
	t.Helper()
	q.Limit = limit
	var all []string
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
		res := find(t, idx, q)
		if len(res.Hits) > limit {
			t.Fatalf("page of %d hits, limit %d", len(res.Hits), limit)
		}
		all = append(all, ids(res)...)
		if res.Next == nil {
			return all
		}
		if len(res.Hits) == 0 {
			t.Fatal("an empty page has a Next")
		}
		next := *res.Next
		q.After = &next
	}
}

func testPaging(t *testing.T, s *suite, order search.Sort) {
	idx := s.open(t)
	var docs []search.Doc
	convs := []string{"p1", "p2", "p3"}
	for i := range 57 {
		c := convs[i%3]
		body := "needle " + strings.Repeat("hay ", i%7) + fmt.Sprint("number", i)
		if i%5 == 0 {
			body = "needle needle " + fmt.Sprint("number", i)
		}
		at := At(i / 4) // four messages share each millisecond
		if i%9 == 0 {
			at = At(100) // and several the newest
		}
		docs = append(docs, Msg(c, uint64(i+1), "ann", body, at))
	}
	index(t, idx, docs...)
	q := search.Query{Text: "needle", Conversations: convs, Sort: order}
	one := ids(find(t, idx, q))
	if len(one) != 57 {
		t.Fatalf("one page holds %d hits, want 57", len(one))
	}
	if dup := duplicates(one); len(dup) > 0 {
		t.Fatalf("one page repeats %v", dup)
	}
	for _, limit := range []int{1, 7, 10, 57} {
		paged := pageAll(t, idx, q, limit)
		if !slices.Equal(paged, one) {
			t.Errorf("pages of %d give %v, want the order of one page %v", limit, paged, one)
		}
	}
}

func testPagingFiltered(t *testing.T, s *suite) {
	idx := s.open(t)
	var docs []search.Doc
	for i := range 40 {
		sender := []string{"ann", "bob"}[i%2]
		docs = append(docs, Msg([]string{"f1", "f2", "f3"}[i%3], uint64(i+1), sender, "report", At(i)))
	}
	index(t, idx, docs...)
	q := search.Query{Text: "report", Conversations: []string{"f1", "f3"}, Sender: "bob", From: At(5), To: At(35)}
	var want []string
	for i := 34; i >= 5; i-- {
		if i%2 == 1 && i%3 != 1 {
			want = append(want, search.DocID([]string{"f1", "f2", "f3"}[i%3], uint64(i+1)))
		}
	}
	if got := pageAll(t, idx, q, 3); !slices.Equal(got, want) {
		t.Errorf("filtered pages give %v, want %v", got, want)
	}
}

func duplicates(s []string) []string {
	seen := map[string]bool{}
	var dup []string
	for _, x := range s {
		if seen[x] {
			dup = append(dup, x)
		}
		seen[x] = true
	}
	return dup
}

func testHighlight(t *testing.T, s *suite) {
	idx := s.open(t)
	index(t, idx,
		Msg("c1", 1, "ann", `<script>alert("x")</script> & the Deploy is done`, At(1)),
		Msg("c1", 2, "ann", strings.Repeat("lorem ipsum ", 60)+"deploy at the very end", At(2)),
	)
	res := find(t, idx, search.Query{Text: "deploy", Conversations: []string{"c1"}})
	if len(res.Hits) != 2 {
		t.Fatalf("got %d hits, want 2", len(res.Hits))
	}
	for _, h := range res.Hits {
		if !strings.Contains(strings.ToLower(h.Snippet), "<mark>deploy</mark>") {
			t.Errorf("snippet of %d is %q, want the match in <mark>", h.Seq, h.Snippet)
		}
		if strings.Contains(h.Snippet, "<script>") || strings.Contains(h.Snippet, `"x"`) {
			t.Errorf("snippet of %d is %q, want the body HTML-escaped", h.Seq, h.Snippet)
		}
	}
	if h := res.Hits[1]; h.Seq == 1 && !strings.Contains(h.Snippet, "&lt;script&gt;") {
		t.Errorf("snippet %q lacks the escaped markup", h.Snippet)
	}
}

func testStaleVersion(t *testing.T, s *suite) {
	idx := s.open(t)
	newer := Msg("c1", 3, "ann", "the new text", At(3))
	newer.Version = 9
	older := Msg("c1", 3, "ann", "the old text", At(2))
	older.Version = 5
	index(t, idx, newer)
	index(t, idx, older)
	c := []string{"c1"}
	wantIDs(t, "old after new", find(t, idx, search.Query{Text: "old", Conversations: c}))
	wantIDs(t, "new", find(t, idx, search.Query{Text: "new", Conversations: c}), "c1/3")
	equal := Msg("c1", 3, "ann", "the equal text", At(2))
	equal.Version = 9
	index(t, idx, equal)
	wantIDs(t, "same version again", find(t, idx, search.Query{Text: "equal", Conversations: c}))
	newest := Msg("c1", 3, "ann", "the newest text", At(4))
	newest.Version = 10
	index(t, idx, newest)
	wantIDs(t, "a newer version replaces", find(t, idx, search.Query{Text: "newest", Conversations: c}), "c1/3")
	wantIDs(t, "the replaced text is gone", find(t, idx, search.Query{Text: "new", Conversations: c}))
}

func testStaleInBatch(t *testing.T, s *suite) {
	idx := s.open(t)
	v := func(body string, version uint64) search.Doc {
		d := Msg("c1", 1, "ann", body, At(int(version)))
		d.Version = version
		return d
	}
	index(t, idx, v("seven", 7), v("three", 3), v("five", 5))
	c := []string{"c1"}
	wantIDs(t, "seven", find(t, idx, search.Query{Text: "seven", Conversations: c}), "c1/1")
	wantIDs(t, "three", find(t, idx, search.Query{Text: "three", Conversations: c}))
	wantIDs(t, "five", find(t, idx, search.Query{Text: "five", Conversations: c}))
}

func testDelete(t *testing.T, s *suite) {
	idx := s.open(t)
	c := []string{"c1"}
	index(t, idx, Msg("c1", 1, "ann", "regret this", At(1)), Msg("c1", 2, "ann", "keep this", At(2)))
	index(t, idx, Deleted("c1", 1, 5))
	wantIDs(t, "after delete", find(t, idx, search.Query{Text: "this", Conversations: c}), "c1/2")
	index(t, idx, Msg("c1", 1, "ann", "regret this", At(1)))
	wantIDs(t, "after the original again", find(t, idx, search.Query{Text: "regret", Conversations: c}))
	index(t, idx, Deleted("c1", 1, 5), Deleted("c1", 9, 12))
	wantIDs(t, "deletes repeated, and of an unknown message", find(t, idx, search.Query{Text: "this", Conversations: c}), "c1/2")
	index(t, idx, Deleted("c1", 2, 6), Msg("c1", 2, "ann", "keep this", At(2)))
	wantIDs(t, "a delete and an older index in one batch", find(t, idx, search.Query{Text: "this", Conversations: c}))
}

func testEditKeepsFiles(t *testing.T, s *suite) {
	idx := s.open(t)
	c := []string{"c1"}
	// The message and its edit in two writes with no refresh between:
	// the edit must find the files of a document written just before.
	if err := idx.Index(t.Context(), []search.Doc{WithFiles("c1", 1, "ann", "look", At(1), "whiteboard_2025-03.jpg", "notes.pdf")}); err != nil {
		t.Fatalf("Index: %v", err)
	}
	index(t, idx, Edited("c1", 1, 2, "ann", "have a look", At(1)))
	for _, q := range []string{"whiteboard_2025-03.jpg", "whiteboard", "jpg", "notes.pdf", "have"} {
		wantIDs(t, q+" after an edit", find(t, idx, search.Query{Text: q, Conversations: c}), "c1/1")
	}
	wantIDs(t, "look, a word of the new body", find(t, idx, search.Query{Text: "look", Conversations: c}), "c1/1")
	index(t, idx, Edited("c1", 1, 3, "ann", "nothing", At(1)))
	wantIDs(t, "the edited-out word", find(t, idx, search.Query{Text: "have", Conversations: c}))
	wantIDs(t, "a file after a second edit", find(t, idx, search.Query{Text: "notes", Conversations: c}), "c1/1")
	index(t, idx, Edited("c1", 1, 2, "ann", "stale", At(1)))
	wantIDs(t, "a stale edit", find(t, idx, search.Query{Text: "stale", Conversations: c}))

	// A message and its edits in one batch, in any order.
	index(t, idx,
		Edited("c1", 2, 6, "bob", "final words", At(2)),
		WithFiles("c1", 2, "bob", "", At(2), "deck.pdf"),
		Edited("c1", 2, 4, "bob", "first words", At(2)))
	wantIDs(t, "a file edited in its batch", find(t, idx, search.Query{Text: "deck", Conversations: c}), "c1/2")
	wantIDs(t, "the newest edit of the batch", find(t, idx, search.Query{Text: "final", Conversations: c}), "c1/2")
	wantIDs(t, "an older edit of the batch", find(t, idx, search.Query{Text: "first", Conversations: c}))

	// A deletion drops the names; an edit after it brings nothing back.
	index(t, idx, Deleted("c1", 1, 7))
	index(t, idx, Edited("c1", 1, 8, "ann", "back again", At(1)))
	for _, q := range []string{"whiteboard", "notes", "back"} {
		wantIDs(t, q+" after a deletion", find(t, idx, search.Query{Text: q, Conversations: c}))
	}
	index(t, idx, Deleted("c1", 2, 9), Edited("c1", 2, 10, "bob", "back again", At(2)))
	for _, q := range []string{"deck", "back"} {
		wantIDs(t, q+" after a deletion and an edit in one batch", find(t, idx, search.Query{Text: q, Conversations: c}))
	}
	index(t, idx, Edited("c1", 3, 11, "ann", "an edit of a message never indexed", At(3)))
	wantIDs(t, "an edit with no document", find(t, idx, search.Query{Text: "never", Conversations: c}), "c1/3")
}

func testIdempotent(t *testing.T, s *suite) {
	idx := s.open(t)
	var docs []search.Doc
	for i := range 30 {
		docs = append(docs, Msg("c1", uint64(i+1), "ann", fmt.Sprint("again ", i), At(i)))
	}
	index(t, idx, docs...)
	first := find(t, idx, search.Query{Text: "again", Conversations: []string{"c1"}})
	index(t, idx, docs...)
	index(t, idx, append(docs[10:20:20], docs...)...)
	second := find(t, idx, search.Query{Text: "again", Conversations: []string{"c1"}})
	if !slices.Equal(ids(first), ids(second)) || len(first.Hits) != 30 {
		t.Errorf("after re-indexing got %v, want the 30 of before %v", ids(second), ids(first))
	}
}

func testKindNone(t *testing.T, s *suite) {
	idx := s.open(t)
	index(t, idx, search.Doc{Kind: search.KindNone, ConversationID: "c1", Version: 0})
	index(t, idx, search.Doc{Kind: search.KindNone}, Msg("c1", 1, "ann", "hello", At(1)), search.Doc{Kind: search.KindNone, ConversationID: "c1", Seq: 1, Version: 99})
	wantIDs(t, "after none docs", find(t, idx, search.Query{Text: "hello", Conversations: []string{"c1"}}), "c1/1")
}

func testBadQuery(t *testing.T, s *suite) {
	idx := s.open(t)
	index(t, idx, Msg("c1", 1, "ann", "hello", At(1)))
	ok := search.Query{Text: "hello", Conversations: []string{"c1"}, Limit: 10}
	cases := map[string]func(q *search.Query){
		"an open quote":               func(q *search.Query) { q.Text = `"hello` },
		"a lone minus":                func(q *search.Query) { q.Text = `hello -` },
		"only exclusions":             func(q *search.Query) { q.Text = `-hello` },
		"punctuation only":            func(q *search.Query) { q.Text = `hello !!!` },
		"empty":                       func(q *search.Query) { q.Text = "   " },
		"too long":                    func(q *search.Query) { q.Text = strings.Repeat("a ", search.MaxTextBytes) },
		"a quote inside a word":       func(q *search.Query) { q.Text = `hel"lo` },
		"limit 0":                     func(q *search.Query) { q.Limit = 0 },
		"limit above the most":        func(q *search.Query) { q.Limit = search.MaxLimit + 1 },
		"from not before to":          func(q *search.Query) { q.From, q.To = At(5), At(5) },
		"a malformed conversation":    func(q *search.Query) { q.Conversations = []string{"c1", "no/slash"} },
		"too many conversations":      func(q *search.Query) { q.Conversations = make([]string, search.MaxConversations+1) },
		"a malformed sender":          func(q *search.Query) { q.Sender = "a b" },
		"an unknown sort":             func(q *search.Query) { q.Sort = 7 },
		"a cursor without a position": func(q *search.Query) { q.After = &search.Key{} },
		"a time before 1970":          func(q *search.Query) { q.From = time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC) },
	}
	for name, mutate := range cases {
		q := ok
		mutate(&q)
		_, err := idx.Search(t.Context(), q)
		if !errors.Is(err, search.ErrBadQuery) {
			t.Errorf("%s: got %v, want an error wrapping ErrBadQuery", name, err)
		}
	}
	if _, err := idx.Search(t.Context(), ok); err != nil {
		t.Errorf("the valid query: %v", err)
	}
}

func testNoTokens(t *testing.T, s *suite) {
	idx := s.open(t)
	index(t, idx, Msg("c1", 1, "ann", "hello there", At(1)))
	// Every positive word and phrase must match: one that matches nothing
	// must never be dropped, widening the query.
	for _, text := range []string{"hello zzzz", `"hello zzzz"`, "zzzz -hello"} {
		wantIDs(t, text, find(t, idx, search.Query{Text: text, Conversations: []string{"c1"}}))
	}
}

func testConcurrentVersions(t *testing.T, s *suite) {
	idx := s.open(t)
	versions := rand.Perm(24)
	var wg sync.WaitGroup
	errs := make(chan error, len(versions))
	for _, v := range versions {
		wg.Go(func() {
			d := Msg("c1", 1, "ann", fmt.Sprintf("version%d", v+1), At(v))
			d.Version = uint64(v + 1)
			errs <- idx.Index(t.Context(), []search.Doc{d})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Index: %v", err)
		}
	}
	if err := idx.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "the newest", find(t, idx, search.Query{Text: "version24", Conversations: []string{"c1"}}), "c1/1")
	for v := 1; v < 24; v++ {
		if res := find(t, idx, search.Query{Text: fmt.Sprintf("version%d", v), Conversations: []string{"c1"}}); len(res.Hits) != 0 {
			t.Errorf("version %d survived concurrent indexing of version 24", v)
		}
	}
}

func testContextDone(t *testing.T, s *suite) {
	idx := s.open(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := idx.Index(ctx, []search.Doc{Msg("c1", 1, "ann", "hello", At(1))}); !errors.Is(err, context.Canceled) {
		t.Errorf("Index: got %v, want an error wrapping context.Canceled", err)
	}
	if _, err := idx.Search(ctx, search.Query{Text: "hello", Conversations: []string{"c1"}, Limit: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("Search: got %v, want an error wrapping context.Canceled", err)
	}
	wantIDs(t, "nothing was indexed", find(t, idx, search.Query{Text: "hello", Conversations: []string{"c1"}}))
}

func testGenerationPromote(t *testing.T, s *suite) {
	idx := s.open(t)
	rb, ok := idx.(search.Rebuildable)
	if !ok {
		return // the adapter cannot rebuild beside itself
	}
	c := []string{"c1"}
	index(t, idx, Msg("c1", 1, "ann", "old world", At(1)))
	gen, err := rb.NewGeneration(t.Context())
	if err != nil {
		t.Fatalf("NewGeneration: %v", err)
	}
	index(t, gen, Msg("c1", 2, "ann", "new world", At(2)))
	wantIDs(t, "before promotion", find(t, idx, search.Query{Text: "world", Conversations: c}), "c1/1")
	if err := gen.Promote(t.Context()); err != nil {
		t.Fatalf("Promote: %v", err)
	}
	wantIDs(t, "after promotion", find(t, idx, search.Query{Text: "world", Conversations: c}), "c1/2")
	index(t, gen, Msg("c1", 3, "ann", "later world", At(3)))
	index(t, idx, Msg("c1", 4, "ann", "live world", At(4)))
	wantIDs(t, "both write to the promoted index", find(t, idx, search.Query{Text: "world", Conversations: c}), "c1/2", "c1/3", "c1/4")
	if err := gen.Discard(t.Context()); err != nil {
		t.Errorf("Discard after Promote: %v", err)
	}
	wantIDs(t, "discarding a promoted generation changes nothing", find(t, idx, search.Query{Text: "world", Conversations: c}), "c1/2", "c1/3", "c1/4")
}

func testGenerationDiscard(t *testing.T, s *suite) {
	idx := s.open(t)
	rb, ok := idx.(search.Rebuildable)
	if !ok {
		return
	}
	c := []string{"c1"}
	index(t, idx, Msg("c1", 1, "ann", "old world", At(1)))
	gen, err := rb.NewGeneration(t.Context())
	if err != nil {
		t.Fatalf("NewGeneration: %v", err)
	}
	index(t, gen, Msg("c1", 2, "ann", "new world", At(2)))
	if err := gen.Discard(t.Context()); err != nil {
		t.Fatalf("Discard: %v", err)
	}
	if err := gen.Promote(t.Context()); err == nil {
		t.Error("Promote after Discard succeeded")
	}
	index(t, idx, Msg("c1", 3, "ann", "live world", At(3)))
	wantIDs(t, "after discard", find(t, idx, search.Query{Text: "world", Conversations: c}), "c1/1", "c1/3")
}

// listed returns what idx lists of conv; an index that cannot list
// (not a search.Lister) skips the caller's case by returning false.
func listed(t *testing.T, idx any, conv string) ([]search.Doc, bool) {
	t.Helper()
	l, ok := idx.(search.Lister)
	if !ok {
		return nil, false
	}
	var (
		docs []search.Doc
		err  error
	)
	noHang(t, "Documents", func() { docs, err = l.Documents(t.Context(), conv) })
	if err != nil {
		t.Fatalf("Documents(%s): %v", conv, err)
	}
	return docs, true
}

// listedForm is what a Lister gives of a change that was indexed: a
// message's document (KindIndex, its body as Text() made it) or a
// tombstone (KindDelete: seq and version only).
func listedForm(d search.Doc) search.Doc {
	if d.Kind == search.KindDelete {
		return search.Doc{Kind: search.KindDelete, ConversationID: d.ConversationID, Seq: d.Seq, Version: d.Version}
	}
	d.Kind, d.Body = search.KindIndex, d.Text()
	return d
}

func wantDocs(t *testing.T, what string, got, want []search.Doc) {
	t.Helper()
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		g, w := got[i], want[i]
		same = g.Kind == w.Kind && g.ConversationID == w.ConversationID && g.Seq == w.Seq && g.Version == w.Version &&
			g.SenderID == w.SenderID && g.Body == w.Body && slices.Equal(g.Files, w.Files) && g.SentAt.Equal(w.SentAt)
	}
	if !same {
		t.Errorf("%s: listed\n%s\nwant\n%s", what, docLines(got), docLines(want))
	}
}

func docLines(docs []search.Doc) string {
	var b strings.Builder
	for _, d := range docs {
		fmt.Fprintf(&b, "  %v %s/%d v%d %q %q %q %s\n", d.Kind, d.ConversationID, d.Seq, d.Version, d.SenderID, d.Body, d.Files, d.SentAt.Format(time.RFC3339Nano))
	}
	return b.String()
}

func testListing(t *testing.T, s *suite) {
	idx := s.open(t)
	if _, ok := idx.(search.Lister); !ok {
		return // the adapter cannot list what it holds
	}
	photo := WithFiles("c1", 1, "ann", "the <b>plan</b> & more", At(1), "plan.pdf", "photo_2025-03-14.jpg")
	second := Msg("c1", 2, "bob", "first draft", At(2))
	index(t, idx, photo, second, Msg("c1", 3, "ann", "to be deleted", At(3)), Msg("c2", 1, "cy", "elsewhere", At(4)))
	edit := Edited("c1", 2, 5, "bob", "second draft", At(2))
	index(t, idx, edit, Deleted("c1", 3, 6), Msg("c1", 4, "bob", "with a\nnewline and ünïcode", At(7)))
	got, _ := listed(t, idx, "c1")
	editIndexed := edit
	editIndexed.Kind = search.KindIndex
	wantDocs(t, "c1", got, []search.Doc{
		listedForm(photo),
		listedForm(editIndexed),
		listedForm(Deleted("c1", 3, 6)),
		listedForm(Msg("c1", 4, "bob", "with a\nnewline and ünïcode", At(7))),
	})
	got, _ = listed(t, idx, "c2")
	wantDocs(t, "c2", got, []search.Doc{listedForm(Msg("c2", 1, "cy", "elsewhere", At(4)))})
	got, _ = listed(t, idx, "c3")
	wantDocs(t, "a conversation with no document", got, nil)
	got, _ = listed(t, idx, "c")
	wantDocs(t, "a prefix of conversation ids", got, nil)
}

func testListingPages(t *testing.T, s *suite) {
	idx := s.open(t)
	if _, ok := idx.(search.Lister); !ok {
		return
	}
	const n = 1203 // more than two pages of any adapter's listing
	var docs, want []search.Doc
	for i := n; i >= 1; i-- { // indexed in reverse: the listing sorts
		d := Msg("long", uint64(i), "ann", fmt.Sprintf("message %d", i), At(i))
		docs = append(docs, d)
	}
	for i := 1; i <= n; i++ {
		want = append(want, listedForm(Msg("long", uint64(i), "ann", fmt.Sprintf("message %d", i), At(i))))
	}
	docs = append(docs, Msg("short", 1, "bob", "other", At(0)))
	for b := 0; b < len(docs); b += 400 {
		index(t, idx, docs[b:min(b+400, len(docs))]...)
	}
	got, _ := listed(t, idx, "long")
	wantDocs(t, "long", got, want)
	got, _ = listed(t, idx, "short")
	wantDocs(t, "short", got, []search.Doc{listedForm(Msg("short", 1, "bob", "other", At(0)))})
}

func testListingGeneration(t *testing.T, s *suite) {
	idx := s.open(t)
	rb, isRB := idx.(search.Rebuildable)
	if _, ok := idx.(search.Lister); !ok || !isRB {
		return
	}
	live := Msg("c1", 1, "ann", "live", At(1))
	index(t, idx, live)
	gen, err := rb.NewGeneration(t.Context())
	if err != nil {
		t.Fatalf("NewGeneration: %v", err)
	}
	defer func() {
		if err := gen.Discard(t.Context()); err != nil {
			t.Errorf("Discard: %v", err)
		}
	}()
	rebuilt := Msg("c1", 2, "ann", "rebuilt", At(2))
	index(t, gen, rebuilt)
	got, ok := listed(t, gen, "c1")
	if !ok {
		t.Fatalf("the index lists what it holds but its generation %T does not", gen)
	}
	wantDocs(t, "the generation", got, []search.Doc{listedForm(rebuilt)})
	got, _ = listed(t, idx, "c1")
	wantDocs(t, "the live index beside it", got, []search.Doc{listedForm(live)})
}
