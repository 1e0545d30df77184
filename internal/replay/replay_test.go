package replay_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/replay"
	"github.com/parley-chat/parley/schemas"
)

// base is the ce_time (and broker timestamp) of the first record written;
// record i is i seconds later.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// logged is what a test wrote: the valid records by id, in write order.
type logged struct {
	cluster *kafkalog.Cluster
	topic   string
	ids     []string
	byID    map[string]written
}

type written struct {
	typ, subject string
	time         time.Time
	data         []byte
}

// fixtures returns the fixture of every published record type
// (schemas/testdata), keyed by type.
func fixtures(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, typ := range schemas.Types() {
		b, err := os.ReadFile(filepath.Join("..", "..", "schemas", "testdata", typ+".json"))
		if err != nil {
			t.Fatal(err)
		}
		out[typ] = b
	}
	return out
}

// writeLog writes, to chat.events of a cluster of the test's own, the
// fixture of every published type `rounds` times over three
// conversations, then three records no replay may pass on: one without
// CloudEvents headers, one of an unknown type, one whose value breaks its
// schema.
func writeLog(t *testing.T, rounds int) logged {
	t.Helper()
	c := kafkatest.Start(t, kafkatest.Topics(kafkalog.Topology{Partitions: 3}))
	topic := c.Names.Topic(schemas.TopicEvents)
	fx := fixtures(t)
	l := logged{cluster: c.Cluster, topic: topic, byID: map[string]written{}}
	var msgs []kafka.Message
	i := 0
	for range rounds {
		for _, typ := range schemas.Types() {
			at := base.Add(time.Duration(i) * time.Second)
			a := kafkalog.NewAttributes(typ, fmt.Sprintf("conv-%d", i%3), at)
			a.Seq, a.HasSeq = uint64(i+1), true
			m := kafkalog.Encode(a, fx[typ])
			m.Time = at
			msgs = append(msgs, m)
			l.ids = append(l.ids, a.ID)
			l.byID[a.ID] = written{typ: typ, subject: a.Subject, time: at, data: fx[typ]}
			i++
		}
	}
	at := base.Add(time.Duration(i) * time.Second)
	noHeaders := kafka.Message{Key: []byte("conv-0"), Value: []byte(`{}`), Time: at}
	unknown := kafkalog.Encode(kafkalog.NewAttributes("chat.message.sent.v99", "conv-1", at), []byte(`{}`))
	broken := kafkalog.Encode(kafkalog.NewAttributes(schemas.TypeMessageSent, "conv-2", at), []byte(`{"seq":"one"}`))
	msgs = append(msgs, noHeaders, unknown, broken)
	w := kafkalog.NewWriter(c.Cluster, topic)
	defer w.Close()
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	return l
}

// lines decodes NDJSON output.
func lines(t *testing.T, b []byte) []replay.CloudEvent {
	t.Helper()
	var out []replay.CloudEvent
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ce replay.CloudEvent
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.DisallowUnknownFields()
		if err := d.Decode(&ce); err != nil {
			t.Fatalf("line %s: %v", sc.Bytes(), err)
		}
		out = append(out, ce)
	}
	return out
}

func compact(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return buf.String()
}

