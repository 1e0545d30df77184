package rebuild_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/consumers/dlqtest"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/rebuild"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/projections/push"
	"github.com/parley-chat/parley/schemas"
)

func openPushStore(t *testing.T) *push.Store {
	t.Helper()
	s, err := push.OpenStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// offline is a session registry where no device is connected.
type offline struct{}

func (offline) Connected(string, string) bool { return false }

// noRemovals is a writer of chat.push the role must not use: it knows no
// device, so no registration can be gone.
type noRemovals struct{ t *testing.T }

func (r noRemovals) Append(context.Context, any) error {
	r.t.Error("the push role removed a registration it cannot know")
	return errors.New("unexpected")
}

// livePush runs the push role, as internal/app wires it, on a store of
// its own until the test ends.
func livePush(t *testing.T, k kafkatest.Cluster) *push.Store {
	t.Helper()
	live := openPushStore(t)
	p, err := push.New(push.Config{Kafka: k.Cluster, Names: k.Names, Store: live, Live: offline{}, Remover: noRemovals{t},
		Group: consumers.GroupConfig{ApplyAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the push role: %v", err)
		}
	})
	return live
}

// After a mixed workload, the push store rebuilt from the log equals the
// live one, conversation by conversation and user by user; then a live
// store altered behind the log's back is caught.
func TestPushRebuildFindsNoDifferenceThenCatchesAnAlteredStore(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 3}))
	live := livePush(t, k)
	events, receipts := workload(t)
	dlqtest.Write(t, k, schemas.TopicEvents, events...)
	dlqtest.Write(t, k, schemas.TopicReceipts, receipts...)

	var last [2]int64
	cfg := rebuild.PushConfig{
		Config: rebuild.Config{Kafka: k.Cluster, WaitLive: time.Minute, Progress: func(done, total int64) { last = [2]int64{done, total} }},
		Names:  k.Names, Live: live, Fresh: openPushStore(t),
	}
	rep, err := rebuild.Push(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkClean(t, rep, last, len(events)+len(receipts))
	// What was compared is what the log says: frank read 2 of erin's 3
	// messages.
	d := historytest.Direct("erin", "frank", historytest.MessageTime(0)).ConversationID
	frank, err := live.User("frank")
	if err != nil {
		t.Fatal(err)
	}
	if wantFrank := (push.UserState{Conversations: []push.UserConversation{{ConversationID: d, Member: true, ReadSeq: 2, Unread: 1}}, Badge: 1}); !slices.Equal(frank.Conversations, wantFrank.Conversations) || frank.Badge != wantFrank.Badge {
		t.Errorf("frank's state %+v; want %+v", frank, wantFrank)
	}

	// frank's read marker moved and carol removed from the group in the
	// live store only, as a bug or a hand would: the group, carol and
	// frank differ from what the log says; erin does not.
	ctx := context.Background()
	at := historytest.MessageTime(19)
	if err := push.RebuildProjection(live).Apply(ctx, []push.Item{
		{Type: schemas.TypeReceipt, Time: at, Value: &schemas.ReceiptV1{ConversationID: d, UserID: "frank", Kind: schemas.ReceiptRead, Seq: 3, At: at}},
		{Type: schemas.TypeMemberRemoved, Time: at, Value: &schemas.MemberRemovedV1{ConversationID: "g_rebuild", Seq: 19, UserID: "alice", MemberID: "carol", RemovedAt: at}},
	}); err != nil {
		t.Fatal(err)
	}
	cfg.Fresh = openPushStore(t)
	rep, err = rebuild.Push(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := differingKeys(t, rep)
	if want := []string{"conversation/g_rebuild", "user/carol", "user/frank"}; !slices.Equal(got, want) {
		t.Errorf("differences %v; want %v", got, want)
	}
}
