package systemtest_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/app"
)

// readerIdle is how long TestKafkaReadersStayConnected holds the system
// idle: more than three long-polls of the readers (3s each: kafkalog's
// MaxWait of 4s less kafka-go's 1s allowance for the round trip).
const readerIdle = 10 * time.Second

// TestKafkaReadersStayConnected: with sockets connected and nobody
// sending, then under a short load, no Kafka reader of any role fails a
// fetch, and so none drops its connection to dial again:
// parley_kafka_reader_errors_total stays at zero in every series. The
// idle part lets several empty long-polls come back — time passing is
// what is under test there.
func TestKafkaReadersStayConnected(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (waits out several idle long-polls of every reader, time passing is what it tests, about 25 s); make test runs it")
	}
	// Under targeted routing the router's readers too; under broadcast
	// (what `parley run` on the embedded broker uses) the node's feed
	// reads the log itself.
	for _, routing := range []string{app.RoutingTargeted, app.RoutingBroadcast} {
		t.Run(routing, func(t *testing.T) { readersStayConnected(t, routing) })
	}
}

func readersStayConnected(t *testing.T, routing string) {
	sys := startSystem(t, t.TempDir(), func(c *app.Config) { c.Routing = routing })
	defer stopSystem(t, sys)
	addr := sys.HTTPAddr()

	const pairs, perUser = 4, 30
	type end struct {
		user, conv string
		ws         *wsClient
	}
	var ends []end
	for p := range pairs {
		a, b := fmt.Sprint("ra", p), fmt.Sprint("rb", p)
		conv := api{t, addr, token(t, a, time.Hour)}.createDirect(b)
		for _, u := range []string{a, b} {
			ends = append(ends, end{u, conv, dial(t, addr, token(t, u, time.Hour), false)})
		}
	}

	// Every reader of every role is counted, at zero so far: the
	// delivery feed, the decider, the router, the projections' groups,
	// presence.
	series := readerErrors(t, addr)
	want := []string{`group=""`, `group="parley-decider"`, `group="parley-projection-history"`, `group="parley-projection-search"`}
	if routing == app.RoutingTargeted {
		want = append(want, `group="parley-router"`)
	}
	for _, want := range want {
		found := false
		for s := range series {
			found = found || strings.Contains(s, want)
		}
		if !found {
			t.Fatalf("no parley_kafka_reader_errors_total series with %s in %v", want, series)
		}
	}
	checkNoReaderErrors(t, addr, "after start")

	// Idle, sockets connected: several long-polls come back empty.
	idle := time.NewTimer(readerIdle)
	defer idle.Stop()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case <-idle.C:
			waiting = false
		case <-tick.C:
			checkNoReaderErrors(t, addr, "while idle")
		}
	}
	checkNoReaderErrors(t, addr, "after idling")

	// A short load: every socket sends back to back, every message is
	// acked and delivered to the other end.
	for _, e := range ends {
		for i := range perUser {
			e.ws.send(map[string]any{"type": "send", "id": fmt.Sprint(i), "conversation_id": e.conv,
				"command_id": fmt.Sprintf("%s-%d", e.user, i), "body": fmt.Sprintf("%s %d", e.user, i)})
		}
	}
	for _, e := range ends {
		defer func() {
			if t.Failed() {
				types := map[string]int{}
				for _, f := range e.ws.snapshot() {
					types[fmt.Sprint(f["type"], " ", f["event_type"])]++
				}
				t.Logf("%s received %v", e.user, types)
			}
		}()
		e.ws.waitFor(func(frames []map[string]any) bool {
			acks, events := 0, 0
			for _, f := range frames {
				switch f["type"] {
				case "ack":
					acks++
				case "event":
					if typ, _ := f["event_type"].(string); strings.HasPrefix(typ, "chat.message.sent.") {
						events++
					}
				case "error":
					t.Fatalf("%s: error frame %v", e.user, f)
				}
			}
			return acks == perUser && events == 2*perUser
		})
	}
	checkNoReaderErrors(t, addr, "after the load")
}

// readerErrors returns every parley_kafka_reader_errors_total series of
// addr's /metrics with its value.
func readerErrors(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	_, raw, err := getPublic(t, addr, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "parley_kafka_reader_errors_total{") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func checkNoReaderErrors(t *testing.T, addr, when string) {
	t.Helper()
	for s, v := range readerErrors(t, addr) {
		if v != 0 {
			t.Errorf("%s: %s = %v, want 0", when, s, v)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}
