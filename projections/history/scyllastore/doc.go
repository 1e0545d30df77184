// Package scyllastore is the production adapter of the history store: a
// history.Store on ScyllaDB (or Cassandra) through gocql, with
// ScyllaDB's shard-aware fork of the driver (a replace in go.mod). It
// passes the same conformance suite (historytest) as the embedded
// adapter, pebblestore.
//
// # Use
//
//	store, err := scyllastore.Open(ctx, scyllastore.Config{
//		Hosts:  []string{"scylla-1", "scylla-2:9042"},
//		Logger: log,
//	})
//	// retry err with backoff; then serve store, check store.Ping for
//	// readiness, and Close it at shutdown.
//
// # Schema
//
// The tables are code: schemas/cql, embedded in the binary. Open creates
// the keyspace (with the configured replication) and the
// schema_migrations ledger if needed, then applies each numbered
// migration not recorded yet and records it with INSERT ... IF NOT
// EXISTS; a migration whose statements changed after it was applied stops
// Open. The keyspace name is validated and substituted into the statement
// text once, at Open; every other value is a bind marker, so gocql
// prepares each statement once per node.
//
//   - messages, partition (conversation_id, bucket = seq / 1000),
//     clustering seq DESC: every event as it was in chat.events (a
//     deleted message and its edits with the body erased), the number
//     of chat messages through its seq (for unread counts), and for a
//     chat message its state (edits, deletion, reactions).
//   - conversations, partition id: the summary (kind, title, creator,
//     members as a map user → role, last seq, last activity, archive,
//     blocks, message count, newest message's preview, and an encrypted
//     conversation's flag, epoch, devices and members leaving).
//   - conversations_by_user, partition user_id, clustering
//     conversation_id: the inbox, one row per membership with last seq,
//     last activity, newest message and the user's read seq.
//   - receipts, partition conversation_id, clustering user_id: every
//     user's read and delivered seqs.
//   - content_authors, partition author_ref, clustering
//     conversation_id: the conversations where a user wrote personal
//     content, by the user's erasure reference (schemas.ErasureRef), for
//     Erase.
//
// schemas/cql/0001_history.cql and 0002_messages_state_receipts.cql
// (0003 and 0006 add summary columns; 0004 holds the content key store,
// 0005 the key directory's tables, keydir/scyllakeys; 0007
// content_authors) explain each key and the inbox trade-off (an upserted row per
// membership, sorted by activity in the client, rather than a
// time-clustered table needing delete + insert). ScyllaDB has no ALTER
// TABLE ... ADD IF NOT EXISTS, so a migration adding a column runs only
// when system_schema.columns lacks it, and a failed ADD counts as done
// when the column exists afterwards (two processes migrating at once).
//
// # Erasure
//
// Apply records each (erasure reference, conversation) of an event with
// personal content in content_authors. Erase (chat.user.erased.v1, read
// by the history group from chat.audit) reads the reference's
// partition, and for each conversation the summary and every event with
// its state; it blanks the user's content up to the erasure's time
// (internal/fold's Erase, shared with pebblestore) and writes what
// changed — event data, message states, the title, the preview and the
// members' inbox rows' copy of it — with the timestamp last seq + 2:
// above every write of what it read, below any later event's. A blanked
// cell's old bytes leave the SSTables when compaction drops the shadowed
// value (at the latest with the next major compaction of the table).
// Rows written before 0007 have no author: a keyspace projected before
// it must be rebuilt once for erasures to find them.
//
// # Idempotence
//
// Every write carries USING TIMESTAMP derived from the event, never from
// a clock: seq + 1 of the event that wrote the cell (a message row, its
// count, last_seq and the message count, each member's role, the title,
// the archive, each block, the preview, a read or delivered seq), the
// version + 1 for a message's state, the deletion's seq + 1 for an
// erased body; 1 for what the creation (seq 0) writes; the event time in
// microseconds for last activity, so it is the maximum of the events'
// times even when a newer event carries an older time. Cells are
// reconciled last-write-wins, so applying an event twice, replaying the
// topic, or retrying a batch that half failed writes the same cells with
// the same timestamps, and an older event never overwrites newer state:
// an erased body is never brought back by a replay of the original
// event, and markers only move forward. Inbox rows copy the summary with
// the timestamps of the cells they copy.
//
// # Writing a batch
//
// Apply holds an in-process lock per conversation of the batch
// (internal/convlock) and handles conversations in parallel; per
// conversation: a read of the summary; the fold of the batch into it
// (internal/fold, shared with pebblestore); the message rows, counts,
// states and erased bodies; the inbox rows and the senders' read seqs;
// the summary, last (see Apply). The summary is the commit point: a
// batch that failed before writing it folds again from the same summary
// when retried, and a batch applied before folds nothing. Folding needs
// the summary before the batch (to count messages and find what a batch
// changed), so two processes applying different, not yet applied events
// of one conversation at once could fold from a stale summary; Kafka
// gives a conversation's partition to one consumer at a time, and a
// consumer that takes a partition over re-applies the same events in
// the same order, which folds to the same values. Each Apply has at most
// Config.Concurrency requests in flight.
//
// Message rows go as unlogged batches, one or more per messages partition
// (at most 200 rows and 64 KiB each, under ScyllaDB's batch size warning).
// The rows of a single-partition batch go to the same replicas and are
// applied as one mutation, so the batch costs one request where single
// INSERTs cost one per row; a multi-partition batch would instead make
// the coordinator fan out, which is why batches never span partitions.
// Summary and inbox writes are single-partition batches too. Measured
// with BenchmarkApply_Batch500 (500 events over 10 conversations of 3
// members, against the in-process stand-in on a shared 2-core machine;
// protocol and driver overhead only): before conversations had roles,
// edits, reactions and receipts, batches 8.1-9.4 ms per Apply, 60 requests, 53,000-62,000 events/s, and one INSERT per
// row with the same bounded parallelism 17.8-19.6 ms, 550 requests,
// 25,000-28,000 events/s. With them (three runs each, interleaved with
// runs of the code before it, under a load average of 3 from other
// work): batches 14.1-23.3 ms, 70 requests (the ten more are the
// senders' read seqs in receipts, one batch per conversation), against
// 12.3-20.6 ms for the code before in the same runs; one INSERT per row
// 26.6-47.2 ms, 560 requests. The absolute numbers move with the
// machine's load; the factor of about two between the modes does not.
// Against ScyllaDB the gap should be larger still, since every request
// also pays the coordinator and the commit log; the single-row mode
// stays in the code, unexported, for that comparison (TestStoreVariants
// runs the suite with it).
//
// Reads: Page reads a message's state with its row. Conversations reads,
// for each listed conversation whose read seq is below its last seq, the
// count of the row at the read seq (one single-partition read); a read
// seq at or past the last seq, such as a marker ahead of the events
// applied, reads every message. Receipts reads the summary (for the
// members) and the conversation's receipts partition.
//
// # Failures
//
// Open returns a wrapped error within a few Config.Timeout when the
// cluster cannot be reached, and at once when ctx ends; it does not
// retry: the caller does, with backoff. Apply returns an error if any
// write failed; the projection then does not commit its offsets and
// retries the whole batch, which is safe because every write is
// idempotent. Reads translate a missing conversation to
// history.ErrNotFound. Every request runs under the caller's context.
//
// A call that fails because the driver holds no connection to any host
// (gocql's "host does not have a pool" or "no hosts available in the
// pool") replaces the store's session with a new one before it returns,
// at most once per Config.Timeout: gocql can keep a restarted node it was
// not told about (no STATUS_CHANGE event) marked up without a pool and
// never reconnect it, and the caller's retry then finds a fresh session.
//
// # Concurrency
//
// A Store is safe for concurrent use; Close must not be called while
// other calls are in progress, and calls after Close fail.
//
// The driver has one known data race, on the failure path: when a
// connection dies while a statement is being prepared, gocql gives every
// request waiting on that PREPARE the same *QueryError, and each writes
// its two bool fields. Every request of this store is idempotent, so
// every writer writes the same values; a -race build can still report
// it, which is why the node-restart test keeps one request in flight.
package scyllastore
