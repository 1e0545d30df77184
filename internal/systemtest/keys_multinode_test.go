package systemtest_test

import (
	"encoding/base64"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/mlswire/mlswiretest"
	"github.com/parley-chat/parley/projections/history/scyllastore/cqlfake"
)

// TestKeyDirectorySharedByTwoGateways: two gateway nodes over one
// ScyllaDB (the CQL stand-in) serve one key directory. Alice's devices
// publish through different nodes, Bob and Carol claim through both at
// once: each claim sees both devices at the same version, no one-time
// KeyPackage is handed out twice, and when a device has none left its
// last-resort one is handed out.
func TestKeyDirectorySharedByTwoGateways(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (two gateway nodes, a few seconds); make test runs it")
	}
	k := kafkatest.Start(t, kafkatest.Prefixed())
	fake := cqlfake.Start(t)
	node1 := startNode(t, k, fake.Addr(), "node1", app.All)
	defer stopSystem(t, node1)
	node2 := startNode(t, k, fake.Addr(), "node2", app.Roles{Gateway: true})
	defer stopSystem(t, node2)
	for _, n := range []*app.System{node1, node2} {
		if !within(time.Minute, func() bool {
			status, _, err := getPublic(t, n.HTTPAddr(), "/readyz")
			return err == nil && status == http.StatusOK
		}) {
			t.Fatalf("node at %s not ready", n.HTTPAddr())
		}
	}
	auth, err := gateway.NewAuthenticator(gateway.AuthConfig{Secret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	client := func(node *app.System, user string) api {
		tok, err := auth.Issue(user, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return api{t, node.HTTPAddr(), tok}
	}
	now := time.Now()
	kp := func(device string) string {
		return base64.StdEncoding.EncodeToString(mlswiretest.KeyPackage("alice/"+device, now.Add(-time.Minute), now.Add(time.Hour), 1))
	}
	// The phone publishes through node 1: three one-time packages and a
	// last resort; the laptop through node 2: two, no last resort.
	one := map[string]string{} // one-time package → device
	var phone, laptop []string
	for range 3 {
		p := kp("phone")
		phone, one[p] = append(phone, p), "phone"
	}
	for range 2 {
		p := kp("laptop")
		laptop, one[p] = append(laptop, p), "laptop"
	}
	last := kp("phone")
	if code, body := client(node1, "alice").do("POST", "/v1/devices/phone/key-packages", map[string]any{"key_packages": phone, "last_resort": last}); code != http.StatusOK {
		t.Fatalf("publish phone through node 1: %d %v", code, body)
	}
	if code, body := client(node2, "alice").do("POST", "/v1/devices/laptop/key-packages", map[string]any{"key_packages": laptop}); code != http.StatusOK {
		t.Fatalf("publish laptop through node 2: %d %v", code, body)
	}
	for _, n := range []*app.System{node1, node2} {
		code, body := client(n, "bob").do("GET", "/v1/users/alice/devices", nil)
		if devs, _ := body["devices"].([]any); code != http.StatusOK || body["version"] != 2.0 || len(devs) != 2 {
			t.Errorf("devices through %s: %d %v", n.HTTPAddr(), code, body)
		}
	}

	// Six claims at once, three through each node.
	var (
		mu      sync.Mutex
		handed  = map[string]int{}
		lasts   int
		wg      sync.WaitGroup
		clients []api
	)
	for i := range 6 {
		clients = append(clients, client([]*app.System{node1, node2}[i%2], []string{"bob", "carol"}[i%2]))
	}
	for _, c := range clients {
		wg.Go(func() {
			code, body := c.do("GET", "/v1/users/alice/key-packages", nil)
			if code != http.StatusOK || body["devices_version"] != 2.0 {
				t.Errorf("claim through %s: %d %v", c.base, code, body)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			kps, _ := body["key_packages"].([]any)
			for _, x := range kps {
				m, _ := x.(map[string]any)
				data, _ := m["key_package"].(string)
				if m["last_resort"] == true {
					if data != last || m["device_id"] != "phone" {
						t.Errorf("a last resort that is not the phone's: %v", m["device_id"])
					}
					lasts++
					continue
				}
				if dev, ok := one[data]; !ok || dev != m["device_id"] {
					t.Errorf("claimed a package of %v that %v did not publish", m["device_id"], dev)
				}
				handed[data]++
			}
		})
	}
	wg.Wait()
	for p, n := range handed {
		if n != 1 {
			t.Errorf("the %s package %.12s… handed out %d times", one[p], p, n)
		}
	}
	if len(handed) != len(one) || lasts != 3 {
		t.Errorf("handed out %d of %d one-time packages and the last resort %d times; want all, and the last resort for the phone's 3 claims beyond its packages", len(handed), len(one), lasts)
	}
	code, body := client(node2, "alice").do("GET", "/v1/devices/phone/key-packages", nil)
	if code != http.StatusOK || body["available"] != 0.0 || body["last_resort"] != true || body["low"] != true {
		t.Errorf("the phone's status through node 2: %d %v", code, body)
	}
}
