package deploy

import (
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// TestGatewaysTrustOnlyTheLoadBalancer: every gateway believes the
// X-Forwarded-For of the load balancer and of nothing else, the balancer
// has that fixed address on the network the gateways share with it, and
// HAProxy adds the client's address to the header (a line of its own,
// last, which the gateways read backwards from). Without this every
// client would seem to come from the balancer, and the per-address
// limits would count them all as one.
func TestGatewaysTrustOnlyTheLoadBalancer(t *testing.T) {
	conf := readConfig(t, filepath.Join(repoRoot(t), "deploy", "haproxy.cfg"))
	if !regexp.MustCompile(`(?m)^\s*option\s+forwardfor\b`).MatchString(conf) {
		t.Error("haproxy.cfg does not add the client's address to X-Forwarded-For (option forwardfor)")
	}
	for _, st := range stacks() {
		t.Run(st.name, func(t *testing.T) {
			p := loadStack(t, st)
			lb := service(t, p, "lb")
			net, ok := lb.Networks["parley"]
			if !ok || net == nil || net.Ipv4Address == "" {
				t.Fatalf("lb has no fixed address on the parley network: %+v", lb.Networks)
			}
			addr, err := netip.ParseAddr(net.Ipv4Address)
			if err != nil {
				t.Fatal(err)
			}
			inSubnet := false
			for _, c := range p.Networks["parley"].Ipam.Config {
				if pf, err := netip.ParsePrefix(c.Subnet); err == nil && pf.Contains(addr) {
					inSubnet = true
				}
			}
			if !inSubnet {
				t.Errorf("lb's address %s is in no subnet of the parley network: %+v", addr, p.Networks["parley"].Ipam)
			}
			for name, cmd := range st.roles {
				if !slices.Equal(cmd, []string{"gateway"}) {
					continue
				}
				if got, _ := env(service(t, p, name), "PARLEY_TRUSTED_PROXIES"); got != addr.String() {
					t.Errorf("%s: PARLEY_TRUSTED_PROXIES=%q, want the balancer's %s", name, got, addr)
				}
			}
		})
	}
}
