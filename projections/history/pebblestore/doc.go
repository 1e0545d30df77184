// Package pebblestore is the embedded adapter of the history store: a
// history.Store on a Pebble LSM in one directory, for `parley run` on a
// single machine. It passes the same suite (historytest) as the ScyllaDB
// adapter, scyllastore, and its keys mirror that adapter's tables so the
// two stay easy to compare.
//
// # Key layout
//
// Every key starts with a one-byte table tag. Strings (conversation and
// user ids) are written with an order-preserving, self-delimiting
// encoding: each 0x00 byte becomes 0x00 0xFF and the string ends with
// 0x00 0x01. So a string's keys never interleave with another string's
// keys, and keys sort by the string's bytes first. Integers are
// big-endian, so Pebble's bytewise order is numeric order.
//
//	'm' conversation bucket:u64 seq:u64      → event        (messages)
//	'c' conversation                         → summary JSON (conversations)
//	'i' user activity:12B conversation       → empty        (inbox index)
//	'u' user conversation                    → activity:12B (inbox pointer)
//
// messages mirrors the ScyllaDB partition (conversation_id, bucket) with
// bucket = seq / 1000 and clustering column seq; Pebble iterates in
// ascending key order, so a forward page is a SeekGE and Next, a backward
// page a SeekLT and Prev over the same keys. The value of an event is a
// version byte, the time as seconds (i64) and nanoseconds (u32), the
// uvarint-prefixed ce_id and ce_type, then the data exactly as given.
//
// conversations holds each conversation's history.Conversation as JSON.
//
// The inbox is two tables. The index key's activity is the conversation's
// LastActivity inverted (the bitwise complement of the sign-flipped Unix
// seconds and of the nanoseconds), so a user's conversations iterate most
// recent first, ties broken by conversation id. The pointer records which
// index key is current for (user, conversation), so that a newer activity
// deletes the old index key in the same batch that writes the new one.
//
// # Durability and concurrency
//
// A Store is safe for concurrent use. Apply writes one Pebble batch per
// call and commits it with pebble.Sync, so an Apply that returned nil
// survives a kill -9. Apply reads before it writes (which events are
// already stored, the current summary and inbox pointers) under a lock
// per conversation, taken for all conversations of the batch in a fixed
// order, so concurrent calls on different conversations proceed in
// parallel and calls on the same conversation never lose an update.
// Waiting for those locks honours the context. Reads see a consistent
// snapshot of the store. Close waits for calls in progress; calls after
// Close return ErrClosed.
package pebblestore
