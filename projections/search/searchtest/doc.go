// Package searchtest is the conformance suite of search.Index: the one set
// of tests that every adapter (blevestore, esindex) must pass, so that
// the projection and the gateway can rely on the port alone.
//
// An adapter's test calls Run with a factory of empty indexes:
//
//	func TestIndex(t *testing.T) {
//		searchtest.Run(t, func(t *testing.T) search.Index {
//			s, err := blevestore.Open(t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The suite tests behaviour through the port only, calling Refresh after
// every Index so that adapters with near-real-time search pass. An index
// that also implements search.Rebuildable is tested for generations too,
// and one that implements search.Lister for its listing (every document
// of a conversation as indexed, in seq order, over many pages, and a
// generation's own).
//
// # What the suite asks beyond search.go
//
//   - Matching is by whole, case-insensitive words (Unicode word
//     segmentation and lower-casing, no stemming): "deploy" finds
//     "Deploy," but not "deployment".
//   - Hits come back with the document's fields exactly: seq, sender, and
//     sent_at to the nanosecond.
//   - Snippets are HTML: the body escaped, matched words in <mark> tags.
//   - Result.Next is nil on the last page, so a client stops without an
//     empty extra request.
//   - Index and Search return an error wrapping ctx.Err() when their
//     context is done before they start.
//
// The suite gives documents distinct millisecond times wherever the
// order of results is compared, since Elasticsearch sorts dates to the
// millisecond and Bleve to the nanosecond; ties at the same instant are
// broken by conversation id and seq in both.
//
// Run calls the factory from parallel subtests, so the factory must be
// safe for concurrent use; each call must return an independent, empty
// index. The suite closes every index it is given, in a cleanup of the
// subtest that asked for it.
package searchtest
