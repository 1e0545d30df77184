// The delivery hub adapted to the interfaces the gateway owns.

package app

import (
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
