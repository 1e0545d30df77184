package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/consumers/dlqtest"
	"github.com/parley-chat/parley/consumers/grouptest"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/projections/history/pebblestore"
	"github.com/parley-chat/parley/schemas"
)

// flakyStore is a real Pebble store that refuses the events of one seq
// while fault is set, and takes every other write.
type flakyStore struct {
	*pebblestore.Store
	mu    sync.Mutex
	fault uint64 // 0: none
}

func (f *flakyStore) Apply(ctx context.Context, events []history.Event) error {
	f.mu.Lock()
	fault := f.fault
	f.mu.Unlock()
	for _, ev := range events {
		if fault != 0 && ev.Seq == fault {
			return fmt.Errorf("transient fault writing seq %d", ev.Seq)
		}
	}
	return f.Store.Apply(ctx, events)
}

func (f *flakyStore) heal() {
	f.mu.Lock()
	f.fault = 0
	f.mu.Unlock()
}

func dlqRun(t *testing.T, env func(string) string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(t.Context(), append([]string{"dlq"}, args...), env, nil, &out, &errOut)
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

// An operator lists the dead letters of a history projection whose
// store refused one event for a while and had a record without headers,
// filters them by group, then, the fault gone, redrives the refused
// event, which the projection then stores; a record that is no dead
// letter, or an offset that does not exist, is refused.
func TestDLQListsAndRedrivesDeadLetters(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 1}))
	env := clusterEnv(k, "0123456789abcdef0123456789abcdef-dlq-test")
	ps, err := pebblestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ps.Close() })
	s := &flakyStore{Store: ps, fault: 2}
	grouptest.Run(t, consumers.GroupConfig{
		Kafka: k.Cluster, Names: k.Names, GroupID: k.Names.Group(schemas.GroupHistory), Topic: k.Names.Topic(schemas.TopicEvents),
		ApplyAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
	}, history.Projection{W: s})

	const conv = "g_dlq"
	record := func(ev history.Event) kafka.Message {
		return kafkalog.Encode(schemas.Attributes{ID: ev.ID, Type: ev.Type, Source: schemas.Source, Subject: ev.ConversationID,
			Time: ev.Time, Seq: ev.Seq, HasSeq: true, CommandOffset: -1}, ev.Data)
	}
	recs := []kafka.Message{record(historytest.Group(conv, historytest.MessageTime(0), historytest.Owner("alice")))}
	for _, ev := range historytest.Messages(conv, 1, 3, "alice") {
		recs = append(recs, record(ev))
	}
	dlqtest.Write(t, k, schemas.TopicEvents, recs...)
	dlqtest.WaitFor(t, 30*time.Second, "the refused event dead-lettered", func() bool { return len(dlqtest.Read(t, k)) >= 1 })
	headerless := kafka.Message{Key: []byte(conv), Value: []byte(`{"no":"headers"}`)}
	recs = append(recs, headerless)
	dlqtest.Write(t, k, schemas.TopicEvents, headerless)
	var dead []kafka.Message
	dlqtest.WaitFor(t, 30*time.Second, "two dead letters", func() bool {
		dead = dlqtest.Read(t, k)
		return len(dead) >= 2
	})
	dlqtest.WaitCommitted(t, k, schemas.GroupHistory, schemas.TopicEvents)
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dead))
	}

	// list, as text
	out, err := dlqRun(t, env, "list")
	if err != nil {
		t.Fatalf("dlq list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("dlq list printed %d lines, want 2:\n%s", len(lines), out)
	}
	group, events := k.Names.Group(schemas.GroupHistory), k.Names.Topic(schemas.TopicEvents)
	for i, want := range []string{
		fmt.Sprintf("0/0 group=%s from=%s/0/2 key=%q type=%q error=", group, events, conv, schemas.TypeMessageSent),
		fmt.Sprintf("0/1 group=%s from=%s/0/4 key=%q type=\"\" error=", group, events, conv),
	} {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("dlq list line %d:\n%s\nwant it to start with\n%s", i, lines[i], want)
		}
	}
	if !strings.Contains(lines[0], "transient fault writing seq 2") || !strings.Contains(lines[1], schemas.HeaderSpecVersion) {
		t.Errorf("dlq list does not print the errors:\n%s", out)
	}

	// list, as NDJSON, by group, with and without the prefix, its flags
	// before or after the settings
	for _, args := range [][]string{
		{"list", "-json", "-group", schemas.GroupHistory},
		{"list", "-log-level", "warn", "-group=" + group, "--json"},
	} {
		out, err = dlqRun(t, env, args...)
		if err != nil {
			t.Fatalf("dlq list -json: %v\n%s", err, out)
		}
		dec := json.NewDecoder(strings.NewReader(out))
		var got []letterJSON
		for dec.More() {
			var l letterJSON
			if err := dec.Decode(&l); err != nil {
				t.Fatalf("dlq list -json printed %q: %v", out, err)
			}
			got = append(got, l)
		}
		if len(got) != 2 {
			t.Fatalf("dlq %v: %d objects, want 2:\n%s", args, len(got), out)
		}
		want := letterJSON{DLQPartition: 0, DLQOffset: 0, Group: group, Topic: events, Partition: 0, Offset: 2, Key: conv, Type: schemas.TypeMessageSent}
		got[0].Time, got[0].Error = time.Time{}, strings.TrimSpace(got[0].Error)
		if e := got[0].Error; !strings.Contains(e, "transient fault writing seq 2") {
			t.Errorf("error %q", e)
		}
		got[0].Error = ""
		if got[0] != want {
			t.Errorf("dlq list -json: %+v, want %+v", got[0], want)
		}
	}
	if out, err := dlqRun(t, env, "list", "-group", schemas.GroupSearch); err != nil || out != "" {
		t.Errorf("dlq list -group %s: %v, printed %q; want nothing", schemas.GroupSearch, err, out)
	}

	// Refusals: no such offset, a record of chat.dlq that is no dead letter.
	if out, err := dlqRun(t, env, "redrive", "0/99"); err == nil || !strings.Contains(err.Error(), "no such record") {
		t.Errorf("redrive of a missing offset: %v (%s), want no such record", err, out)
	}
	dlqtest.Write(t, k, schemas.TopicDLQ, kafka.Message{Key: []byte("x"), Value: []byte("stray")})
	if out, err := dlqRun(t, env, "redrive", "0/2"); err == nil || !errors.Is(err, consumers.ErrNotDeadLetter) || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("redrive of a record that is no dead letter: %v (%s), want a refusal", err, out)
	}
	if out, err := dlqRun(t, env, "redrive", "zero"); err == nil || !strings.Contains(err.Error(), "PARTITION/OFFSET") {
		t.Errorf("redrive zero: %v (%s), want the usage", err, out)
	}
	if c, err := s.Store.Page(t.Context(), conv, history.PageQuery{Limit: 10}); err != nil || len(c.Events) != 3 {
		t.Fatalf("before the redrive the store has %d events (%v), want 3: seq 2 refused", len(c.Events), err)
	}

	// The fault is gone: redrive the refused event.
	s.heal()
	out, err = dlqRun(t, env, "redrive", "0/0")
	if err != nil {
		t.Fatalf("dlq redrive: %v\n%s", err, out)
	}
	if !strings.Contains(out, "redrove") || !strings.Contains(out, events) {
		t.Errorf("dlq redrive printed %q", out)
	}
	dlqtest.WaitFor(t, 30*time.Second, "the redriven event stored", func() bool {
		p, err := s.Store.Page(t.Context(), conv, history.PageQuery{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range p.Events {
			if ev.Seq == 2 {
				return true
			}
		}
		return false
	})
	// The copy in chat.events is the original, without dead-letter headers.
	all := readTopic(t, k, schemas.TopicEvents)
	if len(all) != len(recs)+1 {
		t.Fatalf("chat.events has %d records, want %d", len(all), len(recs)+1)
	}
	copied, orig := all[len(all)-1], recs[2]
	if string(copied.Key) != string(orig.Key) || string(copied.Value) != string(orig.Value) || len(copied.Headers) != len(orig.Headers) {
		t.Errorf("redriven record %q %q %v, want the original %q %q %v", copied.Key, copied.Value, copied.Headers, orig.Key, orig.Value, orig.Headers)
	}
	for i, h := range orig.Headers {
		if i < len(copied.Headers) && (copied.Headers[i].Key != h.Key || string(copied.Headers[i].Value) != string(h.Value)) {
			t.Errorf("redriven header %d: %s=%q, want %s=%q", i, copied.Headers[i].Key, copied.Headers[i].Value, h.Key, h.Value)
		}
	}
	dlqtest.WaitCommitted(t, k, schemas.GroupHistory, schemas.TopicEvents)
	if dead := dlqtest.Read(t, k); len(dead) != 3 {
		t.Errorf("chat.dlq has %d records after the redrive, want the 3 before it", len(dead))
	}
}

// readTopic reads partition 0 of topic from the start to its end.
func readTopic(t *testing.T, k kafkatest.Cluster, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out []kafka.Message
	client := kafkalog.NewClient(k.Cluster)
	if err := readPartition(ctx, k.Cluster, client, k.Names.Topic(topic), 0, func(m kafka.Message) error {
		out = append(out, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
