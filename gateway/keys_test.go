package gateway

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/keydir"
	"github.com/parley-chat/parley/internal/mlswire/mlswiretest"
)

// newKeyEnv is a gateway with a real key directory on disk, served over
// real HTTP, every answer checked against openapi.yaml.
func newKeyEnv(t *testing.T) *limitEnv {
	t.Helper()
	dir, err := keydir.Open(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	return newLimitEnv(t, Config{Keys: dir, UserRequests: Rate{PerSecond: -1}})
}

// call does a request and checks the answer against the contract.
func (e *limitEnv) call(method, path, tok, body string) (int, []byte) {
	e.t.Helper()
	status, h, b := e.do(method, path, tok, body, nil)
	if err := e.check.Response(method, path, status, h.Get("Content-Type"), b); err != nil {
		e.t.Error(err)
	}
	return status, b
}

func kp(identity string) string {
	now := time.Now()
	return base64.StdEncoding.EncodeToString(mlswiretest.KeyPackage(identity, now.Add(-time.Minute), now.Add(24*time.Hour), 1))
}

func publishBody(pkgs []string, last string) string {
	b, _ := json.Marshal(map[string]any{"key_packages": pkgs, "last_resort": last})
	if last == "" {
		b, _ = json.Marshal(map[string]any{"key_packages": pkgs})
	}
	return string(b)
}

func TestPublishChecksTheKeyPackages(t *testing.T) {
	t.Parallel()
	e := newKeyEnv(t)
	alice := e.token("alice")
	now := time.Now()
	cases := []struct {
		name, device, body string
		status             int
		says               string
	}{
		{"another device's identity", "phone", publishBody([]string{kp("alice/laptop")}, ""), 400, "identity"},
		{"another user's identity", "phone", publishBody([]string{kp("bob/phone")}, ""), 400, "identity"},
		{"an expired package", "phone", publishBody([]string{base64.StdEncoding.EncodeToString(mlswiretest.KeyPackage("alice/phone", now.Add(-48*time.Hour), now.Add(-time.Hour), 1))}, ""), 400, "expired"},
		{"too long a lifetime", "phone", publishBody([]string{base64.StdEncoding.EncodeToString(mlswiretest.KeyPackage("alice/phone", now, now.Add(365*24*time.Hour), 1))}, ""), 400, "lifetime"},
		{"another cipher suite", "phone", publishBody([]string{base64.StdEncoding.EncodeToString(mlswiretest.KeyPackage("alice/phone", now, now.Add(time.Hour), 3))}, ""), 400, "cipher suite"},
		{"bytes that are no key package", "phone", publishBody([]string{base64.StdEncoding.EncodeToString([]byte("hello"))}, ""), 400, "malformed"},
		{"a bad last resort", "phone", publishBody([]string{kp("alice/phone")}, kp("alice/tablet")), 400, "identity"},
		{"nothing", "phone", `{"key_packages":[]}`, 400, "required"},
		{"a malformed device id", "ph%20one", publishBody([]string{kp("alice/ph one")}, ""), 400, "device id"},
	}
	for _, c := range cases {
		status, body := e.call("POST", "/v1/devices/"+c.device+"/key-packages", alice, c.body)
		if status != c.status || !strings.Contains(string(body), c.says) {
			t.Errorf("%s: %d %s, want %d saying %q", c.name, status, body, c.status, c.says)
		}
	}
	// Nothing refused was kept: the device is not even listed.
	status, body := e.call("GET", "/v1/users/alice/devices", alice, "")
	if status != 200 || !strings.Contains(string(body), `"devices":[]`) {
		t.Errorf("devices after refusals: %d %s", status, body)
	}
	status, body = e.call("POST", "/v1/devices/phone/key-packages", alice, publishBody([]string{kp("alice/phone"), kp("alice/phone")}, kp("alice/phone")))
	var st struct {
		Available      int  `json:"available"`
		LastResort     bool `json:"last_resort"`
		Low            bool `json:"low"`
		DevicesVersion int  `json:"devices_version"`
	}
	if err := json.Unmarshal(body, &st); status != 200 || err != nil || st.Available != 2 || !st.LastResort || !st.Low || st.DevicesVersion != 1 {
		t.Errorf("publish: %d %s", status, body)
	}
	if status, body := e.call("GET", "/v1/devices/phone/key-packages", alice, ""); status != 200 || !strings.Contains(string(body), `"available":2`) {
		t.Errorf("status: %d %s", status, body)
	}
	if status, _ := e.call("GET", "/v1/users/alice/devices", "", ""); status != 401 {
		t.Errorf("devices without a token: %d", status)
	}
}

type claimAnswer struct {
	UserID         string `json:"user_id"`
	DevicesVersion uint64 `json:"devices_version"`
	KeyPackages    []struct {
		DeviceID   string `json:"device_id"`
		KeyPackage []byte `json:"key_package"`
		LastResort bool   `json:"last_resort"`
	} `json:"key_packages"`
}

// TestConcurrentClaimsOverHTTPNeverShareAKeyPackage: many users claim
// bob's key packages at once over real HTTP while bob tops up; no
// one-time package is handed out twice, none is lost, and once they run
// out every claimer gets the last-resort package.
func TestConcurrentClaimsOverHTTPNeverShareAKeyPackage(t *testing.T) {
	t.Parallel()
	e := newKeyEnv(t)
	bob := e.token("bob")
	const perDevice, claimers, rounds = 30, 24, 3
	published := map[string]string{} // key package -> device
	rest := map[string][]string{}    // published while the claims run
	for _, dev := range []string{"phone", "laptop"} {
		var pkgs []string
		for range perDevice {
			p := kp("bob/" + dev)
			pkgs = append(pkgs, p)
			published[p] = dev
		}
		last := kp("bob/" + dev)
		published[last] = dev + " last resort"
		if status, body := e.call("POST", "/v1/devices/"+dev+"/key-packages", bob, publishBody(pkgs[:perDevice/2], last)); status != 200 {
			t.Fatalf("publish: %d %s", status, body)
		}
		rest[dev] = pkgs[perDevice/2:]
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[string]int{}
	)
	for _, dev := range []string{"phone", "laptop"} {
		wg.Go(func() {
			if status, body := e.call("POST", "/v1/devices/"+dev+"/key-packages", bob, publishBody(rest[dev], "")); status != 200 {
				t.Errorf("top-up: %d %s", status, body)
			}
		})
	}
	for i := range claimers {
		tok := e.token(fmt.Sprint("claimer", i))
		wg.Go(func() {
			for range rounds {
				status, body := e.call("GET", "/v1/users/bob/key-packages", tok, "")
				var a claimAnswer
				if err := json.Unmarshal(body, &a); status != 200 || err != nil || a.UserID != "bob" || a.DevicesVersion != 2 {
					t.Errorf("claim: %d %s", status, body)
					return
				}
				devices := map[string]bool{}
				mu.Lock()
				for _, c := range a.KeyPackages {
					p := base64.StdEncoding.EncodeToString(c.KeyPackage)
					seen[p]++
					want := c.DeviceID
					if c.LastResort {
						want += " last resort"
					}
					if published[p] != want {
						t.Errorf("claimed a package of %q as %q", published[p], want)
					}
					devices[c.DeviceID] = true
				}
				mu.Unlock()
				if len(devices) != 2 || len(a.KeyPackages) != 2 {
					t.Errorf("a claim got %d packages of devices %v, want one of each of 2", len(a.KeyPackages), devices)
				}
			}
		})
	}
	wg.Wait()
	oneTime := 0
	for p, n := range seen {
		if strings.HasSuffix(published[p], "last resort") {
			continue
		}
		oneTime++
		if n != 1 {
			t.Errorf("a one-time package of %s was handed out %d times", published[p], n)
		}
	}
	// 2 devices × 30 packages, 24×3 claims of each device: all 60 one-time
	// packages are handed out exactly once, the other 2×72−60 claims get
	// the last resort.
	if oneTime != 2*perDevice {
		t.Errorf("%d one-time packages handed out, want %d", oneTime, 2*perDevice)
	}
	status, body := e.call("GET", "/v1/devices/phone/key-packages", bob, "")
	if status != 200 || !strings.Contains(string(body), `"available":0`) || !strings.Contains(string(body), `"low":true`) {
		t.Errorf("status after the claims: %d %s", status, body)
	}
}

func TestRemovingADeviceDropsItFromClaims(t *testing.T) {
	t.Parallel()
	e := newKeyEnv(t)
	carol := e.token("carol")
	for _, dev := range []string{"phone", "laptop"} {
		if status, body := e.call("POST", "/v1/devices/"+dev+"/key-packages", carol, publishBody([]string{kp("carol/" + dev)}, "")); status != 200 {
			t.Fatalf("publish: %d %s", status, body)
		}
	}
	status, body := e.call("DELETE", "/v1/devices/laptop", carol, "")
	if status != 200 || !strings.Contains(string(body), `"version":3`) || strings.Contains(string(body), "laptop") {
		t.Errorf("remove: %d %s", status, body)
	}
	if status, body := e.call("DELETE", "/v1/devices/laptop", carol, ""); status != http.StatusNotFound {
		t.Errorf("second remove: %d %s", status, body)
	}
	status, body = e.call("GET", "/v1/users/carol/key-packages", e.token("dave"), "")
	var a claimAnswer
	if err := json.Unmarshal(body, &a); status != 200 || err != nil || a.DevicesVersion != 3 || len(a.KeyPackages) != 1 || a.KeyPackages[0].DeviceID != "phone" {
		t.Errorf("claim: %d %s", status, body)
	}
	// A user without devices: an empty claim, not an error.
	if status, body := e.call("GET", "/v1/users/nobody/key-packages", carol, ""); status != 200 || !strings.Contains(string(body), `"key_packages":[]`) {
		t.Errorf("claim of a user without devices: %d %s", status, body)
	}
}
