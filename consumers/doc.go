// Package consumers is the consumer side of Parley's log: the runtime
// that feeds a projection from a consumer group (micro-batches per fetch,
// commit only after the batch is applied, retry with backoff while a store
// is down, dead-letter what cannot be decoded and go on) and, in
// subpackage decider, the partition-aware consumer that turns commands
// into events.
//
// A projection sees each record at least once; it makes that exactly once
// in effect by being idempotent (see package projections).
package consumers
