// Package esindex is the production adapter of the search index: a
// search.Index on Elasticsearch 8 through the official client,
// github.com/elastic/go-elasticsearch/v8. It passes the same conformance
// suite (searchtest) as the embedded adapter, blevestore: in CI against
// the in-process stand-in esfake, and against a real cluster when
// PARLEY_ELASTICSEARCH_URL is set.
//
// # Use
//
//	idx, err := esindex.Open(ctx, esindex.Config{
//		Addresses: esindex.ParseAddresses(os.Getenv("PARLEY_ELASTICSEARCH_URL")),
//		Logger:    log,
//	})
//	// retry err with backoff; serve idx as the search projection's
//	// Indexer and the gateway's Searcher; Close it at shutdown.
//
// # Index, template and alias
//
// The mapping is code: schemas/elasticsearch, embedded in the binary (see
// its package doc for each field). Open checks the cluster is version 8
// or later, puts the index template <alias> for <alias>-* (every start,
// so a changed template is in place for the next index), and, if the
// alias does not exist, creates <alias>-000001 with the alias as its
// write index. Then it adds the files field to the mapping of the
// indices behind the alias (PUT _mapping: an index created before the
// template had it gets it at startup; putting it again changes nothing).
// Searches and live writes name the alias only, so a
// rebuild (search.Rebuild with NewGeneration) can fill <alias>-000002
// beside it and swap the alias in one atomic _aliases request.
//
// # Writes
//
// Index sends each change as a bulk "index" item through one shared
// esutil.BulkIndexer (Config.Workers workers), with the document id
// conversation/seq, routing = the conversation id, and version_type
// external with the change's version, then flushes and waits for every
// item's answer. Elasticsearch refuses a version not greater than the
// stored one with 409 version_conflict_engine_exception: the stored
// document is as new or newer, so that counts as success, which makes
// replays, redeliveries and retried batches harmless. Any other failure
// of any item fails the call, and the projection retries the batch.
//
// A deletion is written as a tombstone document (conversation_id, seq,
// deleted: true; no body) with its external version, not as a bulk
// delete: Elasticsearch forgets a deleted document's version after
// index.gc_deletes (60s by default), after which a late, older event
// would index the text again; a tombstone keeps the version for ever.
// No body query matches a tombstone.
//
// A message's document keeps the names of its files in _source (files,
// not indexed; body holds their searchable text). An edit carries the
// new body only, so Index first reads the documents of a batch's edits
// with _mget (real-time: a document indexed just before is seen without
// a refresh) and writes each edit with the new body and the stored
// files; an edit of a deleted message writes nothing. The changes of one
// conversation come from one partition, in order, so nothing writes a
// document between that read and the edit's write.
//
// Writes become searchable at the index's next refresh (refresh_interval
// 1s) unless Config.Refresh asks bulk requests to wait for it; Refresh
// forces one.
//
// # Searches
//
// A search is one _search request on the alias: a bool query whose must
// clauses are the text (a match with operator and for the words, a
// match_phrase per phrase; exclusions in must_not) and whose filter
// clauses — not scored, cached by Elasticsearch — are terms on
// conversation_id (the allowed set), term on sender_id and range on
// sent_at; sorted by sent_at, conversation_id, seq descending, after
// _score for relevance, paged with search_after; the body highlighted
// with <mark> and HTML encoding. A search of at most 16 conversations
// passes them as routing, so only their shards are asked. Every hit's
// conversation is checked against the query's set before it is returned.
//
// # Listing
//
// Documents (search.Lister, for verified rebuilds) lists a conversation
// from a point in time of the alias (or of a generation's index): POST
// <index>/_pit, then _search requests with the pit, a term query on
// conversation_id, sorted by seq (and the implicit _shard_doc
// tiebreaker), version: true, 500 hits a page with search_after, then
// DELETE _pit. Each hit's _version and _source give the document as
// search.Lister describes it; a tombstone lists as a deletion.
//
// # Failures
//
// Every request is bounded by Config.Timeout; calls return wrapped errors
// and honour their context (the bulk indexer's own requests run to their
// timeout). Open does not retry.
//
// # Concurrency
//
// An Index is safe for concurrent use. Close flushes the bulk indexer;
// calls after Close fail.
package esindex
