// The sender: what is due goes to the providers.

package push

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-chat/parley/schemas"
)

// job is one notification due: a message notification or a clear.
type job struct {
	user, device, conv string
	clear              bool
	p                  pending
	c                  clearing
}

// maxJobs bounds the notifications one round of the sender takes.
const maxJobs = 1000

// send sends what is due every Tick, or at once when woken, until ctx
// is done; then it waits for the requests in flight.
func (p *Push) send(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Tick)
	defer t.Stop()
	f := &flight{sem: make(chan struct{}, p.cfg.Concurrency), jobs: make(map[string]bool)}
	defer f.wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-p.wakeup:
		}
		if err := p.sendDue(ctx, f); err != nil && ctx.Err() == nil {
			p.log.Error("sending notifications", "err", err)
		}
	}
}

// flight is what the sender has in flight: at most Concurrency requests,
// each job once, so that a slow provider holds up only its own.
type flight struct {
	sem  chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	jobs map[string]bool
}

// sendDue starts sending each notification due now that is not in flight
// already, while fewer than Concurrency are; it does not wait for them.
func (p *Push) sendDue(ctx context.Context, f *flight) error {
	jobs, err := p.due(p.cfg.Now())
	if err != nil {
		return err
	}
	for _, j := range jobs {
		k := j.key()
		f.mu.Lock()
		busy := f.jobs[k]
		f.mu.Unlock()
		if busy {
			continue
		}
		select {
		case f.sem <- struct{}{}:
		default:
			return nil // the rest at the next tick
		}
		f.mu.Lock()
		f.jobs[k] = true
		f.mu.Unlock()
		f.wg.Go(func() {
			defer func() {
				f.mu.Lock()
				delete(f.jobs, k)
				f.mu.Unlock()
				<-f.sem
				p.wake() // what became due meanwhile, or a slot freed
			}()
			if err := p.sendOne(ctx, j); err != nil && ctx.Err() == nil {
				p.log.Error("recording a notification's outcome", "user_id", j.user, "conversation_id", j.conv, "err", err)
			}
		})
	}
	return nil
}

// key names the job's entry: one device's notification of one
// conversation, or its clear.
func (j job) key() string {
	kind := "m"
	if j.clear {
		kind = "c"
	}
	return kind + "\x00" + j.user + "\x00" + j.device + "\x00" + j.conv
}

// due lists the notifications due at now, from the due index: the
// earliest due first, at most maxJobs.
func (p *Push) due(now time.Time) ([]job, error) {
	var jobs []job
	upper := binary.BigEndian.AppendUint64([]byte(prefixDue), uint64(max(now.UnixNano(), 0))+1)
	it, err := p.store.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixDue), UpperBound: upper})
	if err != nil {
		return nil, err
	}
	for ok := it.First(); ok && len(jobs) < maxJobs; ok = it.Next() {
		rest := it.Key()[len(prefixDue)+8:]
		parts := splitKey(rest, "p\x00") // the kind and its separator
		if len(parts) != 3 {
			continue
		}
		j := job{user: parts[0], device: parts[1], conv: parts[2], clear: rest[0] == prefixClear[0]}
		found, err := p.load(&j, now)
		if err != nil {
			return nil, errors.Join(err, it.Close())
		}
		if found {
			jobs = append(jobs, j)
		}
	}
	return jobs, it.Close()
}

// load reads j's entry as the store holds it now into j, and reports
// whether it is there and due at now.
func (p *Push) load(j *job, now time.Time) (bool, error) {
	if j.clear {
		var c clearing
		found, err := getJSON(p.store.db, key(prefixClear, j.user, j.device, j.conv), &c)
		j.c = c
		return found && !c.Due.After(now), err
	}
	var pd pending
	found, err := getJSON(p.store.db, key(prefixPending, j.user, j.device, j.conv), &pd)
	j.p = pd
	return found && !pd.Due.After(now), err
}

// sendOne sends one job and records its outcome.
func (p *Push) sendOne(ctx context.Context, j job) error {
	now := p.cfg.Now()
	// The job was listed before it was marked in flight, so the same
	// job's previous send may have finished in between: only what is
	// still due goes.
	if due, err := p.load(&j, now); err != nil || !due {
		return err
	}
	dev, ok := p.settings.Device(j.user, j.device)
	if !ok || p.cfg.Live.Connected(j.user, j.device) {
		// Unregistered since, or connected: the socket has the events.
		return p.finish(j, false, now)
	}
	if !j.clear {
		member, err := p.store.member(j.user, j.conv)
		if err != nil {
			return err
		}
		if !member || !p.settings.allowed(j.user, j.conv, j.p.Mentioned, now) {
			// Left or removed since, muted, or quiet hours: dropped.
			return p.finish(j, false, now)
		}
	}
	badge, err := p.store.badge(j.user)
	if err != nil {
		return err
	}
	n := Notification{Type: KindClear, ConversationID: j.conv, Seq: j.c.ReadSeq, Badge: badge}
	if !j.clear {
		n = Notification{Type: KindMessage, ConversationID: j.conv, Seq: j.p.LastSeq, SenderID: j.p.SenderID, Count: j.p.Count, Badge: badge, EventTime: j.p.EventTime}
		if !p.settings.User(j.user).HidePreviews {
			n.Preview = j.p.Preview
		}
	}
	counter := func(outcome string) { p.cfg.Metrics.PushNotifications.WithLabelValues(dev.Provider, outcome).Inc() }
	prov := p.cfg.Providers[dev.Provider]
	if prov == nil {
		p.log.Warn("no provider configured for a registered device", "provider", dev.Provider, "user_id", j.user)
		counter("failed")
		return p.finish(j, false, now)
	}
	sctx, cancel := context.WithTimeout(ctx, p.cfg.SendTimeout)
	err = prov.Send(sctx, dev, n)
	cancel()
	var retry *RetryError
	switch {
	case err == nil:
		counter("sent")
		if !j.clear {
			p.cfg.Metrics.PushLatency.WithLabelValues(dev.Provider).Observe(p.cfg.Now().Sub(j.p.EventTime).Seconds())
		}
		return p.finish(j, true, p.cfg.Now())
	case ctx.Err() != nil:
		return nil // stopping: it stays due
	case errors.Is(err, ErrGone):
		rm := &schemas.DeviceRemovedV1{UserID: j.user, DeviceID: j.device, Reason: schemas.RemovedGone, RegisteredAt: dev.RegisteredAt, RemovedAt: now.UTC()}
		if aerr := p.cfg.Remover.Append(ctx, rm); aerr != nil {
			p.retryLater(j, 0, now)
			return aerr
		}
		p.settings.Apply(rm)
		counter("removed")
		p.log.Info("push registration gone; removed", "provider", dev.Provider, "user_id", j.user, "device_id", j.device, "err", err)
		return p.finish(j, false, now)
	case errors.As(err, &retry) && attempts(j)+1 < p.cfg.Attempts:
		counter("retried")
		p.log.Warn("push provider failed; retrying later", "provider", dev.Provider, "user_id", j.user, "err", err)
		return p.retryLater(j, retry.RetryAfter, now)
	default:
		counter("failed")
		p.log.Error("push notification given up", "provider", dev.Provider, "user_id", j.user, "conversation_id", j.conv, "err", err)
		return p.finish(j, false, now)
	}
}

