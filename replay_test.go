package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/parley-chat/parley/consumers/dlqtest"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/replay"
	"github.com/parley-chat/parley/schemas"
)

// An analyst replays one conversation of chat.events, as NDJSON on
// standard output and as a Parquet file, with progress on standard
// error; a bad flag is refused before anything is read.
func TestReplayCommand(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 2}))
	env := clusterEnv(k, "0123456789abcdef0123456789abcdef-replay-test")
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	fixture, err := os.ReadFile(filepath.Join("schemas", "testdata", schemas.TypeMessageSent+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, conv := range []string{"g_a", "g_b", "g_a"} {
		a := kafkalog.NewAttributes(schemas.TypeMessageSent, conv, at)
		a.Seq, a.HasSeq = 1, true
		if conv == "g_a" {
			ids = append(ids, a.ID)
		}
		dlqtest.Write(t, k, schemas.TopicEvents, kafkalog.Encode(a, fixture))
	}

	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"replay", "-conversation", "g_a", "-kafka-brokers", strings.Join(k.Brokers(), ",")}, env, nil, &out, &errOut); err != nil {
		t.Fatalf("replay: %v\n%s", err, errOut.String())
	}
	var got []string
	for line := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
		var ce replay.CloudEvent
		if err := json.Unmarshal([]byte(line), &ce); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, ce.ID)
	}
	slices.Sort(got)
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		t.Errorf("replayed ids %v; want those of g_a %v", got, ids)
	}
	if !strings.Contains(errOut.String(), "records/s, ETA") || !strings.Contains(errOut.String(), "3 records read, 2 written, 0 invalid") {
		t.Errorf("standard error has no progress or summary:\n%s", errOut.String())
	}

	file := filepath.Join(t.TempDir(), "events.parquet")
	errOut.Reset()
	if err := run(t.Context(), []string{"replay", "-format=parquet", "-o", file, "-type", schemas.TypeMessageSent, "-check", "decode"}, env, nil, &out, &errOut); err != nil {
		t.Fatalf("replay -format parquet: %v\n%s", err, errOut.String())
	}
	rows, err := parquet.ReadFile[replay.Row](file)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Errorf("%d rows; want 3", len(rows))
	}

	for _, args := range [][]string{
		{"replay", "-format", "csv"},
		{"replay", "-from-offset", "3", "-from-time", "2026-03-01T12:00:00Z"},
		{"replay", "-since", "yesterday"},
		{"replay", "-check", "none"},
		{"replay", "-decrypt"},
	} {
		out.Reset()
		if err := run(t.Context(), args, env, nil, &out, &errOut); err == nil || out.Len() != 0 {
			t.Errorf("%v: err %v, printed %q; want an error and nothing printed", args, err, out.String())
		}
	}
}
