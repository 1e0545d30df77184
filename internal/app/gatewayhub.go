// The delivery hub adapted to the interfaces the gateway owns.

package app

import (
	"context"
	"sync/atomic"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers/decider"
	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/projections/delivery"
)

// gatewayHub is a delivery.Hub as the gateway uses it: its sessions
// handed out as gateway.Sessions.
type gatewayHub struct{ *delivery.Hub }

// NewSession registers a session of user with the hub.
func (h gatewayHub) NewSession(user string) gateway.Session { return h.Hub.NewSession(user) }

var (
	_ gateway.Hub           = gatewayHub{}
	_ gateway.Conversations = (*delivery.Hub)(nil)
	_ gateway.Session       = (*delivery.Session)(nil)
)

// localHandoff hands the decider's appended records to the delivery hub
// of the same process, once the hub has started (before, the log brings
// them): one node under broadcast routing.
type localHandoff struct{ hub atomic.Pointer[delivery.Hub] }

func (l *localHandoff) AppendedEvents(ctx context.Context, records []kafka.Message) {
	if h := l.hub.Load(); h != nil {
		h.AppendedEvents(ctx, records)
	}
}

func (l *localHandoff) AppendedReplies(ctx context.Context, records []kafka.Message) {
	if h := l.hub.Load(); h != nil {
		h.AppendedReplies(ctx, records)
	}
}

var (
	_ decider.Handoff = (*localHandoff)(nil)
	_ decider.Handoff = (*delivery.Hub)(nil)
)
