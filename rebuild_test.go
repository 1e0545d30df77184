package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers/dlqtest"
	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/projections/history/pebblestore"
	"github.com/parley-chat/parley/schemas"
)

// An operator stops `parley run`, runs `parley rebuild history` over its
// data dir and is told the store is what the log says; after the store
// is altered behind the log's back, the same command names the
// conversation and exits 1.
func TestRebuildHistoryCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	settings := runSettings(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sys := startRun(ctx, t, app.Roles{History: true}, settings)
	const g = "g_cli"
	evs := append([]history.Event{historytest.Group(g, historytest.MessageTime(0), historytest.Owner("alice"), historytest.Member("bob"))},
		historytest.Messages(g, 1, 5, "alice")...)
	evs = append(evs, historytest.Edited(g, 6, "alice", 2, "edited", historytest.MessageTime(6)))
	var recs []kafka.Message
	for _, ev := range evs {
		recs = append(recs, kafkalog.Encode(schemas.Attributes{ID: ev.ID, Type: ev.Type, Source: schemas.Source, Subject: g,
			Time: ev.Time, Seq: ev.Seq, HasSeq: true, CommandOffset: -1}, ev.Data))
	}
	k := kafkatest.Cluster{Cluster: sys.Kafka(), Names: sys.TopicNames()}
	dlqtest.Write(t, k, schemas.TopicEvents, recs...)
	dlqtest.WaitFor(t, time.Minute, "the history projection at seq 6", func() bool {
		c, err := sys.Store().Conversation(ctx, g)
		return err == nil && c.LastSeq == 6
	})
	if err := sys.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	var out, errOut bytes.Buffer
	if err := run(ctx, append([]string{"rebuild", "history"}, settings...), noEnv, nil, &out, &errOut); err != nil {
		t.Fatalf("rebuild history: %v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "history rebuild: 7 records (0 skipped), 3 conversations and inboxes compared, 0 differ") ||
		!strings.Contains(out.String(), "records/s, ETA") {
		t.Errorf("rebuild history printed:\n%s", out.String())
	}

	s, err := pebblestore.Open(filepath.Join(dir, "history"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, []history.Event{historytest.Edited(g, 7, "bob", 1, "not in the log", historytest.MessageTime(7))}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = run(ctx, append([]string{"rebuild", "history"}, settings...), noEnv, nil, &out, &errOut)
	if !errors.Is(err, app.ErrRebuildDiffers) || exitCode(err) != 1 {
		t.Errorf("rebuild history of an altered store: %v (exit %d); want ErrRebuildDiffers, exit 1", err, exitCode(err))
	}
	if !strings.Contains(out.String(), "differs: conversation/"+g+" live=") {
		t.Errorf("rebuild history of an altered store printed:\n%s", out.String())
	}

	// -swap puts the rebuilt store in place: then nothing differs.
	out.Reset()
	if err := run(ctx, append([]string{"rebuild", "history", "-swap"}, settings...), noEnv, nil, &out, &errOut); err != nil {
		t.Fatalf("rebuild history -swap: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "the rebuilt store replaced the live one") {
		t.Errorf("rebuild history -swap printed:\n%s", out.String())
	}
	out.Reset()
	if err := run(ctx, append([]string{"rebuild", "history"}, settings...), noEnv, nil, &out, &errOut); err != nil || !strings.Contains(out.String(), " 0 differ") {
		t.Errorf("rebuild history after the swap: %v\n%s", err, out.String())
	}
}
