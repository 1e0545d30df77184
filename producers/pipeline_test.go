// Tests of the pipelined command writer: order per conversation, and the
// bound on commands waiting for the broker.
package producers_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/schemas"
)

// TestEnqueueKeepsEachConversationsOrder: commands enqueued back to back,
// none waiting for the one before to be written, are all written, each
// once, and each conversation's in the order they were enqueued.
func TestEnqueueKeepsEachConversationsOrder(t *testing.T) {
	t.Parallel()
	const partitions, convs, perConv = 3, 6, 300
	k := kafkatest.Start(t)
	ctx := testContext(t)
	if err := kafkalog.Provision(ctx, k.Client(), k.Topology(kafkalog.Topology{Partitions: partitions})); err != nil {
		t.Fatal(err)
	}
	cw := producers.NewCommandWriter(k.Cluster, k.Names, slogDiscard())
	defer cw.Close()
	var written []<-chan error
	for i := range perConv {
		for c := range convs {
			conv := fmt.Sprint("conv-", c)
			cmd := schemas.SendMessageV1{CommandID: fmt.Sprintf("%s-%04d", conv, i), UserID: "alice", ConversationID: conv, Body: "hi", IssuedAt: time.Now()}
			w, err := cw.Enqueue(ctx, schemas.TypeSendMessage, conv, cmd, "")
			if err != nil {
				t.Fatal(err)
			}
			written = append(written, w)
		}
	}
	for _, w := range written {
		select {
		case err := <-w:
			if err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("a command was never answered")
		}
	}
	if n := cw.Pending(); n != 0 {
		t.Errorf("%d commands pending after every one was answered", n)
	}
	got := map[string][]string{}
	for _, cmd := range loggedCommands(t, k, partitions) {
		got[cmd.ConversationID] = append(got[cmd.ConversationID], cmd.CommandID)
	}
	for c := range convs {
		conv := fmt.Sprint("conv-", c)
		var want []string
		for i := range perConv {
			want = append(want, fmt.Sprintf("%s-%04d", conv, i))
		}
		if !slices.Equal(got[conv], want) {
			t.Errorf("%s: %d records, first out of place at %d", conv, len(got[conv]), firstDiff(got[conv], want))
		}
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestEnqueueRefusesWhenSaturated: while the broker holds the writes,
// commands are still enqueued (pipelined) up to MaxPending; the next one
// is refused at once with ErrOverloaded; once the broker answers, every
// queued command hears that it is written and there is room again.
func TestEnqueueRefusesWhenSaturated(t *testing.T) {
	t.Parallel()
	c, k := holdableBroker(t)
	ctx := testContext(t)
	cw := producers.NewCommandWriter(k.Cluster, k.Names, slogDiscard(), producers.MaxPending(2))
	defer cw.Close()
	send := func(id string) (<-chan error, error) {
		cmd := schemas.SendMessageV1{CommandID: id, UserID: "alice", ConversationID: "c", Body: "hi", IssuedAt: time.Now()}
		return cw.Enqueue(ctx, schemas.TypeSendMessage, "c", cmd, "")
	}
	// A first command, written: the writer knows the topic and its
	// connection is up.
	if err := cw.Append(ctx, schemas.TypeSendMessage, "c", schemas.SendMessageV1{CommandID: "warm", UserID: "alice", ConversationID: "c", Body: "hi", IssuedAt: time.Now()}, ""); err != nil {
		t.Fatal(err)
	}

	release := make(chan struct{})
	held := make(chan struct{}, 1)
	c.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		select {
		case held <- struct{}{}:
		default:
		}
		c.SleepControl(func() { <-release })
		return nil, nil, false // then the broker handles it as usual
	})
	first, err := send("first")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("the first write never reached the broker")
	}
	second, err := send("second")
	if err != nil {
		t.Fatalf("second command, while the first is held: %v", err)
	}
	if _, err := send("third"); !errors.Is(err, producers.ErrOverloaded) {
		t.Fatalf("third command with two pending: %v, want ErrOverloaded", err)
	}
	for _, w := range []<-chan error{first, second} {
		select {
		case err := <-w:
			t.Fatalf("answered %v while the broker holds the write", err)
		default:
		}
	}
	close(release)
	for _, w := range []<-chan error{first, second} {
		select {
		case err := <-w:
			if err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("a held command was never answered")
		}
	}
	if err := cw.Append(ctx, schemas.TypeSendMessage, "c", schemas.SendMessageV1{CommandID: "fourth", UserID: "alice", ConversationID: "c", Body: "hi", IssuedAt: time.Now()}, ""); err != nil {
		t.Fatalf("after the broker answered: %v", err)
	}
}

// TestCommandsGatherWhileARequestIsInFlight: a partition has one produce
// request in flight at a time; a command that finds it idle leaves at
// once, or with those enqueued within the linger; the commands enqueued
// while a request is in flight leave together in the next request as
// soon as it is answered — however long that took, not one linger's
// worth at a time — and Close writes and answers what is still gathered.
func TestCommandsGatherWhileARequestIsInFlight(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		linger time.Duration
		first  int // commands enqueued back to back on the idle partition
	}{
		{"no linger", 0, 1},
		{"a linger", time.Second, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testGathering(t, tc.linger, tc.first)
		})
	}
}

