// Where the load goes: resolving the target (loopback only unless
// allowed) and the source addresses.

package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrRemoteTarget is returned for a target that does not resolve to
// loopback addresses only and that AllowRemote does not name.
var ErrRemoteTarget = errors.New("target is not a loopback address")

// target is a checked gateway address. Every connection of a run dials
// addr, the address that was checked, whatever the host name resolves
// to later.
type target struct {
	base     *url.URL // http or https
	wsURL    string
	addr     netip.AddrPort
	loopback bool
}

// resolveTarget parses raw, resolves its host and refuses it unless every
// address is loopback or allowRemote names the host.
func resolveTarget(ctx context.Context, raw, allowRemote, wsPath string, sources []netip.Addr) (target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, fmt.Errorf("parsing target %q: %w", raw, err)
	}
	var wsScheme, defPort string
	switch u.Scheme {
	case "http":
		wsScheme, defPort = "ws", "80"
	case "https":
		wsScheme, defPort = "wss", "443"
	default:
		return target{}, fmt.Errorf("target %q: scheme must be http or https", raw)
	}
	host := u.Hostname()
	if host == "" {
		return target{}, fmt.Errorf("target %q has no host", raw)
	}
	port := u.Port()
	if port == "" {
		port = defPort
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return target{}, fmt.Errorf("target %q: bad port: %w", raw, err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
	if err != nil {
		return target{}, fmt.Errorf("resolving %q: %w", host, err)
	}
	loopback := len(ips) > 0
	for _, ip := range ips {
		if !ip.Unmap().IsLoopback() {
			loopback = false
		}
	}
	remoteOK := allowRemote != "" && strings.EqualFold(allowRemote, host)
	if !loopback && !remoteOK {
		return target{}, fmt.Errorf("%w: %s resolves to %v; name it with -allow-remote %s to load it anyway", ErrRemoteTarget, host, ips, host)
	}
	if loopback {
		for _, s := range sources {
			if !s.IsLoopback() {
				return target{}, fmt.Errorf("source address %s is not loopback but the target is", s)
			}
		}
	}
	ip, err := pickAddr(ips, sources)
	if err != nil {
		return target{}, err
	}
	base := *u
	base.Path = strings.TrimSuffix(base.Path, "/")
	base.RawQuery, base.Fragment = "", ""
	ws := base
	ws.Scheme = wsScheme
	return target{
		base:     &base,
		wsURL:    ws.String() + wsPath,
		addr:     netip.AddrPortFrom(ip, uint16(pn)),
		loopback: loopback,
	}, nil
}

// pickAddr chooses the address to dial: one of the family of the source
// addresses, preferring IPv4.
func pickAddr(ips []netip.Addr, sources []netip.Addr) (netip.Addr, error) {
	want4 := true
	if len(sources) > 0 {
		want4 = sources[0].Unmap().Is4()
	}
	for _, ip := range ips {
		if ip.Unmap().Is4() == want4 {
			return ip.Unmap(), nil
		}
	}
	if len(sources) == 0 && len(ips) > 0 {
		return ips[0].Unmap(), nil
	}
	return netip.Addr{}, fmt.Errorf("the target has no address of the source addresses' family (%v)", ips)
}

// url returns the absolute URL of path under the target.
func (t target) url(path string) string { return t.base.String() + path }

// transport returns an HTTP transport that dials only t.addr, from
// source when it is valid.
func (t target) transport(source netip.Addr) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if source.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: source.AsSlice()}
	}
	dst := t.addr.String()
	return &http.Transport{
		// The host in the URL is kept for Host and TLS; the dial goes to
		// the checked address, so a name that re-resolves elsewhere
		// mid-run is never followed.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, dst)
		},
		ForceAttemptHTTP2:   false,
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
}

// SourceAddrRange returns n loopback addresses from 127.0.0.2 on, for
// Config.SourceAddrs.
func SourceAddrRange(n int) ([]netip.Addr, error) {
	if n < 0 || n > 1<<24-3 {
		return nil, fmt.Errorf("source address count must be from 0 to %d, got %d", 1<<24-3, n)
	}
	out := make([]netip.Addr, 0, n)
	a := netip.AddrFrom4([4]byte{127, 0, 0, 2})
	for range n {
		out = append(out, a)
		a = a.Next()
	}
	return out, nil
}
