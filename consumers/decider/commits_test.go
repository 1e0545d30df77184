package decider_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/consumers/decider"
	"github.com/parley-chat/parley/schemas"
)

// TestDeciderCommitsWhatAppendedNothingAtOnce: a batch whose commands all
// appended events is not committed before the interval (its events carry
// the offsets a new owner resumes after); a batch that ends in a refused
// command is committed before the next is decided, so that it is never
// decided again; leaving the group commits everything decided.
func TestDeciderCommitsWhatAppendedNothingAtOnce(t *testing.T) {
	t.Parallel()
	k := startBroker(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, replies, cw := decisionLogs(t, k, 1)
	w := newWorld(2)
	want := w.create(ctx, t, cw)
	a := start(t, decider.Config{Kafka: k.Cluster, Names: k.Names, CommitInterval: time.Hour})

	sends, err := w.sendAll(ctx, cw, "m", 10)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, sends...)
	waitFor(t, 20*time.Second, "the sends' events", func() bool { return events.len() >= len(want) })
	if c := committed(t, k, 1)[0]; c != -1 {
		t.Errorf("committed offset %d after commands that all appended events; want none before the interval", c)
	}

	stranger := schemas.SendMessageV1{CommandID: "x1", UserID: "stranger", ConversationID: w.convs[1], Body: "hi", IssuedAt: time.Now()}
	if err := cw.Append(ctx, schemas.TypeSendMessage, stranger.ConversationID, stranger, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the refusal", func() bool { return replies.len() >= 1 })
	refusedEnd := highWatermarks(t, k, schemas.TopicCommands, 1)[0]
	waitFor(t, 10*time.Second, "the refused command committed", func() bool { return committed(t, k, 1)[0] == refusedEnd })

	more, err := w.sendAll(ctx, cw, "n", 4)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, more...)
	waitFor(t, 20*time.Second, "the later sends' events", func() bool { return events.len() >= len(want) })
	if c := committed(t, k, 1)[0]; c != refusedEnd {
		t.Errorf("committed offset %d after later sends that appended events; want still %d", c, refusedEnd)
	}

	a.stop(t)
	if c, end := committed(t, k, 1)[0], highWatermarks(t, k, schemas.TopicCommands, 1)[0]; c != end {
		t.Errorf("after leaving the group the committed offset is %d, want the end %d", c, end)
	}
	checkEvents(t, events.snapshot(), 1, want)
	if n := replies.len(); n != 1 {
		t.Errorf("%d replies, want the one refusal", n)
	}
}
