package systemtest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/app"
)

// TestAlertsInARealPrometheus runs Prometheus (Debian's) with
// deploy/alerts.yml, as the compose stack loads it, against two running
// nodes, scraping and evaluating every second. promtool's cases
// (deploy/alerts_test.go) check what the rules decide from given series;
// this checks them against what a running Parley serves: every rule
// evaluates without error on the real metrics and labels; a node that
// has carried messages and caught up has no alert; a node whose disk is
// below its reserve has ParleyDiskLow; a stopped node has ParleyRoleDown.
func TestAlertsInARealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (two nodes and Prometheus, about 15 s); make test runs it")
	}
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not installed: apt-get install prometheus (.ci/run does)")
	}
	rules, err := filepath.Abs("../../deploy/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	healthy := startSystem(t, t.TempDir())
	stopped := false
	defer func() {
		if !stopped {
			stopSystem(t, healthy)
		}
	}()
	// A reserve no disk has: this node refuses writes from the start.
	full := startSystem(t, t.TempDir(), func(c *app.Config) { c.DiskReserve = 1 << 62 })
	defer stopSystem(t, full)

	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, fmt.Appendf(nil, `global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: parley
    static_configs:
      - targets: [%q, %q]
        labels:
          role: run
`, rules, healthy.HTTPAddr(), full.HTTPAddr()), 0o600); err != nil {
		t.Fatal(err)
	}
	prom := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "--config.file="+config, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+prom, "--log.level=warn")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus:\n%s", logs.String())
		}
	}()
	q := promAPI{t, "http://" + prom}
	eventuallyT(t, "Prometheus scraping both nodes", func() bool {
		return q.value(`sum(up{job="parley"})`) == 2
	}, func() string { return logs.String() })

	// The healthy node carries messages, a read marker and deliveries.
	alice := api{t, healthy.HTTPAddr(), token(t, "alice", time.Hour)}
	bob := api{t, healthy.HTTPAddr(), token(t, "bob", time.Hour)}
	conv := alice.createDirect("bob")
	ws := dial(t, healthy.HTTPAddr(), bob.token, false)
	var last int
	for i := range 5 {
		last = alice.send(conv, fmt.Sprintf("alert-%d", i))
	}
	ws.waitFor(func(fs []map[string]any) bool { return slices.Contains(ws.events(conv), last) })
	if status, out := bob.do(http.MethodPost, "/v1/conversations/"+conv+"/read", map[string]any{"seq": last}); status != http.StatusOK {
		t.Fatalf("read marker: %d %v", status, out)
	}
	instance := func(sys *app.System) string { return fmt.Sprintf("instance=%q", sys.HTTPAddr()) }
	lag := `sum(parley_consumer_lag_records{` + instance(healthy) + `})`
	// Groups that took records, scraped twice since (a rate to compute).
	taking := `count(rate(parley_consumer_records_total{` + instance(healthy) + `}[5m]) and parley_consumer_records_total > 0)`
	delivered := `sum(parley_deliveries_total{` + instance(healthy) + `})`
	eventuallyT(t, "Prometheus seeing every group of the healthy node take the messages and catch up", func() bool {
		return q.value(lag) == 0 && q.value(taking) >= 4 && q.value(delivered) > 0
	}, func() string {
		return fmt.Sprintf("%s = %v, %s = %v, %s = %v", lag, q.value(lag), taking, q.value(taking), delivered, q.value(delivered))
	})
	// Every rule evaluated on those series: none fails on the labels a
	// running node serves (a vector match a rule did not expect is an
	// error only Prometheus sees, with the data).
	q.rulesHealthyAfter(time.Now(), alertsIn(t, rules))

	// Healthy but for the one alert the other node must have. Three
	// rules measure this machine rather than the rules, and are left out
	// here (promtool checks them): its disk, which other tests' fillers
	// fill and free, extrapolated an hour ahead from the seconds this
	// test has (ParleyDiskFillingUp); and the p99 of a handful of
	// messages, which a machine busy with the race detector can take
	// past a second (ParleyDeliveryLatencyHigh, ParleyCommandWaitHigh).
	machine := []string{"ParleyDiskFillingUp", "ParleyDeliveryLatencyHigh", "ParleyCommandWaitHigh"}
	want := []string{"ParleyDiskLow " + full.HTTPAddr()}
	var got []string
	eventuallyT(t, "the alerts of a healthy node and of one below its disk reserve", func() bool {
		got = q.alerts(machine...)
		return slices.Equal(got, want)
	}, func() string { return fmt.Sprintf("alerts %v, want %v", got, want) })

	stopSystem(t, healthy)
	stopped = true
	want = []string{"ParleyDiskLow " + full.HTTPAddr(), "ParleyRoleDown " + healthy.HTTPAddr()}
	eventuallyT(t, "ParleyRoleDown for the stopped node", func() bool {
		got = q.alerts(machine...)
		return slices.Equal(got, want)
	}, func() string { return fmt.Sprintf("alerts %v, want %v", got, want) })
}

