package presence

import (
	"context"

	"github.com/parley-chat/parley/schemas"
)

// HeartbeatDue re-publishes the entries due, as Run does on each tick.
func (t *Tracker) HeartbeatDue(ctx context.Context) { t.heartbeat(ctx) }

// Apply takes a record as if read from the log.
func (t *Tracker) Apply(ctx context.Context, rec *schemas.PresenceV1) { t.apply(ctx, rec) }

// Flush hands the watchers their pending changes, as Run does each Flush.
func (t *Tracker) Flush() { t.flush() }

// Sweep looks for users whose nodes went away, as Run does each Heartbeat.
func (t *Tracker) Sweep(ctx context.Context) { t.sweep(ctx) }
