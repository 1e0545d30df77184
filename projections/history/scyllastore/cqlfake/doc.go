// Package cqlfake is a stand-in for a ScyllaDB node, for tests only: a
// TCP server on 127.0.0.1 that speaks the CQL native protocol v4 (framing
// from github.com/datastax/go-cassandra-native-protocol) and implements,
// in memory, exactly the statements scyllastore and gocql send, with
// Cassandra's semantics for them. It lets the real gocql adapter run its
// conformance suite in CI, where no ScyllaDB can run. No code of the
// binary imports it.
//
// # What it models
//
//   - The protocol: OPTIONS/SUPPORTED (it says it is a one-shard
//     ScyllaDB node, so gocql takes its ScyllaDB code paths), STARTUP/
//     READY, REGISTER, QUERY, PREPARE/EXECUTE with positional bind values
//     (null and unset included), BATCH (logged and unlogged, by query
//     text or prepared id), UNPREPARED for an unknown id, result
//     metadata with partition key indexes (which gocql's token-aware
//     policy uses), SKIP_METADATA, paging (result_page_size and an opaque
//     paging_state), errors as ERROR frames with their CQL codes.
//     Requests on one connection run concurrently and are answered by
//     stream id.
//   - The system tables gocql reads when it connects and refreshes its
//     metadata: system.local (one node owning the whole Murmur3 ring),
//     system.peers (empty) and system_schema.keyspaces, including
//     ScyllaDB's USING TIMEOUT suffix on those queries; and
//     system_schema.columns (keyspace, table, column, kind, position,
//     type) for the tables created after start, which scyllastore's
//     migrations read before adding a column.
//   - A CQL subset, parsed for real: CREATE/DROP KEYSPACE and TABLE (IF
//     [NOT] EXISTS; partition and clustering keys, CLUSTERING ORDER BY;
//     other table options accepted and ignored), ALTER TABLE ... ADD of
//     one regular column (an existing name is an error, as in
//     ScyllaDB), USE, INSERT (IF NOT EXISTS, answering [applied] and
//     the existing row), UPDATE (col = v,
//     map[k] = v, col = col + v, col = col - v), DELETE (rows, cells, map
//     elements, whole partitions), SELECT (columns, *, writetime(col);
//     WHERE with = on the whole partition key and =, <, <=, >, >= on
//     clustering columns; ORDER BY; LIMIT; or no WHERE: a scan).
//   - Types text, varchar, ascii, bigint, int, timestamp, blob, boolean,
//     uuid, timeuuid, inet and non-frozen map, set and list (whole-value
//     writes only for lists).
//   - Storage semantics: rows kept in clustering order; every cell and
//     map element carries its write timestamp (USING TIMESTAMP, else the
//     client's default timestamp, else the server clock) and is
//     reconciled last-write-wins — higher timestamp wins, on a tie a
//     tombstone beats a value and a greater value beats a smaller one;
//     row markers (an INSERTed row exists with all its cells null, an
//     UPDATEd one only while it has a live cell); row, partition, cell
//     and collection tombstones shadowing older writes whenever they
//     arrive; assigning a whole collection replaces it.
//   - Failure: Stop drops every connection and stops listening without
//     answering requests in flight; StopAfter(n) kills the node on the
//     n-th data request, in the middle of a client's work; Restart comes
//     back on the same port with the data but, like a restarted ScyllaDB
//     node, without prepared statements.
//
// # What it does not model
//
// Any CQL beyond that subset (no IN, no secondary indexes or
// materialized views, no TTL, no counters, no functions but writetime, no
// other ALTER (no DROP, RENAME or WITH of a column or table, no ALTER
// KEYSPACE), no TRUNCATE, no named bind markers, no user types, tuples or
// frozen/nested collections, no static columns, no range deletions);
// Cassandra's token order for scans (partitions are scanned in key byte
// order); timeuuid ordering (uuids compare bytewise); more than one node,
// replication, consistency levels (accepted and ignored: one copy, every
// read sees every completed write), hinted handoff, repair; lightweight
// transactions beyond INSERT IF NOT EXISTS, and Paxos; tombstone garbage
// collection and gc_grace_seconds (tombstones live for ever); compaction
// and every other storage engine property, so performance says nothing
// about ScyllaDB; schema agreement across nodes and pushed events
// (REGISTER is accepted, no event is ever sent); authentication,
// compression, TLS, protocol versions other than 4, the shard-aware
// port, tablets. A statement outside the subset gets a syntax or invalid
// request error, never a silent no-op.
//
// Every statement and every batch runs under one lock, so each is atomic
// and isolated: stronger than Cassandra, where only single-partition
// writes are. Code that passes here may still depend on that by
// accident; the scyllastore suite also runs against a real cluster when
// PARLEY_SCYLLA_HOSTS is set.
//
// A Server is safe for concurrent use.
package cqlfake