// TestEveryPublishedVersionReplays is the schema-evolution test at the
// analytics edge: a fixture of every published record type, each version
// of each event among them, comes out of a replay decoded, validated and
// unchanged, and the records that are not valid are counted and left out.
func TestEveryPublishedVersionReplays(t *testing.T) {
	t.Parallel()
	l := writeLog(t, 1)
	var out bytes.Buffer
	sink := replay.NewNDJSON(&out)
	var final [2]int64
	st, err := replay.Run(context.Background(), replay.Config{
		Kafka: l.cluster, Topic: l.topic, FromOffset: -1,
		Progress: func(done, total int64) { final = [2]int64{done, total} },
	}, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	n := int64(len(l.ids))
	if st.Read != n+3 || st.Written != n || st.Invalid != 3 {
		t.Errorf("stats %+v; want %d read, %d written, 3 invalid", st, n+3, n)
	}
	if final != [2]int64{n + 3, n + 3} {
		t.Errorf("last progress %v; want %d of %d", final, n+3, n+3)
	}
	got := lines(t, out.Bytes())
	var types []string
	for _, ce := range got {
		w, ok := l.byID[ce.ID]
		if !ok {
			t.Errorf("line of unknown id %q (type %s)", ce.ID, ce.Type)
			continue
		}
		types = append(types, ce.Type)
		if ce.SpecVersion != "1.0" || ce.Source != schemas.Source || ce.DataContentType != "application/json" ||
			ce.Type != w.typ || ce.Subject != w.subject || ce.KafkaKey != w.subject || !ce.Time.Equal(w.time) || ce.Seq == nil || ce.KafkaTopic != l.topic {
			t.Errorf("line %+v does not carry the record's attributes %+v", ce, w)
		}
		if compact(t, ce.Data) != compact(t, w.data) {
			t.Errorf("%s: data %s; want the record's value %s", ce.Type, ce.Data, w.data)
		}
	}
	sort.Strings(types)
	if want := schemas.Types(); !slices.Equal(types, want) {
		t.Errorf("replayed types %v; want every published one %v", types, want)
	}
}

func TestParquetMatchesNDJSON(t *testing.T) {
	t.Parallel()
	l := writeLog(t, 3)
	ctx := context.Background()
	cfg := replay.Config{Kafka: l.cluster, Topic: l.topic, FromOffset: -1, BatchSize: 7}
	var nd, pq bytes.Buffer
	ns, ps := replay.NewNDJSON(&nd), replay.NewParquet(&pq)
	if _, err := replay.Run(ctx, cfg, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := replay.Run(ctx, cfg, ps); err != nil {
		t.Fatal(err)
	}
	if err := errorsOf(ns.Close(), ps.Close()); err != nil {
		t.Fatal(err)
	}
	r := parquet.NewGenericReader[replay.Row](bytes.NewReader(pq.Bytes()))
	defer r.Close()
	rows := make([]replay.Row, r.NumRows())
	if n, err := r.Read(rows); n != len(rows) || (err != nil && n != len(rows)) {
		t.Fatalf("read %d of %d rows: %v", n, len(rows), err)
	}
	events := lines(t, nd.Bytes())
	if len(rows) != len(l.ids) || len(events) != len(l.ids) {
		t.Fatalf("%d rows and %d lines; want %d of each", len(rows), len(events), len(l.ids))
	}
	pos := func(p int, o int64) string { return fmt.Sprintf("%d/%d", p, o) }
	byPos := map[string]replay.CloudEvent{}
	for _, ce := range events {
		byPos[pos(ce.KafkaPartition, ce.KafkaOffset)] = ce
	}
	for _, row := range rows {
		ce, ok := byPos[pos(int(row.Partition), row.Offset)]
		if !ok {
			t.Errorf("row %+v has no line", row)
			continue
		}
		if row.ID != ce.ID || row.Type != ce.Type || row.Source != ce.Source || row.Subject != ce.Subject ||
			row.Key != ce.KafkaKey || row.Topic != ce.KafkaTopic || !row.Time.Equal(ce.Time) ||
			row.Seq == nil || ce.Seq == nil || uint64(*row.Seq) != *ce.Seq || compact(t, []byte(row.Data)) != compact(t, ce.Data) {
			t.Errorf("row %+v differs from line %+v", row, ce)
		}
	}
}

func errorsOf(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// collect is a Sink that keeps the ids it is given.
type collect struct {
	mu  sync.Mutex
	ids []string
}

func (c *collect) Write(events []replay.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range events {
		c.ids = append(c.ids, e.Attrs.ID)
	}
	return nil
}

func TestFilters(t *testing.T) {
	t.Parallel()
	l := writeLog(t, 2)
	n := len(l.ids)
	mid := base.Add(time.Duration(n/2) * time.Second)
	want := func(keep func(written) bool) []string {
		var ids []string
		for _, id := range l.ids {
			if keep(l.byID[id]) {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		return ids
	}
	for _, tc := range []struct {
		name string
		cfg  replay.Config
		keep func(written) bool
	}{
		{"one conversation", replay.Config{FromOffset: -1, Filter: replay.Filter{Conversations: []string{"conv-1"}}},
			func(w written) bool { return w.subject == "conv-1" }},
		{"two event types", replay.Config{FromOffset: -1, Filter: replay.Filter{Types: []string{schemas.TypeMessageSentV3, schemas.TypeMessageEdited}}},
			func(w written) bool { return w.typ == schemas.TypeMessageSentV3 || w.typ == schemas.TypeMessageEdited }},
		{"a time range", replay.Config{FromOffset: -1, Filter: replay.Filter{Since: base.Add(5 * time.Second), Until: mid}},
			func(w written) bool { return !w.time.Before(base.Add(5*time.Second)) && w.time.Before(mid) }},
		{"from a time", replay.Config{FromOffset: -1, FromTime: mid},
			func(w written) bool { return !w.time.Before(mid) }},
		{"a conversation from a time", replay.Config{FromOffset: -1, FromTime: mid, Filter: replay.Filter{Conversations: []string{"conv-2"}}},
			func(w written) bool { return !w.time.Before(mid) && w.subject == "conv-2" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Kafka, cfg.Topic = l.cluster, l.topic
			if !cfg.FromTime.IsZero() {
				cfg.FromOffset = -1
			}
			var c collect
			if _, err := replay.Run(context.Background(), cfg, &c); err != nil {
				t.Fatal(err)
			}
			sort.Strings(c.ids)
			if w := want(tc.keep); !slices.Equal(c.ids, w) || len(w) == 0 {
				t.Errorf("replayed %d events; want %d: got %v, want %v", len(c.ids), len(w), c.ids, w)
			}
		})
	}
}

// TestFromOffset starts every partition at an offset: what is before it
// in each partition is not replayed, what is at or after it is.
func TestFromOffset(t *testing.T) {
	t.Parallel()
	l := writeLog(t, 1)
	var all, from collect
	ctx := context.Background()
	if _, err := replay.Run(ctx, replay.Config{Kafka: l.cluster, Topic: l.topic, FromOffset: -1, Concurrency: 1}, &all); err != nil {
		t.Fatal(err)
	}
	st, err := replay.Run(ctx, replay.Config{Kafka: l.cluster, Topic: l.topic, FromOffset: 5}, &from)
	if err != nil {
		t.Fatal(err)
	}
	positions := collectPositions(t, l)
	var want []string
	for _, id := range all.ids {
		if positions[id][1] >= 5 {
			want = append(want, id)
		}
	}
	sort.Strings(want)
	sort.Strings(from.ids)
	if !slices.Equal(from.ids, want) || len(want) == 0 || len(want) == len(all.ids) {
		t.Errorf("from offset 5: %d events (stats %+v); want the %d of %d at offset 5 or later", len(from.ids), st, len(want), len(all.ids))
	}
}

// collectPositions returns the partition and offset of every valid record.
func collectPositions(t *testing.T, l logged) map[string][2]int64 {
	t.Helper()
	out := map[string][2]int64{}
	for _, m := range kafkatest.ReadAll(t, l.cluster, l.topic) {
		a, err := kafkalog.Decode(m)
		if err != nil {
			continue
		}
		out[a.ID] = [2]int64{int64(m.Partition), m.Offset}
	}
	return out
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	unreachable := kafkalog.NewCluster([]string{"127.0.0.1:1"})
	defer unreachable.Close()
	for _, cfg := range []replay.Config{
		{Topic: "chat.events", FromOffset: -1},
		{Kafka: unreachable, FromOffset: -1},
		{Kafka: unreachable, Topic: "chat.events", FromOffset: 0, FromTime: base},
	} {
		if _, err := replay.Run(context.Background(), cfg, &collect{}); !errors.Is(err, replay.ErrConfig) {
			t.Errorf("Run(%+v) = %v; want ErrConfig", cfg, err)
		}
	}
}

// TestPatternViolationsLeftOut: a record breaking a pattern of its JSON
// Schema is left out by the default check, whether or not the decoding
// every consumer applies catches it (a rejected command's command_type is
// checked by the schema only, a sender id by both), and the valid records
// around it come out.
func TestPatternViolationsLeftOut(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kafkatest.Topics(kafkalog.Topology{Partitions: 1}))
	topic := c.Names.Topic(schemas.TopicEvents)
	fx := fixtures(t)
	breakValue := func(typ, from, to string) []byte {
		b := bytes.Replace(fx[typ], []byte(from), []byte(to), 1)
		if bytes.Equal(b, fx[typ]) {
			t.Fatalf("%s not in the fixture of %s", from, typ)
		}
		return b
	}
	records := []struct {
		typ   string
		value []byte
	}{
		{schemas.TypeCommandRejected, fx[schemas.TypeCommandRejected]},
		{schemas.TypeCommandRejected, breakValue(schemas.TypeCommandRejected, `"chat.message.send.v1"`, `"chat.message.send"`)},
		{schemas.TypeMessageSentV3, fx[schemas.TypeMessageSentV3]},
		{schemas.TypeMessageSentV3, breakValue(schemas.TypeMessageSentV3, `"bob"`, `"bo b"`)},
		{schemas.TypeMessageSentV3, breakValue(schemas.TypeMessageSentV3, `"9f86d081`, `"9F86D081`)},
	}
	var msgs []kafka.Message
	for i, r := range records {
		a := kafkalog.NewAttributes(r.typ, "conv-0", base.Add(time.Duration(i)*time.Second))
		a.Seq, a.HasSeq = uint64(i+1), true
		msgs = append(msgs, kafkalog.Encode(a, r.value))
	}
	w := kafkalog.NewWriter(c.Cluster, topic)
	defer w.Close()
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		check            replay.Check
		written, invalid int64
	}{
		{replay.CheckSchema, 2, 3},
		{replay.CheckDecode, 3, 2}, // the command type's pattern is the schema's alone
	} {
		var got collect
		st, err := replay.Run(context.Background(), replay.Config{Kafka: c.Cluster, Topic: topic, FromOffset: -1, Check: tc.check}, &got)
		if err != nil {
			t.Fatal(err)
		}
		if st.Read != 5 || st.Written != tc.written || st.Invalid != tc.invalid {
			t.Errorf("check %d: stats %+v; want 5 read, %d written, %d invalid", tc.check, st, tc.written, tc.invalid)
		}
	}
}
