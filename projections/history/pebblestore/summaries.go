// The summaries Apply has written lately, decoded.

package pebblestore

import (
	"sync"

	"github.com/parley-chat/parley/projections/history"
)

// summaryCache keeps the decoded summaries of the conversations Apply
// wrote last, so that the next batch of a busy conversation folds onto
// its summary without reading and decoding it again. A summary is
// shared, never changed in place: folding copies what it changes
// (history.ApplyToSummary, conversation.State), as the delivery hub's
// cache relies on too.
//
// It holds what committed batches wrote, and only that: Apply puts a
// summary once its batch has committed, and Erase forgets the
// conversations it rewrites. It holds two generations of at most
// maxCachedSummaries summaries and maxCachedMembers members each; a
// lookup moves what it finds in the older one to the newer, and when the
// newer is full the older is dropped. Safe for concurrent use.
type summaryCache struct {
	mu       sync.Mutex
	cur, old map[string]history.Conversation
	members  int // in cur
}

const (
	maxCachedSummaries = 4096
	// maxCachedMembers bounds a generation's memory, which a few large
	// groups would otherwise take: about 64 bytes a member.
	maxCachedMembers = 1 << 16
)

func (c *summaryCache) get(conv string) (history.Conversation, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sum, ok := c.cur[conv]; ok {
		return sum, true
	}
	sum, ok := c.old[conv]
	if ok {
		delete(c.old, conv)
		c.add(conv, sum)
	}
	return sum, ok
}

// put records the summaries of a committed batch.
func (c *summaryCache) put(sums []history.Conversation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, sum := range sums {
		delete(c.old, sum.ID)
		c.add(sum.ID, sum)
	}
}

// forget drops what the cache holds of convs.
func (c *summaryCache) forget(convs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conv := range convs {
		if sum, ok := c.cur[conv]; ok {
			c.members -= len(sum.Members)
			delete(c.cur, conv)
		}
		delete(c.old, conv)
	}
}

// add puts sum in the newer generation; the caller holds mu.
func (c *summaryCache) add(conv string, sum history.Conversation) {
	if len(sum.Members) > maxCachedMembers/16 {
		return // one group would take a sixteenth of a generation
	}
	if prev, ok := c.cur[conv]; ok {
		c.members -= len(prev.Members)
	} else if len(c.cur) >= maxCachedSummaries || c.members+len(sum.Members) > maxCachedMembers {
		c.old, c.cur, c.members = c.cur, nil, 0
	}
	if c.cur == nil {
		c.cur = make(map[string]history.Conversation)
	}
	c.cur[conv] = sum
	c.members += len(sum.Members)
}
