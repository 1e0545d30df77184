// Package blevestore is the embedded default of the search index: a
// search.Index on Bleve (github.com/blevesearch/bleve/v2, scorch), on
// disk under one directory, for the single-binary deployment. It passes
// the same conformance suite (searchtest) as the Elasticsearch adapter,
// esindex.
//
// # Layout
//
// The directory holds generations, gen-000001, gen-000002, ..., each a
// Bleve index, and a file CURRENT naming the live one. A rebuild
// (search.Rebuild) fills the next generation while the live one serves,
// then Promote rewrites CURRENT atomically (write, fsync, rename), swaps
// the generation in the running Store and removes the previous one. A
// process that opens the directory later opens what CURRENT names and
// removes older generations left behind.
//
// A generation is locked by the process that opens it (Bleve's bolt
// file lock): a second process fails to Open within the lock timeout
// rather than share it. So a rebuild runs either inside the process that
// serves the index or, as `parley project search --rebuild`, while the
// search projection is stopped.
//
// # Documents and versions
//
// A document's id is conversation id + "/" + seq. Its fields follow the
// Elasticsearch mapping in schemas/elasticsearch: conversation_id and
// sender_id as keywords, body as text analyzed by Unicode word
// segmentation and lower-casing (no stemming, no stop words; see
// textAnalyzer), seq stored. Where Elasticsearch indexes sent_at and seq
// to sort and filter on, Bleve indexes one keyword, the order key
// (orderKey): the time to the nanosecond, the conversation id and seq,
// which compared as bytes is the order of a search newest first. Bleve
// would index a number or a date-time as 16 terms each, which made
// indexing half as dear again (BENCHMARKS.md). A search's time range is
// checked on each hit's order key. Bleve's own stored-only fields are
// sent (sent_at to the nanosecond, which Bleve would return only to the
// second), version, and files, the names of the message's files (as
// JSON; body holds their searchable text), so that an edit, which
// carries the new body only, keeps them: Index reads them with the
// versions and writes the edit with the new body and the stored files.
//
// An index made by an earlier version, with sent_at and seq indexed and
// no order key, is served as it was made (sorted and filtered on sent_at
// and seq) and reports itself Outdated, as does one made before files
// was in the mapping, which drops the file names of edited messages; the
// running system rebuilds an outdated index beside the live one at
// start (search.Rebuild).
//
// Elasticsearch compares external versions itself; Bleve does not, so
// Index does it: under a write lock it reads the stored versions of the
// batch's documents with one doc-id query, skips every change whose
// version is not greater, and writes the rest as one Bleve batch, which
// returns once persisted. A deletion writes a tombstone: the document
// keeps its id and version but loses its text, so no body query matches
// it and an older event arriving later cannot bring the text back.
//
// # Pacing
//
// Nobody waits on the index, but on a small machine its work takes the
// CPU from the path everyone waits on: a second of the log at 2,000
// messages a second, indexed as one Bleve batch, ran for a fifth of a
// second at a time on two busy cores, and the commands, events and
// frames queued behind it (BENCHMARKS.md, "Direct pairs at 2,000 msg/s: the tail").
// So Store.Index indexes a large batch in chunks of 256 documents and,
// after each, rests twice as long as the chunk took, at most half a
// second per batch: the index takes at most a third of the time while
// it keeps up, and a backlog is indexed at most half a second per batch
// slower. A rebuild's Generation.Index is not paced.
//
// # Concurrency
//
// A Store is safe for concurrent use. Writes are serialized (one batch
// at a time, which is also how Bleve applies them); searches run
// concurrently with writes and with each other. Close waits for calls in
// progress; calls after Close fail.
package blevestore
