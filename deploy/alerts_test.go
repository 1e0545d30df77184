package deploy

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// alertRules is what the tests read of deploy/alerts.yml.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// alertTests is what the tests read of deploy/alerts-test.yml.
type alertTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name  string `yaml:"name"`
		Cases []struct {
			Alert     string `yaml:"alertname"`
			ExpAlerts []struct {
				Labels map[string]string `yaml:"exp_labels"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// promtool is Prometheus's own checker (Debian's prometheus package).
func promtool(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: apt-get install prometheus (.ci/run does)")
	}
	return bin
}

// TestAlertRulesPassPromtool: Prometheus's own tool parses every rule
// and its PromQL, and evaluates the rules against the series of
// alerts-test.yml: each alert fires when it should, with its labels and
// texts, and stays quiet when it should.
func TestAlertRulesPassPromtool(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts-test.yml"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestEveryAlertIsTestedAndDocumented: every alert has a case of
// alerts-test.yml in which it fires, a severity, texts, only metrics
// Parley exports, and its entry in deploy/README.md's "Alerts".
func TestEveryAlertIsTestedAndDocumented(t *testing.T) {
	var rules alertRules
	readYAML(t, "alerts.yml", &rules)
	var tests alertTests
	readYAML(t, "alerts-test.yml", &tests)
	if !slices.Equal(tests.RuleFiles, []string{"alerts.yml"}) {
		t.Errorf("alerts-test.yml tests rule_files %v, want [alerts.yml]", tests.RuleFiles)
	}
	fires := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, c := range tc.Cases {
			if len(c.ExpAlerts) > 0 {
				fires[c.Alert] = true
			}
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, alertsSection, found := strings.Cut(string(readme), "\n## Alerts\n")
	if !found {
		t.Fatal(`deploy/README.md has no "## Alerts" section`)
	}
	alertsSection, _, _ = strings.Cut(alertsSection, "\n## ")
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(Parley[A-Za-z]+)` \\|").FindAllStringSubmatch(alertsSection, -1) {
		documented[m[1]] = true
	}

	var names, exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			if !fires[r.Alert] {
				t.Errorf("%s: no case of alerts-test.yml makes it fire", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: want a summary and a description", r.Alert)
			}
			exprs = append(exprs, r.Expr)
			if !documented[r.Alert] {
				t.Errorf("%s has no row in deploy/README.md, Alerts", r.Alert)
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("alerts.yml has no alert")
	}
	checkMetricsExist(t, "alerts.yml", strings.Join(exprs, "\n"))
	for name := range documented {
		if !slices.Contains(names, name) {
			t.Errorf("deploy/README.md documents %s, which alerts.yml does not have", name)
		}
	}
}
