// Package search is the search projection: it folds chat.events into a
// full-text index of messages, which the gateway searches on behalf of a
// user, within the conversations that user may read.
//
// # Port
//
// The index is a port with two adapters, blevestore (embedded, the
// default) and esindex (Elasticsearch, production); both pass the suite
// in searchtest. The port is split by use: the projection needs an
// Indexer, the gateway a Searcher, and an adapter provides both as an
// Index. Rebuild needs a Rebuildable.
//
// # Documents and versions
//
// A document is one message, with id conversation id + "/" + seq. Each
// change carries a Version derived from the log: the seq of the event
// that made it, which within a conversation orders every event. An
// adapter applies a change only if its version is greater than the
// stored one, so replays, redeliveries and retried batches change
// nothing, and an older event never overwrites a newer document. A
// deletion (KindDelete, for the message deletions a later version will
// add) leaves a tombstone with its version, so the text cannot come back.
//
// # Erasures
//
// The group also reads chat.audit: a user's erasure (chat.user.erased.v1)
// becomes a KindErase doc, which Projection.Apply passes to the index's
// Eraser after indexing the documents before it. Every message the user
// sent up to the erasure is indexed again as ErasedDoc (no body, files
// named contentkeys.Redacted) at its own version, which is what
// indexing the sealed log after the erasure gives; a later deletion
// still wins. The record names the user only by reference
// (schemas.ErasureRef): Bleve hashes the terms of its sender field to
// find them, Elasticsearch scans the index (search_after pages) hashing
// each document's sender, once per erasure.
//
// # Queries
//
// A Query names the conversations to search; the caller, not the index,
// decides which the user may read, and adapters enforce that set in the
// query and again on every hit. The text syntax is ParseText's: words,
// "phrases", -exclusions. Errors of the caller's making wrap ErrBadQuery.
//
// # Rebuilding
//
// Rebuild reads chat.events from offset 0 with plain partition readers
// into a new generation of the index (a new Elasticsearch index behind
// the alias, a new Bleve directory), promotes it atomically, then
// catches up with what arrived meanwhile; ProgressPrinter prints its
// progress with rate and ETA.
//
// # Concurrency
//
// Projection and the functions of this package hold no state and are
// safe for concurrent use; adapters document their own contract, which
// the port requires to be safe for concurrent use.
package search
