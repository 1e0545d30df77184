// The SSE cursor: the per-conversation seqs a Server-Sent Events stream
// has delivered, carried in each message's id and sent back by the client
// as Last-Event-ID to resume.

package gateway

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/parley-chat/parley/schemas"
)

// cursorVersion prefixes every encoded cursor, so that the encoding can
// change without a client's stored Last-Event-ID being misread.
const cursorVersion = "1."

// errCursor is why a Last-Event-ID cannot be resumed from.
var errCursor = errors.New("malformed event id")

// cursor is, per conversation, the last seq a stream has delivered (an
// event's, or the end of a gap it announced), and the order in which the
// conversations last moved, so that the least recent is the one dropped
// when the cursor is full.
type cursor struct {
	max  int
	last map[string]uint64
	// tick orders the conversations by their last move: when each last
	// moved (a counter, not a clock).
	tick  map[string]uint64
	clock uint64
}

func newCursor(max int, from map[string]uint64) *cursor {
	c := &cursor{max: max, last: make(map[string]uint64, len(from)), tick: make(map[string]uint64, len(from))}
	for conv, seq := range from {
		c.set(conv, seq)
	}
	return c
}

// set moves conv to seq, unless it is there or further already, and
// reports whether the cursor changed. A conversation new to a full
// cursor drops the one that moved least recently.
func (c *cursor) set(conv string, seq uint64) bool {
	if cur, ok := c.last[conv]; ok && cur >= seq {
		return false
	}
	if _, ok := c.last[conv]; !ok && len(c.last) >= c.max {
		oldest, at := "", uint64(0)
		for k, t := range c.tick {
			if oldest == "" || t < at {
				oldest, at = k, t
			}
		}
		delete(c.last, oldest)
		delete(c.tick, oldest)
	}
	c.clock++
	c.last[conv], c.tick[conv] = seq, c.clock
	return true
}

// String encodes the cursor: "1." then "<conversation id>:<seq>" pairs
// joined by ",", in conversation id order. Conversation ids are
// [A-Za-z0-9_-], so the encoding needs no escaping in an SSE id, a
// header or a query parameter.
func (c *cursor) String() string {
	convs := make([]string, 0, len(c.last))
	for conv := range c.last {
		convs = append(convs, conv)
	}
	slices.Sort(convs)
	var b strings.Builder
	b.WriteString(cursorVersion)
	for i, conv := range convs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(conv)
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(c.last[conv], 10))
	}
	return b.String()
}

// parseCursor decodes an encoded cursor of at most max conversations.
// An empty id is the empty cursor.
func parseCursor(s string, max int) (map[string]uint64, error) {
	out := make(map[string]uint64)
	if s == "" {
		return out, nil
	}
	rest, ok := strings.CutPrefix(s, cursorVersion)
	if !ok {
		return nil, fmt.Errorf("%w: unknown version", errCursor)
	}
	if rest == "" {
		return out, nil
	}
	for pair := range strings.SplitSeq(rest, ",") {
		if len(out) == max {
			return nil, fmt.Errorf("%w: more than %d conversations", errCursor, max)
		}
		conv, seq, ok := strings.Cut(pair, ":")
		if !ok || !schemas.ValidConversationID(conv) {
			return nil, fmt.Errorf("%w: %q is not <conversation id>:<seq>", errCursor, pair)
		}
		n, err := strconv.ParseUint(seq, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %q is not <conversation id>:<seq>", errCursor, pair)
		}
		if _, dup := out[conv]; dup {
			return nil, fmt.Errorf("%w: conversation %s twice", errCursor, conv)
		}
		out[conv] = n
	}
	return out, nil
}
