package consumers_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/schemas"
)

func TestLagIsWhatTheGroupHasNotCommitted(t *testing.T) {
	t.Parallel()
	k := startBroker(t)
	var msgs []kafka.Message
	for i := range 30 {
		msgs = append(msgs, record(fmt.Sprint("k", i%7), i))
	}
	write(t, k, msgs...)
	src := consumers.LagSource{Group: k.Names.Group(groupID), Topic: k.Names.Topic(topic)}
	ctx := context.Background()

	pos, err := consumers.Positions(ctx, k.Client(), src)
	if err != nil {
		t.Fatal(err)
	}
	lag := map[int]int64{}
	var total int64
	for p, at := range pos {
		if at.Committed != -1 || at.Lost() != 0 {
			t.Errorf("partition %d: %+v before the group ran, want nothing committed or lost", p, at)
		}
		n := at.Lag()
		lag[p] = n
		if want := ends(t, k, topic)[p]; n != want {
			t.Errorf("partition %d: lag %d before the group ran, want the whole partition (%d)", p, n, want)
		}
		total += n
	}
	if total != 30 || len(lag) != partitions {
		t.Fatalf("lag %v, want 30 records over %d partitions", lag, partitions)
	}

	// The group reads a second topic too, with nothing in it, measured
	// after the first: its partitions share numbers with the first's,
	// and must not hide their lag.
	quiet := consumers.LagSource{Group: src.Group, Topic: k.Names.Topic(schemas.TopicAudit)}
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lag"}, []string{"group", "topic", "partition"})
	lost := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lost"}, []string{"group", "topic", "partition"})
	sum := func(src consumers.LagSource) float64 {
		n := 0.0
		for part := range partitions {
			n += value(gauge.WithLabelValues(src.Group, src.Topic, fmt.Sprint(part)))
		}
		return n
	}
	mctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		consumers.MonitorLag(mctx, k.Client(), []consumers.LagSource{src, quiet}, gauge, lost, 50*time.Millisecond, slog.New(slog.DiscardHandler))
	}()
	defer func() { stop(); <-done }()
	waitFor(t, 10*time.Second, "the gauge to show the lag of both topics", func() bool {
		return sum(src) == 30 && testutil.CollectAndCount(gauge) == 2*partitions
	})
	if n := sum(quiet); n != 0 {
		t.Errorf("the empty topic's lag is %v, want 0", n)
	}

	p := &projection{}
	runGroup(t, k, p)
	waitFor(t, 20*time.Second, "the group to commit everything and the gauge to drop to 0", func() bool {
		return sum(src) == 0
	})
}

func value(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		return -1
	}
	return m.GetGauge().GetValue()
}
