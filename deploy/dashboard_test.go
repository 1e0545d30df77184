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
	checkMetricsExist(t, "the dashboard", string(raw))
}

// exportedMetrics is the name of every metric family a Parley process
// serves on /metrics, its process and Go runtime collectors' included.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	m := telemetry.New()
	// Vectors are only gathered once they have a series: give each one.
	m.ConsumedRecords.WithLabelValues("g")
	m.DeadLetters.WithLabelValues("g")
	m.ConsumerLag.WithLabelValues("g", "t", "0")
	m.ConsumerLostRecords.WithLabelValues("g", "t", "0")
	m.ApplyRetries.WithLabelValues("g")
	m.PartitionRebuilds.WithLabelValues("g")
	m.Commands.WithLabelValues("t", "accepted")
	m.Rejections.WithLabelValues("gateway", "c")
	m.DeliveryRecordsRead.WithLabelValues("t")
	m.RouterRecordsRead.WithLabelValues("t")
	m.RouterRecordsWritten.WithLabelValues("delivery")
	m.KafkaReaderErrors.WithLabelValues("g", "t")
	m.PushNotifications.WithLabelValues("webpush", "sent")
	m.PushLatency.WithLabelValues("webpush")
	m.HTTPRequests.WithLabelValues("/r", "GET", "200")
	m.HTTPDuration.WithLabelValues("/r", "GET")
	m.CountPush(func() int { return 0 }, func() int { return 0 })
	m.WatchDisk(func() uint64 { return 0 }, 0, func() bool { return false })
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
	}
	return exported
}

// metricName is a name of Parley's metrics, or of the process
// collector's, in a query.
var metricName = regexp.MustCompile(`\b(?:parley|process)_[a-z_]+`)

// checkMetricsExist fails t for every metric text names (what: the file)
// that Parley does not export, a histogram's series named by its family.
func checkMetricsExist(t *testing.T, what, text string) {
	t.Helper()
	exported := exportedMetrics(t)
	used := metricName.FindAllString(text, -1)
	if len(used) == 0 {
		t.Fatalf("%s names no parley_ metric", what)
	}
	for _, name := range used {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if !exported[base] && !exported[name] {
			t.Errorf("%s names %s, which Parley does not export", what, name)
		}
	}
}
