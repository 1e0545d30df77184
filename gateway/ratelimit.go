// Rate limits: token buckets by key (a user, a client address), with a
// bounded number of keys, and the client address a request comes from.

package gateway

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rate is a token bucket's shape: Burst requests at once, refilled at
// PerSecond. A negative PerSecond means no limit; zero means the
// default of the Config field it is in.
type Rate struct {
	PerSecond float64
	Burst     int
}

func (r Rate) orDefault(d Rate) Rate {
	if r.PerSecond == 0 {
		return d
	}
	if r.Burst < 1 {
		r.Burst = max(1, int(math.Ceil(r.PerSecond)))
	}
	return r
}

// unlimited reports whether r limits nothing.
func (r Rate) unlimited() bool { return r.PerSecond < 0 }

// defaultMaxBucketKeys is how many keys a bucketSet keeps at most.
const defaultMaxBucketKeys = 100_000

// bucketSet is a token bucket per key, e.g. per user or per client
// address. It is safe for concurrent use. Its memory follows the keys in
// use, not every key ever seen: a bucket that has refilled to its burst
// is the same as a new one, and such buckets are dropped whenever the
// set has doubled since the last sweep (so each sweep's cost is shared by
// the inserts before it). It is also bounded: at maxKeys, if the set is
// still more than three quarters full once the full buckets are gone,
// arbitrary buckets are dropped too — which resets them, erring on the
// side of letting requests through.
type bucketSet struct {
	r       Rate
	maxKeys int
	now     func() time.Time

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	// sweepAt is the size at which the next sweep runs.
	sweepAt int
}

// minSweep is the smallest size at which a set is swept.
const minSweep = 1024

func newBucketSet(r Rate, maxKeys int, now func() time.Time) *bucketSet {
	if now == nil {
		now = time.Now
	}
	if maxKeys < 4 {
		maxKeys = defaultMaxBucketKeys
	}
	return &bucketSet{r: r, maxKeys: maxKeys, now: now, buckets: make(map[string]*rate.Limiter), sweepAt: min(minSweep, maxKeys)}
}

// take takes a token from key's bucket. When there is none it takes
// nothing and returns how long until there is one (more than zero).
func (b *bucketSet) take(key string) (retryAfter time.Duration) {
	if b.r.unlimited() {
		return 0
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.bucket(key, now)
	res := l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d
	}
	return 0
}

// bucket returns key's bucket, making it (and room for it) if needed.
// b.mu is held.
func (b *bucketSet) bucket(key string, now time.Time) *rate.Limiter {
	if l, ok := b.buckets[key]; ok {
		return l
	}
	if len(b.buckets) >= b.sweepAt {
		b.sweep(now)
		b.sweepAt = min(max(minSweep, 2*len(b.buckets)), b.maxKeys)
	}
	l := rate.NewLimiter(rate.Limit(b.r.PerSecond), b.r.Burst)
	b.buckets[key] = l
	return l
}

// sweep drops the buckets that are full again, then, if the set is at
// its maximum, arbitrary ones until it is at most three quarters full.
// b.mu is held.
func (b *bucketSet) sweep(now time.Time) {
	atMax := len(b.buckets) >= b.maxKeys
	full := float64(b.r.Burst)
	for k, l := range b.buckets {
		if l.TokensAt(now) >= full {
			delete(b.buckets, k)
		}
	}
	for k := range b.buckets {
		if !atMax || len(b.buckets) <= b.maxKeys*3/4 {
			break
		}
		delete(b.buckets, k)
	}
}

// len is how many buckets the set holds.
func (b *bucketSet) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.buckets)
}

// clientIP is the address a request comes from: its peer's, or, when
// the peer is one of the trusted proxies, the last address of
// X-Forwarded-For that is not a trusted proxy (the one the nearest
// trusted proxy saw; those further left could be forged by the client).
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	peer := remoteIP(r.RemoteAddr)
	if !peer.IsValid() {
		return r.RemoteAddr
	}
	if !isTrusted(peer, trusted) {
		return peer.String()
	}
	hops := r.Header.Values("X-Forwarded-For")
	ip := peer
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return ip.String() // garbage: trust nothing further left
			}
			ip = a.Unmap()
			if !isTrusted(ip, trusted) {
				return ip.String()
			}
		}
	}
	return ip.String()
}

// limitedAddress returns the client address of r (clientIP) and whether
// the per-address limits apply to it.
func (s *Server) limitedAddress(r *http.Request) (string, bool) {
	ip := clientIP(r, s.cfg.TrustedProxies)
	a, err := netip.ParseAddr(ip)
	return ip, err != nil || !isTrusted(a, s.cfg.Exempt)
}

func remoteIP(addr string) netip.Addr {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// rateLimited is the answer to a request refused by a rate limit:
// nothing was done, and the same request may be sent again after
// retryAfter.
func rateLimited(what string, retryAfter time.Duration) *apiError {
	e := newError(codeRateLimited, "too many "+what+": nothing was done; retry after "+retryAfter.Round(time.Millisecond).String())
	e.RetryAfter = retryAfter
	return e
}

// userSockets counts each user's open sockets on this node, up to max
// (negative: no limit). It is safe for concurrent use; a user without
// sockets has no entry.
type userSockets struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

// acquire counts a new socket of user, unless user has max open.
func (u *userSockets) acquire(user string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.max >= 0 && u.n[user] >= u.max {
		return false
	}
	u.n[user]++
	return true
}

// release uncounts a socket acquire counted.
func (u *userSockets) release(user string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n[user]--; u.n[user] <= 0 {
		delete(u.n, user)
	}
}
