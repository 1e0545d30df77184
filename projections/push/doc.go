// Package push is the push projection: it notifies the devices of
// conversation members that have no live socket, through each device's
// provider (Web Push, FCM, APNs).
//
// Three inputs make it:
//
//   - chat.push, the compacted topic of device registrations and
//     notification settings, which every process of the push role reads
//     whole on every start (Settings), so that a registration is known
//     whichever partition of chat.events a process owns;
//   - chat.events and chat.receipts, which the consumer group
//     parley-projection-push reads (Projection): membership is folded per
//     conversation, each message marks the devices of the members other
//     than its sender as due a notification, and a read marker clears the
//     notifications of the reader's other devices; the group reads
//     chat.audit too, where an erasure (chat.user.erased.v1) blanks the
//     preview of every pending notification whose newest message the
//     erased user sent before it (the notification still goes, with no
//     text; one sent already is out of reach), then flushes and compacts
//     the pending entries, with obsolete write-ahead logs deleted rather
//     than recycled (pebblelog.DeletingCleaner), so no file keeps it;
//   - the session registry (presence.Registry), asked at the moment of
//     sending whether the device has a live socket: a connected device
//     gets its events over the socket and no notification.
//
// What is due is kept in a Pebble store in the role's data directory,
// written before the group commits its offsets: one pending entry per
// (user, device, conversation) that coalesces the messages of one window
// into one notification with a count, and one sent entry that records the
// last seq notified and when; a due index orders the pending entries by
// when they are due. The sender sends what is due (at most Concurrency
// requests at once, each on its own, so a slow provider holds up only its
// own), retries provider errors with bounded backoff (honouring
// Retry-After), removes registrations the provider says are gone (an
// event on chat.push), and records what it sent before it deletes the
// pending entry. It reads each entry again just before it sends it, so a
// notification listed as due while its previous send was finishing is not
// sent twice. A process
// killed at any point therefore loses nothing that was due — the pending
// entry is still there — and sends nothing twice within the window —
// the sent entry is there — except in the instant between a provider's
// acceptance and the write of the sent entry; the notification's collapse
// key (the conversation) makes the device replace, not repeat, it then.
//
// Push, Projection and Settings are safe for concurrent use.
package push
