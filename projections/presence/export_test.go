package presence

import "context"

// HeartbeatDue re-publishes the entries due, as Run does on each tick.
func (t *Tracker) HeartbeatDue(ctx context.Context) { t.heartbeat(ctx) }
