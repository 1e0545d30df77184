// The Pebble key layout, mirroring the ScyllaDB tables: order-preserving
// encodings of conversations, seqs and users.

package pebblestore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parley-chat/parley/projections/history"
)

// Table tags, the first byte of every key.
const (
	tagMessage      = 'm'
	tagConversation = 'c'
	tagInbox        = 'i'
	tagInboxPointer = 'u' // earlier versions' only: see the package doc
	tagReadSeq      = 'r'
	tagCount        = 'n'
	tagState        = 's'
	tagReceipt      = 'e'
	tagAuthor       = 'w'
)

// bucketSize is the number of seqs in a messages bucket, as in the
// ScyllaDB table.
const bucketSize = 1000

// activityLen is the length of an encoded, inverted activity time.
const activityLen = 12

// errCorrupt is returned for a key or value this package cannot decode.
var errCorrupt = errors.New("corrupt record")

// appendString appends s in the order-preserving, self-delimiting
// encoding: 0x00 is escaped as 0x00 0xFF and the string ends with
// 0x00 0x01 (stringLen bytes, more if s holds 0x00).
func appendString(b []byte, s string) []byte {
	for {
		i := strings.IndexByte(s, 0)
		if i < 0 {
			return append(append(b, s...), 0, 1)
		}
		b = append(append(b, s[:i]...), 0, 0xFF)
		s = s[i+1:]
	}
}

// stringLen is the length of s encoded by appendString when s holds no
// 0x00.
func stringLen(s string) int { return len(s) + 2 }

// newKey returns a key of table tag with room for n more bytes: a key
// is built in one allocation (more only for a string holding 0x00).
func newKey(tag byte, n int) []byte {
	return append(make([]byte, 0, 1+n), tag)
}

// readString decodes a string written by appendString from the start of
// b and returns it with the rest of b.
func readString(b []byte) (string, []byte, error) {
	var s []byte
	for {
		i := bytes.IndexByte(b, 0)
		if i < 0 || i+1 >= len(b) {
			return "", nil, fmt.Errorf("%w: unterminated string", errCorrupt)
		}
		s = append(s, b[:i]...)
		switch b[i+1] {
		case 0xFF:
			s = append(s, 0)
			b = b[i+2:]
		case 1:
			return string(s), b[i+2:], nil
		default:
			return "", nil, fmt.Errorf("%w: bad escape 0x%02x", errCorrupt, b[i+1])
		}
	}
}

// messagePrefix is the prefix of every messages key of conversation.
func messagePrefix(conversation string) []byte {
	return seqPrefix(tagMessage, conversation)
}

// messageKey is the messages key of (conversation, seq).
func messageKey(conversation string, seq uint64) []byte {
	return seqKey(tagMessage, conversation, seq)
}

// countKey is the key of the number of messages of conversation through
// seq (the messages_through column of ScyllaDB's messages).
func countKey(conversation string, seq uint64) []byte {
	return seqKey(tagCount, conversation, seq)
}

// stateKey is the key of the state of message seq of conversation (the
// state column of ScyllaDB's messages).
func stateKey(conversation string, seq uint64) []byte {
	return seqKey(tagState, conversation, seq)
}

// seqPrefix is the prefix of the keys of table tag of conversation.
func seqPrefix(tag byte, conversation string) []byte {
	return appendString(newKey(tag, stringLen(conversation)), conversation)
}

// seqKey is the key of (conversation, bucket, seq) in table tag: the
// layout of every table that mirrors a (conversation_id, bucket)
// partition clustered by seq.
func seqKey(tag byte, conversation string, seq uint64) []byte {
	b := appendString(newKey(tag, stringLen(conversation)+16), conversation)
	b = binary.BigEndian.AppendUint64(b, seq/bucketSize)
	return binary.BigEndian.AppendUint64(b, seq)
}

// seqOfMessageKey returns the seq at the end of a key made by seqKey.
func seqOfMessageKey(k []byte) (uint64, error) {
	if len(k) < 16 {
		return 0, fmt.Errorf("%w: short message key", errCorrupt)
	}
	return binary.BigEndian.Uint64(k[len(k)-8:]), nil
}

// conversationKey is the conversations key of conversation.
func conversationKey(conversation string) []byte {
	return appendString(newKey(tagConversation, stringLen(conversation)), conversation)
}

// authorPrefix is the prefix of the author keys of ref, an erasure
// reference.
func authorPrefix(ref string) []byte {
	return appendString(newKey(tagAuthor, stringLen(ref)), ref)
}

// authorKey records that the user whose erasure reference is ref wrote
// content in conversation.
func authorKey(ref, conversation string) []byte {
	b := newKey(tagAuthor, stringLen(ref)+stringLen(conversation))
	return appendString(appendString(b, ref), conversation)
}

// inboxPrefix is the prefix of every inbox index key of user.
func inboxPrefix(user string) []byte {
	return appendString(newKey(tagInbox, stringLen(user)), user)
}

// inboxKey is the inbox index key of user's conversation with the
// encoded activity act.
func inboxKey(user string, act []byte, conversation string) []byte {
	b := appendString(newKey(tagInbox, stringLen(user)+len(act)+stringLen(conversation)), user)
	b = append(b, act...)
	return appendString(b, conversation)
}

