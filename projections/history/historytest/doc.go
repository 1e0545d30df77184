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
// helpers it builds events with (Created, Group, Direct, Message,
// MessageV2, Messages, Left, Added, Removed, RolesChanged, Renamed,
// Archived, Blocked, Edited, Deleted, Reacted, Unreacted), for other
// tests of code that reads or writes history.
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
//   - ReadMessages, for a read seq at or past the conversation's last seq
//     (a marker may arrive before the events it names), is every message
//     applied so far; below it, the messages through the read seq.
//   - An edit, deletion or reaction whose target is missing, is not a
//     message or does not precede it is stored and changes no message.
//     An edit applied after its message's deletion (the decider refuses
//     one; a log may still hold it) is stored with its body erased, like
//     the edits before the deletion.
//   - Receipts of a conversation without markers is an empty list; a
//     marker of a user who is not a member (any more) is not listed.
//   - Replaying every event and receipt, in any batches, or applying them
//     to a fresh store (receipts first or last), gives the same pages
//     (message states included), summaries, lists and receipts.
//
// Run calls the factory from parallel subtests unless the Sequential
// option is given, so the factory must be safe for concurrent use; each
// call must return an independent, empty store. The suite closes every
// store it is given, in a cleanup of the subtest that asked for it.
package historytest
