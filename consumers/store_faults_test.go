package consumers_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/consumers/grouptest"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/projections/history/pebblestore"
	"github.com/parley-chat/parley/schemas"
)

// faultyStore is a real Pebble store that refuses, on demand, every write
// (down: Apply and Ping fail) or the batches that hold one event.
type faultyStore struct {
	*pebblestore.Store

	mu      sync.Mutex
	down    bool
	refuse  map[uint64]bool // seqs whose batches fail
	applies int             // Apply calls
	failed  int             // failed Apply calls
}

var errDown = errors.New("store unreachable")

func (f *faultyStore) Apply(ctx context.Context, events []history.Event) error {
	f.mu.Lock()
	f.applies++
	err := error(nil)
	if f.down {
		err = errDown
	}
	for _, ev := range events {
		if err == nil && f.refuse[ev.Seq] {
			err = errors.New("store refuses seq " + strconv.FormatUint(ev.Seq, 10))
		}
	}
	if err != nil {
		f.failed++
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	return f.Store.Apply(ctx, events)
}

func (f *faultyStore) Ping(ctx context.Context) error {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return errDown
	}
	return f.Store.Ping(ctx)
}

func (f *faultyStore) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *faultyStore) failures() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

func openFaultyStore(t *testing.T) *faultyStore {
	t.Helper()
	s, err := pebblestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &faultyStore{Store: s, refuse: map[uint64]bool{}}
}

// eventRecord is the chat.events record of ev.
func eventRecord(ev history.Event) kafka.Message {
	return kafkalog.Encode(schemas.Attributes{ID: ev.ID, Type: ev.Type, Source: schemas.Source, Subject: ev.ConversationID,
		Time: ev.Time, Seq: ev.Seq, HasSeq: true, CommandOffset: -1}, ev.Data)
}

// conversationRecords are the records of a group conversation g_faults:
// its creation and messages 1 to n.
func conversationRecords(n uint64) []kafka.Message {
	at := historytest.MessageTime(0)
	out := []kafka.Message{eventRecord(historytest.Group("g_faults", at, historytest.Owner("alice")))}
	for _, ev := range historytest.Messages("g_faults", 1, n, "alice") {
		out = append(out, eventRecord(ev))
	}
	return out
}

// runHistory runs the history projection into s as the test group, with
// short retries, until the test ends.
func runHistory(t *testing.T, k kafkatest.Cluster, s *faultyStore, m *telemetry.Metrics) {
	t.Helper()
	grouptest.Run(t, consumers.GroupConfig{
		Kafka: k.Cluster, Names: k.Names, GroupID: k.Names.Group(groupID), Topic: k.Names.Topic(topic),
		ApplyAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, Metrics: m,
	}, history.Projection{W: s})
}