// conversationOfInboxKey returns the conversation id of an inbox index
// key of user.
func conversationOfInboxKey(user string, k []byte) (string, error) {
	return lastString(k, len(inboxPrefix(user))+activityLen, "inbox")
}

// lastString decodes the string that fills key k after its first n
// bytes; what names the key in errors.
func lastString(k []byte, n int, what string) (string, error) {
	if len(k) < n {
		return "", fmt.Errorf("%w: short %s key", errCorrupt, what)
	}
	s, rest, err := readString(k[n:])
	if err != nil {
		return "", err
	}
	if len(rest) != 0 {
		return "", fmt.Errorf("%w: trailing bytes in %s key", errCorrupt, what)
	}
	return s, nil
}

// inboxPointerKey is the inbox pointer key of (user, conversation),
// which earlier versions kept and Open converts (see the package doc).
func inboxPointerKey(user, conversation string) []byte {
	b := newKey(tagInboxPointer, stringLen(user)+stringLen(conversation))
	return appendString(appendString(b, user), conversation)
}

// readSeqKey is (user, conversation) → the seq user has read up to,
// big-endian. It mirrors the read_seq column of ScyllaDB's inbox.
func readSeqKey(user, conversation string) []byte {
	b := newKey(tagReadSeq, stringLen(user)+stringLen(conversation))
	return appendString(appendString(b, user), conversation)
}

// receiptPrefix is the prefix of every receipts key of conversation.
func receiptPrefix(conversation string) []byte {
	return appendString(newKey(tagReceipt, stringLen(conversation)), conversation)
}

// receiptKey is (conversation, user) → the user's read and delivered
// seqs, big-endian (receipts).
func receiptKey(conversation, user string) []byte {
	b := newKey(tagReceipt, stringLen(conversation)+stringLen(user))
	return appendString(appendString(b, conversation), user)
}

// userOfReceiptKey returns the user id of a receipts key of conversation.
func userOfReceiptKey(conversation string, k []byte) (string, error) {
	return lastString(k, len(receiptPrefix(conversation)), "receipt")
}

// encodeSeqs and decodeSeqs encode a list of seqs as big-endian u64s,
// the value of the read seq and receipt keys and of counts.
func encodeSeqs(seqs ...uint64) []byte {
	b := make([]byte, 0, 8*len(seqs))
	for _, s := range seqs {
		b = binary.BigEndian.AppendUint64(b, s)
	}
	return b
}

func decodeSeqs(v []byte, n int) ([]uint64, error) {
	if len(v) != 8*n {
		return nil, fmt.Errorf("%w: %d bytes, want %d seqs", errCorrupt, len(v), n)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.BigEndian.Uint64(v[8*i:])
	}
	return out, nil
}

// activity encodes t so that later times sort first: the complement of
// the Unix seconds with the sign bit flipped, then the complement of the
// nanoseconds.
func activity(t time.Time) []byte {
	b := make([]byte, 0, activityLen)
	b = binary.BigEndian.AppendUint64(b, ^(uint64(t.Unix()) ^ 1<<63))
	return binary.BigEndian.AppendUint32(b, ^uint32(t.Nanosecond()))
}

// prefixEnd returns the smallest key greater than every key with prefix
// p, for an iterator's upper bound. The keys here always have a prefix
// that ends in 0x01 (a string's terminator), so incrementing the last
// byte never overflows.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // all 0xFF: no upper bound
}

// eventVersion is the first byte of an encoded event.
const eventVersion = 1

// encodeEvent encodes everything of ev but its conversation and seq, which
// are in its key. The data is kept byte for byte.
func encodeEvent(ev history.Event) []byte {
	b := make([]byte, 0, 1+12+2*binary.MaxVarintLen64+len(ev.ID)+len(ev.Type)+len(ev.Data))
	b = append(b, eventVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(ev.Time.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(ev.Time.Nanosecond()))
	b = binary.AppendUvarint(b, uint64(len(ev.ID)))
	b = append(b, ev.ID...)
	b = binary.AppendUvarint(b, uint64(len(ev.Type)))
	b = append(b, ev.Type...)
	return append(b, ev.Data...)
}

// decodeEvent decodes a value written by encodeEvent. It copies what it
// keeps, so v may be reused by the caller afterwards.
func decodeEvent(conversation string, seq uint64, v []byte) (history.Event, error) {
	ev := history.Event{ConversationID: conversation, Seq: seq}
	if len(v) < 13 || v[0] != eventVersion {
		return ev, fmt.Errorf("%w: event %d of %s", errCorrupt, seq, conversation)
	}
	sec := int64(binary.BigEndian.Uint64(v[1:]))
	nsec := int64(binary.BigEndian.Uint32(v[9:]))
	ev.Time = time.Unix(sec, nsec).UTC()
	v = v[13:]
	var err error
	if ev.ID, v, err = readLenString(v); err != nil {
		return ev, fmt.Errorf("event %d of %s: %w", seq, conversation, err)
	}
	if ev.Type, v, err = readLenString(v); err != nil {
		return ev, fmt.Errorf("event %d of %s: %w", seq, conversation, err)
	}
	if len(v) > 0 {
		ev.Data = bytes.Clone(v)
	}
	return ev, nil
}

// readLenString reads a uvarint-prefixed string from b.
func readLenString(b []byte) (string, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return "", nil, fmt.Errorf("%w: bad length", errCorrupt)
	}
	return string(b[k : k+int(n)]), b[k+int(n):], nil
}
