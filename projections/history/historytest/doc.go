// Package historytest is the conformance suite of history.Store: the one
// set of tests that every adapter (pebblestore, scyllastore) must pass,
// so that the gateway and the projection can rely on the port alone.
//
// An adapter's test calls Run with a factory of empty stores:
//
//	func TestStore(t *testing.T) {
//		historytest.Run(t, func(t *testing.T) history.Store {
//			s, err := pebblestore.Open(t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The suite tests behaviour through the port only. It also exports the
// helpers it builds events with (Created, Group, Message, Messages), for
// other tests of code that reads or writes history.
//
// # What the suite asks beyond history.go
//
// Some behaviour the port leaves open is fixed here, so that both adapters
// agree on it:
//
//   - Page and Conversations return an error wrapping
//     history.ErrInvalidQuery for a limit below 1 (PageQuery.Validate and
//     history.ValidateLimit say so); for an unknown conversation either
//     that error or ErrNotFound may come first.
//   - Times come back in UTC, to the nanosecond; event data byte for byte.
//   - Summaries are built with history.ApplyToSummary: an event of an
//     unknown type, or a malformed creation, is stored and advances only
//     LastSeq and LastActivity, and neither ever moves backwards, even when
//     a later batch fills a gap below them or a newer seq has an older time.
//   - Batches of one conversation may be applied concurrently, with the
//     same or with different events, and the store loses no update.
//   - Every method returns an error wrapping ctx.Err() when its context is
//     done before it starts, and Apply then applies nothing.
//   - The order of conversations with the same last activity is left to
//     the adapter; the suite gives every conversation its own time.
//
// Run calls the factory from parallel subtests unless the Sequential
// option is given, so the factory must be safe for concurrent use; each
// call must return an independent, empty store. The suite closes every
// store it is given, in a cleanup of the subtest that asked for it.
package historytest
