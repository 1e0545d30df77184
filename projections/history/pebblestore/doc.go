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
//	'n' conversation bucket:u64 seq:u64      → count:u64    (messages.messages_through)
//	's' conversation bucket:u64 seq:u64      → state JSON   (messages.state)
//	'c' conversation                         → summary JSON (conversations)
//	'i' user activity:12B conversation       → empty        (inbox index)
//	'r' user conversation                    → read seq:u64 (inbox read_seq)
//	'e' conversation user                    → read:u64 delivered:u64 (receipts)
//	'w' author_ref conversation              → empty        (content_authors)
//
// messages mirrors the ScyllaDB partition (conversation_id, bucket) with
// bucket = seq / 1000 and clustering column seq; Pebble iterates in
// ascending key order, so a forward page is a SeekGE and Next, a backward
// page a SeekLT and Prev over the same keys. The value of an event is a
// version byte, the time as seconds (i64) and nanoseconds (u32), the
// uvarint-prefixed ce_id and ce_type, then the data exactly as given;
// a deletion rewrites the data of the message and of its edits with the
// body erased (history.Redact).
//
// The count of an event is how many chat messages the conversation had
// through its seq (the summary's Messages right after folding it), for
// unread counts: a user has read the messages counted at their read seq
// (a point lookup, or the nearest lower count in the bucket when the
// event has none). The state of a message is what edits, deletions and
// reactions made of it (internal/fold's JSON, the same as ScyllaDB's),
// attached to the message by Page; a page reads the states of its seq
// range in one pass. A store written before counts and receipts existed
// has neither for its older events (and its summaries count no earlier
// message): unread counts are exact again after a rebuild, a replay of
// chat.events into a fresh directory.
//
// conversations holds each conversation's history.Conversation as JSON.
// Apply keeps the summaries it wrote last, decoded, in memory
// (summaryCache, a few thousand of them), so that a busy conversation's
// next batch folds onto its summary without reading and decoding it
// again; Erase forgets the conversations it rewrites.
//
// # Erasure
//
// The store finds an erased user's content by their erasure reference
// (schemas.ErasureRef, the SHA-256 that chat.user.erased.v1 names them
// by): Apply writes an author key ('w') for each (reference, conversation)
// of an event with personal content (contentkeys.Owner), so the store
// never holds the author's id in a key of its own. Erase lists the
// reference's conversations, blanks their events, states, title and
// preview (internal/fold's Erase) in one synced batch, then flushes the
// memtable and compacts each conversation's key ranges, so that no
// sorted table keeps the plaintext; Pebble's write-ahead logs, the other
// place it was written, are rotated by the flush and then recycled or
// deleted. A store written before author keys existed knows no author:
// rebuild it once (`parley rebuild history -swap`).
//
// The inbox index key's activity is the conversation's LastActivity
// inverted (the bitwise complement of the sign-flipped Unix seconds and
// of the nanoseconds), so a user's conversations iterate most recent
// first, ties broken by conversation id. Every member of a conversation
// has its inbox key at the summary's LastActivity — Apply writes them all
// in the batch that writes the summary — so a newer activity deletes the
// old keys, found from the summary it replaces, in the same batch that
// writes the new ones, with nothing to read per member. Earlier versions
// kept a pointer per (user, conversation) to the current key ('u'); Open
// converts such a store once, putting every member's key where the
// summary says and deleting the pointers.
//
// Read and delivered markers only grow: a write reads the current value
// and keeps the higher one. The read seq is kept in both 'r' (the
// inbox's, read by Conversations) and 'e' (a conversation's receipts,
// listed by Receipts), written in the same batch.
//
// # Memtables
//
// Every message rewrites keys written moments before: the conversation's
// summary, each member's inbox key, the markers. Pebble's
// default 4 MiB memtable filled in about a quarter of a second at 5,000
// messages a second, and each flush took those keys to disk again, where
// compactions rewrote them: compactions were an eighth of the server's
// CPU at that rate. The store's memtables are 32 MiB (memTableSize), in
// which the newer versions of a key replace the older before any is
// flushed; compactions fell to 3 % of the CPU, while writing into the
// larger memtable costs a little more (BENCHMARKS.md, "The history
// store's memtables"). Pebble starts with a 256 KiB memtable and doubles
// each new one up to that size, and a memtable takes memory as it fills:
// up to two of them while one is being flushed, so up to 64 MiB under a
// heavy write load, and little on an idle server. A larger memtable also
// means a longer write-ahead log to replay when the store opens after a
// crash.
//
// # Durability and concurrency
//
// A Store is safe for concurrent use. Apply and ApplyReceipts write one
// Pebble batch per call and commit it without waiting for the disk
// (pebble.NoSync); Sync syncs the write-ahead log, after which every call
// that returned nil before it survives a crash of the machine, and the
// history projections sync before their consumer groups commit
// (consumers.Syncer), at most every quarter of a second. A sync per call
// was 5–9 % of the server's CPU at 100–500 messages a second
// (BENCHMARKS.md, "The history and push stores sync before the commit").
// Erase, Ping and the conversion at Open commit with pebble.Sync. Calls
// read before they write (which events are already stored, the current
// summary, message states and markers) under a lock per conversation
// (internal/convlock), taken for all conversations of the call in a
// fixed order, so concurrent calls on different conversations proceed in
// parallel and calls on the same conversation never lose an update.
// Waiting for those locks honours the context. Reads see a consistent
// snapshot of the store. Close waits for calls in progress; calls after
// Close return ErrClosed.
package pebblestore
