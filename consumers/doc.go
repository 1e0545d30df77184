// Package consumers is the consumer side of Parley's log: the runtime
// that feeds a projection from a consumer group (micro-batches per fetch,
// commit only after the batch is applied, retries with backoff, dead
// letters) and, in subpackage decider, the partition-aware consumer that
// turns commands into events.
//
// A projection sees each record at least once; it makes that exactly once
// in effect by being idempotent (see package projections).
//
// # Decoding, and sealed records
//
// Every reader of the log decodes a record through DecodeRecord: the
// group runtime, ApplyRange (rebuilds), the decider's rebuild, the
// delivery hub and `parley replay`. A record whose personal content is
// sealed (crypto-shredding, schemas.ContentTypeSealed) comes out of it as
// the event it holds, opened with the Opener the reader is given, or, if
// it has none or the owner's key is erased, as the event with that
// content blank. So a projection never sees an envelope, and one added
// later gets opening by passing the Opener (GroupConfig.Opener). A record
// copied to another topic is copied with Record.Original, sealed.
//
// # Dead letters
//
// A record the group cannot process is copied to chat.dlq with its key,
// value and headers, plus the parley_dlq_* headers that name the error,
// the group and the record's topic, partition and offset (DeadLetter);
// the group counts it (parley_consumer_dead_letters_total{group}),
// commits past it and goes on. `parley dlq` lists dead letters and
// copies one back to its topic once its cause is fixed. A record is
// dead-lettered when:
//
//   - its CloudEvents headers are missing or malformed, or it is sealed
//     and the key store cannot be read (not: the key is erased);
//   - the projection's Decode refuses it: a value that breaks its type's
//     schema, a type the projection must understand but does not (each
//     projection documents which unknown types it keeps instead);
//   - its store refuses it while taking writes, by the rule below.
//
// # When Apply fails
//
// A store that is down must never cost a record; a record a healthy store
// refuses forever must not stop the group. So:
//
//  1. A failing batch is retried with backoff, ApplyAttempts times in all.
//  2. Then its records are applied one at a time, in log order, each
//     retried ApplyAttempts times.
//  3. A record that still fails is dead-lettered only if the projection
//     is a Prober and Probe succeeds: the store takes writes, so the
//     fault is in the record (or in how the store treats it).
//  4. Otherwise the store is taken to be down: the record is retried with
//     backoff (MaxBackoff) for as long as it takes, probing again after
//     every ApplyAttempts failures, and nothing is committed meanwhile.
//     Once it is applied, the rest of the batch goes as a batch again.
//
// A projection that is not a Prober therefore never loses a record to a
// failing Apply: it waits for its store, however long. Retrying stops
// only when the process stops; the batch is then not committed and is
// applied again by the next owner of its partitions.
//
// # Durability
//
// A group commits an offset only once what was applied up to it is
// durable, so that a crash at any point loses only work the log still
// holds past the committed offsets, which the next owner applies again.
// For most projections Apply returns once its writes are durable, and the
// group commits after each batch. A projection that is a Syncer writes
// without waiting for the disk; the group then keeps the offsets of what
// it applied, calls Sync at most CommitInterval (250 ms) after the first
// of them, and commits them only after Sync returned nil — also when no
// record has come since, and before it returns. Committed offsets then
// trail what is applied by up to twice CommitInterval (the reader commits
// what it is given every CommitInterval), and a crash makes the store
// apply again up to that much of the log. A member that loses a partition
// in a rebalance still commits, after its next Sync, what it applied of
// it, as kafka-go commits the offsets it is given for any partition:
// they are offsets its own store holds (a Syncer's store is the
// member's own), and the new owner applies from the offset committed
// when it took the partition.
//
// # Where a group starts, and a log that lost records
//
// A group starts from its committed offsets. StartAtEnd gives a group
// that only matters from now on (the router) the log's end; a store made
// new takes the log from its start (StartAtBeginning), or some
// partitions of it (Rewind). A log can also end before a group's
// committed offset: it lost records the group had read (Position.Lost).
// FindLostRecords finds them, MonitorLag reports them beside the lag,
// and MoveBackToEnd puts a group that builds nothing back at the end;
// what a process does about it is package app's (`parley recover`). All
// of these commit as a simple consumer, so only a group without members.
package consumers