func testGathering(t *testing.T, linger time.Duration, first int) {
	c, k := holdableBroker(t)
	ctx := testContext(t)
	cw := producers.NewCommandWriter(k.Cluster, k.Names, slogDiscard(), producers.Linger(linger))
	send := func(id string) <-chan error {
		t.Helper()
		cmd := schemas.SendMessageV1{CommandID: id, UserID: "alice", ConversationID: "c", Body: "hi", IssuedAt: time.Now()}
		w, err := cw.Enqueue(ctx, schemas.TypeSendMessage, "c", cmd, "")
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	if err := <-send("warm"); err != nil {
		t.Fatal(err)
	}

	release := make(chan struct{})
	requests := make(chan int, 16) // records per produce request, in order
	c.ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		requests <- producedRecords(t, req.(*kmsg.ProduceRequest))
		c.SleepControl(func() { <-release })
		return nil, nil, false // then the broker handles it as usual
	})
	var answers []<-chan error
	for i := range first {
		answers = append(answers, send(fmt.Sprint("first-", i)))
	}
	if n := <-requests; n != first {
		t.Fatalf("the first request carries %d records, want %d", n, first)
	}
	// Two halves, some time apart: whatever gathers while the request is
	// in flight leaves together, however long that is (kafka-go's linger
	// would have closed the first half's batch on its own).
	const gathered = 10
	for i := range gathered {
		if i == gathered/2 {
			<-time.After(5 * time.Millisecond)
		}
		answers = append(answers, send(fmt.Sprint("gathered-", i)))
	}
	select {
	case n := <-requests:
		t.Fatalf("a request of %d records left while the one before was in flight", n)
	default:
	}
	release <- struct{}{}
	if n := <-requests; n != gathered {
		t.Fatalf("after the first was answered, a request of %d records, want the %d gathered", n, gathered)
	}

	// Close while that request is held and more have gathered behind it.
	for i := range 3 {
		answers = append(answers, send(fmt.Sprint("at-close-", i)))
	}
	closed := make(chan error, 1)
	go func() { closed <- cw.Close() }()
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if n := <-requests; n != 3 {
		t.Errorf("the commands gathered at Close left in a request of %d records, want 3", n)
	}
	for i, w := range answers {
		select {
		case err := <-w:
			if err != nil {
				t.Errorf("command %d: %v", i, err)
			}
		default:
			t.Errorf("command %d not answered when Close returned", i)
		}
	}
	if got := len(readAll(t, k.Cluster, k.Names.Topic(schemas.TopicCommands), 1)); got != 1+len(answers) {
		t.Errorf("%d records in the log, want %d", got, 1+len(answers))
	}
	if _, err := cw.Enqueue(ctx, schemas.TypeSendMessage, "c", schemas.SendMessageV1{CommandID: "late", UserID: "alice", ConversationID: "c", Body: "hi", IssuedAt: time.Now()}, ""); err == nil {
		t.Error("Enqueue after Close succeeded")
	}
}

// TestATooLargeCommandFailsAlone: a command too large for a produce
// request fails, and only it: the commands gathered with it in its
// partition's lane are written.
func TestATooLargeCommandFailsAlone(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t, kafkatest.Topics(kafkalog.Topology{Partitions: 1}))
	ctx := testContext(t)
	// A linger long enough for the three to gather in one call.
	cw := producers.NewCommandWriter(k.Cluster, k.Names, slogDiscard(), producers.Linger(time.Second))
	defer cw.Close()
	var answers []<-chan error
	for i, body := range []string{"before", strings.Repeat("x", 2<<20), "after"} {
		cmd := schemas.SendMessageV1{CommandID: fmt.Sprint("cmd-", i), UserID: "alice", ConversationID: "c", Body: body, IssuedAt: time.Now()}
		w, err := cw.Enqueue(ctx, schemas.TypeSendMessage, "c", cmd, "")
		if err != nil {
			t.Fatal(err)
		}
		answers = append(answers, w)
	}
	for i, w := range answers {
		select {
		case err := <-w:
			if tooLarge := i == 1; tooLarge != (err != nil) {
				t.Errorf("command %d (too large: %v) answered %v", i, tooLarge, err)
			}
		case <-ctx.Done():
			t.Fatalf("command %d was never answered", i)
		}
	}
	var bodies []string
	for _, cmd := range loggedCommands(t, k, 1) {
		bodies = append(bodies, cmd.Body)
	}
	if !slices.Equal(bodies, []string{"before", "after"}) {
		t.Errorf("the log holds %d commands (%.20q…), want the two that fit, in order", len(bodies), bodies)
	}
}

// loggedCommands reads back every message command in chat.commands,
// partition by partition, each in log order.
func loggedCommands(t *testing.T, k kafkatest.Cluster, partitions int) []schemas.SendMessageV1 {
	t.Helper()
	var cmds []schemas.SendMessageV1
	for _, m := range readAll(t, k.Cluster, k.Names.Topic(schemas.TopicCommands), partitions) {
		var cmd schemas.SendMessageV1
		if err := json.Unmarshal(m.Value, &cmd); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

// holdableBroker starts kfake itself, not embeddedkafka or kafkatest's
// own, for its request hooks (a test holds produce requests with them),
// with chat.commands in one partition.
func holdableBroker(t *testing.T) (*kfake.Cluster, kafkatest.Cluster) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	k := kafkatest.Of(t, c.ListenAddrs())
	k.Provision(t, kafkalog.Topology{Partitions: 1})
	return c, k
}

// producedRecords counts the records of a produce request.
func producedRecords(t *testing.T, req *kmsg.ProduceRequest) int {
	n := 0
	for _, topic := range req.Topics {
		for _, p := range topic.Partitions {
			for b := p.Records; len(b) > 0; {
				var batch kmsg.RecordBatch
				if err := batch.ReadFrom(b); err != nil {
					t.Errorf("reading a produced record batch: %v", err)
					return n
				}
				n += int(batch.NumRecords)
				b = b[12+int(batch.Length):]
			}
		}
	}
	return n
}
