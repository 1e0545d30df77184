package deploy

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/telemetry"
)

// TestDashboardQueriesExistingMetrics keeps the Grafana dashboard honest:
// every parley_ metric a panel queries is one Parley exports.
func TestDashboardQueriesExistingMetrics(t *testing.T) {
	raw, err := os.ReadFile("grafana/dashboards/parley-overview.json")
	if err != nil {
		t.Fatal(err)
	}
	m := telemetry.New()
	// Vectors are only gathered once they have a series: give each one.
	m.ConsumedRecords.WithLabelValues("g")
	m.DeadLetters.WithLabelValues("g")
	m.ConsumerLag.WithLabelValues("g", "t", "0")
	m.ApplyRetries.WithLabelValues("g")
	m.Commands.WithLabelValues("t", "accepted")
	m.Rejections.WithLabelValues("gateway", "c")
	m.DeliveryRecordsRead.WithLabelValues("t")
	m.RouterRecordsRead.WithLabelValues("t")
	m.RouterRecordsWritten.WithLabelValues("delivery")
	m.PushNotifications.WithLabelValues("webpush", "sent")
	m.PushLatency.WithLabelValues("webpush")
	m.CountPush(func() int { return 0 }, func() int { return 0 })
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
	}
	used := regexp.MustCompile(`parley_[a-z_]+`).FindAllString(string(raw), -1)
	if len(used) == 0 {
		t.Fatal("the dashboard queries no parley_ metric")
	}
	for _, name := range used {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if !exported[base] && !exported[name] {
			t.Errorf("the dashboard queries %s, which Parley does not export", name)
		}
	}
}