func counter(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// summary reads the conversation's summary from the real store.
func summary(t *testing.T, s *faultyStore) history.Conversation {
	t.Helper()
	c, err := s.Store.Conversation(context.Background(), "g_faults")
	if err != nil && !errors.Is(err, history.ErrNotFound) {
		t.Fatal(err)
	}
	return c
}

func TestRunGroupDeadLettersARecordTheHealthyStoreKeepsRefusingAndGoesOn(t *testing.T) {
	t.Parallel()
	k := startBroker(t)
	s := openFaultyStore(t)
	s.refuse[3] = true
	recs := conversationRecords(5)
	write(t, k, recs...)
	m := telemetry.New()
	runHistory(t, k, s, m)

	var dead []kafka.Message
	waitFor(t, 20*time.Second, "a dead letter", func() bool {
		dead = readAll(t, k, schemas.TopicDLQ)
		return len(dead) > 0
	})
	want := ends(t, k, topic)
	waitFor(t, 20*time.Second, "the commits to pass the refused record", func() bool {
		return slices.Equal(committed(t, k), want)
	})
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	d := dead[0]
	if header(d, schemas.HeaderSeq) != "3" || string(d.Value) != string(recs[3].Value) || string(d.Key) != "g_faults" {
		t.Errorf("dead letter is seq %q key %q, want the refused seq 3 with its key and value", header(d, schemas.HeaderSeq), d.Key)
	}
	for key, want := range map[string]string{
		schemas.HeaderDLQTopic: k.Names.Topic(topic), schemas.HeaderDLQGroup: k.Names.Group(groupID), schemas.HeaderDLQOffset: "3",
	} {
		if got := header(d, key); got != want {
			t.Errorf("dead letter header %s = %q, want %q", key, got, want)
		}
	}
	if p, err := strconv.Atoi(header(d, schemas.HeaderDLQPartition)); err != nil || p < 0 || p >= partitions {
		t.Errorf("dead letter partition header %q", header(d, schemas.HeaderDLQPartition))
	}
	if e := header(d, schemas.HeaderDLQError); !strings.Contains(e, "store refuses seq 3") || !strings.Contains(e, "while the store took writes") {
		t.Errorf("dead letter error %q does not say the healthy store refused seq 3", e)
	}
	if c := summary(t, s); c.LastSeq != 5 || c.Messages != 4 {
		t.Errorf("store has last seq %d and %d messages, want 5 and 4 (all but seq 3)", c.LastSeq, c.Messages)
	}
	if n := counter(t, m.DeadLetters.WithLabelValues(k.Names.Group(groupID))); n != 1 {
		t.Errorf("dead letters counted %v, want 1", n)
	}

	// The group goes on.
	write(t, k, eventRecord(historytest.Message("g_faults", 6, "alice", "after", historytest.MessageTime(6))))
	waitFor(t, 20*time.Second, "the next record applied", func() bool { return summary(t, s).LastSeq == 6 })
}

func TestRunGroupWaitsOutAStoreOutageWithoutDeadLetteringOrLosingAnything(t *testing.T) {
	t.Parallel()
	k := startBroker(t)
	s := openFaultyStore(t)
	s.setDown(true)
	write(t, k, conversationRecords(5)...)
	m := telemetry.New()
	runHistory(t, k, s, m)

	// Far more failures than a batch and its records get before a probe:
	// the group has isolated the batch and found the store down.
	waitFor(t, 20*time.Second, "Apply to fail many times", func() bool { return s.failures() >= 12 })
	if got := committed(t, k); !slices.Equal(got, []int64{-1, -1, -1}) {
		t.Errorf("committed %v while the store was down, want nothing", got)
	}
	if dead := readAll(t, k, schemas.TopicDLQ); len(dead) != 0 {
		t.Fatalf("%d records dead-lettered while the store was down", len(dead))
	}
	if c := summary(t, s); c.LastSeq != 0 || c.Kind != "" {
		t.Fatalf("the store holds %+v while down", c)
	}

	s.setDown(false)
	waitFor(t, 20*time.Second, "every record applied after the outage", func() bool {
		c := summary(t, s)
		return c.LastSeq == 5 && c.Messages == 5
	})
	want := ends(t, k, topic)
	waitFor(t, 20*time.Second, "the commits after the outage", func() bool {
		return slices.Equal(committed(t, k), want)
	})
	if c := summary(t, s); c.Kind != schemas.KindGroup || c.Messages != 5 {
		t.Errorf("after the outage the store has %+v, want the group and its 5 messages", c)
	}
	if dead := readAll(t, k, schemas.TopicDLQ); len(dead) != 0 {
		t.Errorf("%d records dead-lettered for an outage", len(dead))
	}
	if n := counter(t, m.DeadLetters.WithLabelValues(k.Names.Group(groupID))); n != 0 {
		t.Errorf("dead letters counted %v, want 0", n)
	}
	if n := counter(t, m.ApplyRetries.WithLabelValues(k.Names.Group(groupID))); n < 12 {
		t.Errorf("apply retries counted %v, want at least the 12 failures seen", n)
	}
}

// A projection that cannot probe its store never has a record
// dead-lettered for a failing Apply: the group retries for as long as it
// takes — longer than ShutdownTimeout, which bounds only the finishing of
// a batch once the group is stopping — commits nothing meanwhile, and
// stops promptly when asked.
func TestRunGroupWithoutAProbeRetriesForeverAndStopsWhenAsked(t *testing.T) {
	t.Parallel()
	k := startBroker(t)
	write(t, k, record("k", 0), record("k", 1))
	p := &projection{apply: func(int, []item) error { return errors.New("store refuses everything") }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	const shutdown = 200 * time.Millisecond
	go func() {
		done <- consumers.RunGroup[item](ctx, consumers.GroupConfig{
			Kafka: k.Cluster, Names: k.Names, GroupID: k.Names.Group(groupID), Topic: k.Names.Topic(topic),
			ApplyAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, ShutdownTimeout: shutdown,
		}, p)
	}()
	var first time.Time
	waitFor(t, 20*time.Second, "Apply to be called", func() bool {
		if len(p.batches()) > 0 {
			first = time.Now()
			return true
		}
		return false
	})
	waitFor(t, 20*time.Second, "the retries to outlast ShutdownTimeout", func() bool {
		return time.Since(first) > 3*shutdown && len(p.batches()) >= 10
	})
	select {
	case err := <-done:
		t.Fatalf("RunGroup returned (%v) while its store was failing", err)
	default:
	}
	if got := committed(t, k); !slices.Equal(got, []int64{-1, -1, -1}) {
		t.Errorf("committed %v with nothing applied", got)
	}
	if dead := readAll(t, k, schemas.TopicDLQ); len(dead) != 0 {
		t.Errorf("%d records dead-lettered by a projection that cannot probe its store", len(dead))
	}
	singles := 0
	for _, b := range p.batches() {
		if len(b) == 1 {
			singles++
		}
	}
	if singles == 0 {
		t.Error("the failing batch was never applied one record at a time")
	}
	stopped := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunGroup: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("RunGroup did not stop within 20s while retrying")
	}
	if took := time.Since(stopped); took > 5*time.Second {
		t.Errorf("RunGroup took %v to stop while retrying", took)
	}
	if got := committed(t, k); !slices.Equal(got, []int64{-1, -1, -1}) {
		t.Errorf("committed %v after stopping with nothing applied", got)
	}
}
