// Threads: a reply and the messages it answers, oldest first.

package history

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/parley-chat/parley/schemas"
)

// Thread returns the reply chain that ends at message seq of a
// conversation: the message, the one it replies to, that one's, and so
// on, oldest first, at most limit of them (the newest ones when the
// chain is longer). A deleted message stays in the chain as its
// tombstone. ErrNotFound if seq is not a message of the conversation.
func Thread(ctx context.Context, r Reader, conversationID string, seq uint64, limit int) ([]Event, error) {
	var chain []Event
	for seq != 0 && len(chain) < limit {
		page, err := r.Page(ctx, conversationID, PageQuery{Forward: true, After: seq - 1, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(page.Events) == 0 || page.Events[0].Seq != seq || !schemas.IsMessage(page.Events[0].Type) {
			if len(chain) == 0 {
				return nil, fmt.Errorf("message %d of %s: %w", seq, conversationID, ErrNotFound)
			}
			break // a dangling reply_to: the chain ends here
		}
		ev := page.Events[0]
		chain = append(chain, ev)
		var m struct {
			ReplyTo uint64 `json:"reply_to"`
		}
		if err := json.Unmarshal(ev.Data, &m); err != nil || m.ReplyTo >= seq {
			break // replies point backwards; anything else ends the chain
		}
		seq = m.ReplyTo
	}
	slices.Reverse(chain)
	return chain, nil
}
