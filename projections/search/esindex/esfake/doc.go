// Package esfake is a stand-in for an Elasticsearch 8 cluster, for tests
// only: an HTTP server on 127.0.0.1 (net/http/httptest) that serves, in
// memory, exactly the REST subset the esindex adapter and the official
// go-elasticsearch v8 client use, with Elasticsearch's documented request
// and response shapes. It lets the real adapter run its conformance suite
// over HTTP in CI, where no Elasticsearch can run. No code of the binary
// imports it.
//
// # What it models
//
//   - GET / (cluster info, version 8.19.7) and the X-Elastic-Product:
//     Elasticsearch header on every response, which the v8 client checks.
//   - Index templates: PUT/DELETE /_index_template/<name> with
//     index_patterns, priority, template.settings and template.mappings;
//     the overlap check between templates of equal priority; applying the
//     highest-priority matching template when an index is created.
//   - Indices: PUT /<index> (settings, mappings, aliases; name rules;
//     resource_already_exists_exception), DELETE /<index>[,<index>...]
//     (no wildcards, as with action.destructive_requires_name, the 8.x
//     default; not through an alias), auto-creation on a bulk write.
//   - Aliases: GET /_alias/<name>, GET /<index or pattern>/_alias, POST
//     /_aliases with add (is_write_index) and remove actions, applied
//     atomically; writes through an alias go to its write index.
//   - Mappings: dynamic strict; field types keyword, text (with an
//     analyzer declared in the index settings: custom, standard tokenizer,
//     lowercase filter), long, date (strict_date_optional_time with up to
//     nanosecond fractions, or epoch milliseconds; kept to the
//     millisecond), boolean; _routing required.
//   - POST /_bulk and /<index>/_bulk: the index action with _index, _id,
//     routing, version and version_type (internal, external: a version
//     not greater than the stored one is a 409
//     version_conflict_engine_exception item; external_gte: one lower
//     than the stored one is), documents checked against
//     the mapping, per-item errors, the refresh parameter.
//   - POST /<index>/_mget (docs with _id and routing, or ids) on one
//     index or an alias of one, real-time as in Elasticsearch: it reads
//     the latest writes, refreshed or not.
//   - PUT /<index>/_mapping adding properties to existing indices (a
//     mapped field keeps its type); keyword fields with index and
//     doc_values false are kept in _source only and may hold arrays of
//     strings.
//   - Near-real-time search: writes become visible to searches only at a
//     refresh: POST /<index>/_refresh, or a bulk with refresh=true or
//     wait_for. There is no periodic refresh, which is stricter than
//     Elasticsearch: code that forgets to refresh fails here.
//   - POST /<index>/_search: query bool (must, filter, should, must_not),
//     match (query, operator), match_phrase, term, terms, range (gt, gte,
//     lt, lte on date and long), match_all, match_none; sort on _score,
//     date, long and keyword fields (asc/desc, missing values last),
//     refusing text fields and _id as Elasticsearch 8 does; search_after;
//     size and from; _source filtering by field names; track_total_hits;
//     highlight with pre_tags, post_tags, encoder html, and per field
//     number_of_fragments, fragment_size and no_match_size. Unknown keys,
//     queries and parameters are parse errors, as in Elasticsearch.
//   - Points in time: POST /<index>/_pit?keep_alive=… (the searchable
//     state of the indices when it is opened, kept through writes,
//     refreshes and deletions), searches on POST /_search with a pit
//     object (no index nor routing then; pit_id in the answer; an
//     implicit _shard_doc tiebreaker sorted last, whose sort value is the
//     document's seq_no), version: true (_version in hits), DELETE /_pit
//     (num_freed, 0 for an id not open), and
//     search_context_missing_exception for a search of a closed one.
//   - Errors in Elasticsearch's shape ({"error":{"type","reason",...},
//     "status"}) with its exception types and statuses.
//   - FailNext makes the next requests fail with a status, to test how a
//     client copes with an unavailable cluster.
//
// # What it does not model
//
// Scoring fidelity: scores are BM25 (k1 1.2, b 0.75) over one shard with
// exact statistics, rounded to float32 as Elasticsearch returns them, so
// a clearly better match ranks first as in Elasticsearch, but values and
// the order of near ties differ. Analysis beyond Unicode word
// segmentation and lower-casing (no other tokenizer, filter, normalizer,
// stemming, stop words, synonyms, max_token_length). The highlighter's
// fragments are a window of about fragment_size characters around the
// first match, not Elasticsearch's sentence-based boundary scanner. Real
// deletes (the delete and update actions), create, auto-generated ids,
// if_seq_no concurrency control, arrays (but of a source-only keyword
// field) and objects in documents, other field types, multi-fields,
// dynamic mappings, aggregations, scroll, the expiry of a point in time after its
// keep_alive (it lives until closed), other query
// types, wildcards in _source and in most index expressions, routing
// (one shard: routing is stored and returned but does not select
// shards), replicas, cluster health, refresh intervals,
// index.gc_deletes, persistence (everything is lost at Close), security
// and TLS.
//
// Every request runs under one lock, so each is atomic and isolated:
// stronger than Elasticsearch, where a bulk is not atomic.
//
// A Server is safe for concurrent use.
package esfake
