// The erasure case of the suite.

package searchtest

import (
	"reflect"
	"testing"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/schemas"
)

func testErasure(t *testing.T, s *suite) {
	idx := s.open(t)
	c := []string{"c1", "c2"}
	docs := []search.Doc{
		WithFiles("c1", 1, "ann", "secret recipe", At(1), "plans.pdf"),
		Msg("c1", 2, "bob", "bobs answer", At(2)),
		Edited("c1", 1, 3, "ann", "secret recipe, edited", At(1)),
		Msg("c1", 4, "ann", "ann deleted this", At(4)),
		Deleted("c1", 4, 5),
		Msg("c2", 1, "ann", "ann private note", At(3)),
		Msg("c2", 9, "ann", "ann later word", At(9)),
	}
	index(t, idx, docs...)
	for _, q := range []string{"secret", "plans", "private"} {
		wantIDs(t, q+" before the erasure", find(t, idx, search.Query{Text: q, Conversations: c}), map[string]string{"secret": "c1/1", "plans": "c1/1", "private": "c2/1"}[q])
	}
	e := search.Erasure{SubjectRef: schemas.ErasureRef("ann"), At: At(5)}
	erase := func() {
		t.Helper()
		var err error
		noHang(t, "Erase", func() { err = idx.Erase(t.Context(), e) })
		if err != nil {
			t.Fatalf("Erase: %v", err)
		}
		if err := idx.Refresh(t.Context()); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
	}
	erase()
	for _, q := range []string{"secret", "recipe", "plans", "private", "note"} {
		wantIDs(t, q+" after the erasure", find(t, idx, search.Query{Text: q, Conversations: c}))
	}
	wantIDs(t, "bob's word after the erasure", find(t, idx, search.Query{Text: "bobs", Conversations: c}), "c1/2")
	wantIDs(t, "her word after the erasure's time", find(t, idx, search.Query{Text: "later", Conversations: c}), "c2/9")
	wantIDs(t, "her file, named redacted, still hers", find(t, idx, search.Query{Text: contentkeys.Redacted, Sender: "ann", Conversations: c}), "c1/1")

	// Again, and after her events arrive again (stale): nothing changes.
	erase()
	index(t, idx, docs...)
	wantIDs(t, "secret after a replay", find(t, idx, search.Query{Text: "secret", Conversations: c}))
	// A later deletion still wins.
	index(t, idx, Deleted("c1", 1, 6))
	wantIDs(t, "her file after a deletion", find(t, idx, search.Query{Text: contentkeys.Redacted, Conversations: c}))

	// An index that lists what it holds lists what indexing the blanked
	// messages gives.
	l, ok := idx.(search.Lister)
	if !ok {
		return
	}
	want := s.open(t)
	var blanked []search.Doc
	for _, d := range append(docs, Deleted("c1", 1, 6)) {
		if d.SenderID == "ann" && !d.SentAt.After(e.At) {
			d = search.ErasedDoc(d)
		}
		blanked = append(blanked, d)
	}
	index(t, want, blanked...)
	for _, conv := range c {
		got, err := l.Documents(t.Context(), conv)
		if err != nil {
			t.Fatal(err)
		}
		exp, err := want.(search.Lister).Documents(t.Context(), conv)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, exp) {
			t.Errorf("documents of %s after the erasure:\n%+v\nwant\n%+v", conv, got, exp)
		}
	}
}
