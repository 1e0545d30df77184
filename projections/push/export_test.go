package push

import (
	"context"
	"encoding/json"
	"time"

	"github.com/parley-chat/parley/schemas"
)

// DueIndexLen returns how many keys the due index holds, for tests that
// check it keeps step with the pending and clearing entries.
func (p *Push) DueIndexLen() (int, error) {
	n := 0
	err := scan(p.store.db, prefixDue, func(_, _ []byte) (bool, error) { n++; return true, nil })
	return n, err
}

// PendingPreviews returns the previews of the notifications pending.
func (p *Push) PendingPreviews() ([]string, error) {
	var out []string
	err := scan(p.store.db, prefixPending, func(_, v []byte) (bool, error) {
		var pd pending
		if err := json.Unmarshal(v, &pd); err != nil {
			return false, err
		}
		out = append(out, pd.Preview)
		return true, nil
	})
	return out, err
}

// Job is a notification the sender lists as due.
type Job = job

// DueJobs lists the notifications due at now, as the sender does.
func (p *Push) DueJobs(now time.Time) ([]Job, error) { return p.due(now) }

// SendJob sends j as the sender does once it has listed it.
func (p *Push) SendJob(ctx context.Context, j Job) error { return p.sendOne(ctx, j) }

// ProjectionWithDevices returns the projection of a role that knows the
// registrations regs and nothing else, as RebuildProjection's knows none.
func ProjectionWithDevices(store *Store, regs ...*schemas.DeviceRegisteredV1) Projection {
	pr := RebuildProjection(store).(Projection)
	for _, r := range regs {
		pr.p.settings.Apply(r)
	}
	return pr
}
