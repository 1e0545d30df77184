// Package files is the files projection: it follows chat.events to keep
// the file store in step with the messages that carry files, and sweeps
// uploads no message attached.
//
// For each message with attachments (chat.message.sent.v3) it writes, in
// the file store beside the uploads, a marker per attached upload
// (attached/<conversation>/<upload id>) and the message's list of uploads
// (messages/<conversation>/<seq>); for a deleted message
// (chat.message.deleted.v1) it deletes the message's uploads, their
// thumbnails, their markers and the list. Every write is idempotent, so
// a replay from offset 0 ends in the same store. The Sweeper deletes
// every upload older than its TTL that has no marker: files uploaded and
// never sent. The Thumbnailer, a consumer group of its own, stores a
// small JPEG beside each image a message carries and records it in the
// log as chat.thumbnail.added.v1 (through a command the decider judges).
//
// Projection, Sweeper and Thumbnailer hold no state of their own and are
// safe for concurrent use if their Store (and Appender) are.
package files