// promAPI asks a Prometheus server's HTTP API.
type promAPI struct {
	t    *testing.T
	base string
}

// get decodes the data of path's answer into v; false if it failed.
func (p promAPI) get(path string, v any) bool {
	resp, err := http.Get(p.base + path)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var out struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil || out.Status != "success" {
		return false
	}
	return json.Unmarshal(out.Data, v) == nil
}

// value is the single value of an instant query, or -1.
func (p promAPI) value(query string) float64 {
	var data struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	if !p.get("/api/v1/query?query="+url.QueryEscape(query), &data) || len(data.Result) != 1 {
		return -1
	}
	var f float64
	if s, ok := data.Result[0].Value[1].(string); !ok || json.Unmarshal([]byte(s), &f) != nil {
		return -1
	}
	return f
}

// alerts is every pending or firing alert as "name instance", sorted,
// but those named in leaveOut.
func (p promAPI) alerts(leaveOut ...string) []string {
	var data struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	if !p.get("/api/v1/alerts", &data) {
		return nil
	}
	out := []string{}
	for _, a := range data.Alerts {
		if !slices.Contains(leaveOut, a.Labels["alertname"]) {
			out = append(out, strings.TrimSpace(a.Labels["alertname"]+" "+a.Labels["instance"]))
		}
	}
	slices.Sort(out)
	return out
}

// alertsIn counts the alerting rules of the rule file at path.
func alertsIn(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "- alert:") {
			n++
		}
	}
	if n == 0 {
		t.Fatalf("%s holds no alerting rule", path)
	}
	return n
}

// rulesHealthyAfter waits for Prometheus to evaluate its n alerting
// rules after since, then fails the test unless each was evaluated
// without error.
func (p promAPI) rulesHealthyAfter(since time.Time, n int) {
	p.t.Helper()
	type rule struct {
		Name           string    `json:"name"`
		Health         string    `json:"health"`
		LastError      string    `json:"lastError"`
		LastEvaluation time.Time `json:"lastEvaluation"`
	}
	var rules []rule
	eventuallyT(p.t, fmt.Sprintf("Prometheus evaluating its %d alerting rules", n), func() bool {
		var data struct {
			Groups []struct {
				Rules []rule `json:"rules"`
			} `json:"groups"`
		}
		if !p.get("/api/v1/rules?type=alert", &data) {
			return false
		}
		rules = nil
		for _, g := range data.Groups {
			rules = append(rules, g.Rules...)
		}
		return len(rules) == n && !slices.ContainsFunc(rules, func(r rule) bool { return !r.LastEvaluation.After(since) })
	}, func() string { return fmt.Sprintf("rules %+v", rules) })
	for _, r := range rules {
		if r.Health != "ok" {
			p.t.Errorf("rule %s: health %q: %s", r.Name, r.Health, r.LastError)
		}
	}
}