// maxRetryAfter caps how long a provider's Retry-After is honoured.
const maxRetryAfter = time.Hour

// backoff is the wait before attempt n+1 of a notification whose attempt
// n (0-based) failed: InitialBackoff doubled n times, at most MaxBackoff,
// or the provider's Retry-After when that is longer (at most an hour).
func (c Config) backoff(n int, retryAfter time.Duration) time.Duration {
	wait := c.MaxBackoff
	if n < 32 {
		if w := c.InitialBackoff << n; w > 0 && w < wait {
			wait = w
		}
	}
	return max(wait, min(retryAfter, maxRetryAfter))
}

func attempts(j job) int {
	if j.clear {
		return j.c.Attempts
	}
	return j.p.Attempts
}

// retryLater makes j due again after the backoff of its attempts, or
// after the provider's Retry-After when that is longer.
func (p *Push) retryLater(j job, after time.Duration, now time.Time) error {
	n := attempts(j)
	wait := p.cfg.backoff(n, after)
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.store.db.NewIndexedBatch()
	defer b.Close()
	if j.clear {
		var c clearing
		if found, err := getJSON(b, key(prefixClear, j.user, j.device, j.conv), &c); err != nil || !found {
			return err
		}
		old := c
		c.Attempts, c.Due = n+1, now.Add(wait)
		if err := putDue(b, prefixClear, j.user, j.device, j.conv, &old, c); err != nil {
			return err
		}
	} else {
		var pd pending
		if found, err := getJSON(b, key(prefixPending, j.user, j.device, j.conv), &pd); err != nil || !found {
			return err
		}
		old := pd
		pd.Attempts, pd.Due = n+1, now.Add(wait)
		if err := putDue(b, prefixPending, j.user, j.device, j.conv, &old, pd); err != nil {
			return err
		}
	}
	return b.Commit(pebble.Sync)
}

// finish removes what j sent (or dropped) from what is due; when it was
// sent, it records the notification, so that nothing up to its seq is
// sent again and the next notification of the conversation waits a
// Window. Messages that arrived while j was being sent stay due.
func (p *Push) finish(j job, delivered bool, now time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.store.db.NewIndexedBatch()
	defer b.Close()
	if j.clear {
		var c clearing
		found, err := getJSON(b, key(prefixClear, j.user, j.device, j.conv), &c)
		if err != nil {
			return err
		}
		if found && c.ReadSeq <= j.c.ReadSeq {
			if err := deleteDue(b, prefixClear, j.user, j.device, j.conv, c); err != nil {
				return err
			}
		}
		return b.Commit(pebble.Sync)
	}
	var pd pending
	found, err := getJSON(b, key(prefixPending, j.user, j.device, j.conv), &pd)
	if err != nil {
		return err
	}
	if found {
		if pd.LastSeq <= j.p.LastSeq {
			err = deleteDue(b, prefixPending, j.user, j.device, j.conv, pd)
		} else {
			// Newer messages came in meanwhile: they wait for the window.
			old := pd
			pd.Count = max(pd.Count-j.p.Count, 1)
			pd.Mentioned, pd.Attempts = false, 0
			if delivered {
				pd.Due = now.Add(p.cfg.Window)
			}
			err = putDue(b, prefixPending, j.user, j.device, j.conv, &old, pd)
		}
		if err != nil {
			return err
		}
	}
	if delivered {
		if err := setJSON(b, key(prefixSent, j.user, j.device, j.conv), sent{Seq: j.p.LastSeq, At: now}); err != nil {
			return err
		}
	}
	return b.Commit(pebble.Sync)
}

// Pending returns how many notifications (message and clear) are due or
// waiting for their window.
func (p *Push) Pending() (int, error) {
	n := 0
	count := func(_, _ []byte) (bool, error) { n++; return true, nil }
	if err := scan(p.store.db, prefixPending, count); err != nil {
		return 0, err
	}
	err := scan(p.store.db, prefixClear, count)
	return n, err
}
