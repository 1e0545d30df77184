package search_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/projections/search/blevestore"
	"github.com/parley-chat/parley/schemas"
)

var t0 = time.Date(2025, 5, 1, 9, 30, 0, 123456789, time.UTC)

func record(t *testing.T, m kafka.Message) consumers.Record {
	t.Helper()
	attrs, err := kafkalog.Decode(m)
	if err != nil {
		t.Fatal(err)
	}
	return consumers.Record{Message: m, Attrs: attrs}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	p := search.Projection{}
	d, err := p.Decode(record(t, sent("g_1", 7, "ann", "Hello <there>", t0)))
	if err != nil {
		t.Fatal(err)
	}
	want := search.Doc{Kind: search.KindIndex, ConversationID: "g_1", Seq: 7, Version: 7, SenderID: "ann", Body: "Hello <there>", SentAt: t0}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("Decode = %+v, want %+v", d, want)
	}
	if d.ID() != "g_1/7" {
		t.Errorf("ID = %q", d.ID())
	}
	if d, err := p.Decode(record(t, created("g_1", t0, "ann"))); err != nil || d.Kind != search.KindNone {
		t.Errorf("a creation: %+v, %v; want a KindNone doc", d, err)
	}
	future := event("chat.message.reacted.v9", "g_1", 8, t0, map[string]any{"emoji": "x"})
	if d, err := p.Decode(record(t, future)); err != nil || d.Kind != search.KindNone {
		t.Errorf("a type of a later version: %+v, %v; want a KindNone doc", d, err)
	}

	bad := map[string]kafka.Message{
		"a message breaking its schema": event(schemas.TypeMessageSent, "g_1", 9, t0, map[string]any{"conversation_id": "g_1", "seq": 9}),
		"a message not JSON":            withValue(sent("g_1", 9, "ann", "x", t0), []byte("{")),
		"headers disagreeing with body": event(schemas.TypeMessageSent, "g_1", 9, t0, schemas.MessageSentV1{ConversationID: "g_2", Seq: 9, SenderID: "ann", CommandID: "c", SentAt: t0}),
		"a seq disagreeing with body":   event(schemas.TypeMessageSent, "g_1", 9, t0, schemas.MessageSentV1{ConversationID: "g_1", Seq: 10, SenderID: "ann", CommandID: "c", SentAt: t0}),
		"a time an index cannot hold":   sent("g_1", 9, "ann", "x", time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)),
	}
	for name, m := range bad {
		if _, err := p.Decode(record(t, m)); !errors.Is(err, schemas.ErrInvalid) {
			t.Errorf("%s: got %v, want an error wrapping schemas.ErrInvalid (dead-lettered)", name, err)
		}
	}
	noSeq := record(t, sent("g_1", 9, "ann", "x", t0))
	noSeq.Attrs.HasSeq = false
	if _, err := p.Decode(noSeq); !errors.Is(err, schemas.ErrInvalid) {
		t.Errorf("a record without seq: got %v, want ErrInvalid", err)
	}
}

func withValue(m kafka.Message, v []byte) kafka.Message { m.Value = v; return m }

type recordingIndexer struct{ calls [][]search.Doc }

func (r *recordingIndexer) Index(_ context.Context, docs []search.Doc) error {
	r.calls = append(r.calls, docs)
	return nil
}

func TestApplySkipsBatchesOfNothing(t *testing.T) {
	t.Parallel()
	ix := &recordingIndexer{}
	p := search.Projection{Index: ix}
	if err := p.Apply(t.Context(), []search.Doc{{Kind: search.KindNone}, {Kind: search.KindNone}}); err != nil {
		t.Fatal(err)
	}
	if len(ix.calls) != 0 {
		t.Errorf("a batch of nothing reached the index: %v", ix.calls)
	}
	batch := []search.Doc{{Kind: search.KindNone}, {Kind: search.KindIndex, ConversationID: "c", Seq: 1, Version: 1}}
	if err := p.Apply(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	if len(ix.calls) != 1 || len(ix.calls[0]) != 2 {
		t.Errorf("Apply passed %v, want the batch as it is", ix.calls)
	}
}

// TestProjectionThroughKafka runs the search projection as the system
// does: events appended to chat.events on the embedded broker, the
// consumer group runtime feeding Projection, the Bleve index searched.
func TestProjectionThroughKafka(t *testing.T) {
	t.Parallel()
	k := startKafka(t, 3)
	idx, err := blevestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- consumers.RunGroup(ctx, consumers.GroupConfig{
			Kafka: k.Cluster, Names: k.Names, GroupID: k.Names.Group(schemas.GroupSearch), Topic: k.Names.Topic(schemas.TopicEvents),
		}, search.Projection{Index: idx})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunGroup: %v", err)
		}
	}()
	produce(t, k,
		created("g_ours", t0, "ann", "bob"),
		sent("g_ours", 1, "ann", "the launch is on Thursday", t0.Add(time.Second)),
		sent("g_ours", 2, "bob", "Thursday works", t0.Add(2*time.Second)),
		created("g_theirs", t0, "eve"),
		sent("g_theirs", 1, "eve", "secret thursday plans", t0.Add(3*time.Second)),
		withValue(sent("g_ours", 3, "ann", "x", t0), []byte("not json")), // dead-lettered
		sent("g_ours", 4, "ann", "after the bad record: thursday", t0.Add(4*time.Second)),
	)
	find := func(convs ...string) []search.Hit {
		res, err := idx.Search(t.Context(), search.Query{Text: "thursday", Conversations: convs, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		return res.Hits
	}
	// The conversations may be in different partitions, indexed in
	// batches of their own.
	eventually(t, "the messages to be searchable", func() bool { return len(find("g_ours")) == 3 && len(find("g_theirs")) == 1 })
	hits := find("g_ours")
	if hits[0].Seq != 4 || hits[1].Seq != 2 || hits[2].Seq != 1 {
		t.Errorf("hits %+v, want seqs 4, 2, 1 (newest first)", hits)
	}
	if !hits[2].SentAt.Equal(t0.Add(time.Second)) || hits[2].SenderID != "ann" || !strings.Contains(hits[2].Snippet, "<mark>Thursday</mark>") {
		t.Errorf("hit %+v lacks the event's fields", hits[2])
	}
	for _, h := range hits {
		if h.ConversationID != "g_ours" {
			t.Errorf("a search of g_ours returned %s", h.ConversationID)
		}
	}
	if got := find("g_theirs"); len(got) != 1 || got[0].SenderID != "eve" {
		t.Errorf("g_theirs has hits %+v, want eve's one", got)
	}
}

func TestDecodeEditsAndDeletions(t *testing.T) {
	t.Parallel()
	p := search.Projection{}
	v2 := event(schemas.TypeMessageSentV2, "g_1", 3, t0, schemas.MessageSentV2{ConversationID: "g_1", Seq: 3, SenderID: "bob", Body: "re: hello", ReplyTo: 1, CommandID: "c3", SentAt: t0})
	edit := event(schemas.TypeMessageEdited, "g_1", 5, t0.Add(time.Minute), schemas.MessageEditedV1{
		ConversationID: "g_1", Seq: 5, UserID: "bob", MessageSeq: 3, Body: "re: hello again", MessageSentAt: t0, CommandID: "c5", EditedAt: t0.Add(time.Minute)})
	del := event(schemas.TypeMessageDeleted, "g_1", 6, t0.Add(2*time.Minute), schemas.MessageDeletedV1{
		ConversationID: "g_1", Seq: 6, UserID: "ann", MessageSeq: 3, CommandID: "c6", DeletedAt: t0.Add(2 * time.Minute)})
	react := event(schemas.TypeReactionAdded, "g_1", 7, t0, schemas.ReactionV1{ConversationID: "g_1", Seq: 7, UserID: "ann", MessageSeq: 3, Emoji: "👍", CommandID: "c7", At: t0})
	for _, c := range []struct {
		name string
		m    kafka.Message
		want search.Doc
	}{
		{"a message v2", v2, search.Doc{Kind: search.KindIndex, ConversationID: "g_1", Seq: 3, Version: 3, SenderID: "bob", Body: "re: hello", SentAt: t0}},
		{"an edit gives the message its new body at the edit's version", edit, search.Doc{Kind: search.KindEdit, ConversationID: "g_1", Seq: 3, Version: 5, SenderID: "bob", Body: "re: hello again", SentAt: t0}},
		{"a deletion deletes the message at its version", del, search.Doc{Kind: search.KindDelete, ConversationID: "g_1", Seq: 3, Version: 6}},
		{"a reaction changes nothing", react, search.Doc{Kind: search.KindNone, ConversationID: "g_1", Version: 7}},
	} {
		if d, err := p.Decode(record(t, c.m)); err != nil || !reflect.DeepEqual(d, c.want) {
			t.Errorf("%s: Decode = %+v, %v; want %+v", c.name, d, err, c.want)
		}
	}
	misfiled := record(t, edit)
	misfiled.Attrs.Seq = 4
	if _, err := p.Decode(misfiled); !errors.Is(err, schemas.ErrInvalid) {
		t.Errorf("an edit whose seq disagrees with its headers: %v, want ErrInvalid", err)
	}
}

// TestEditsAndDeletionsThroughKafka: an edited message is found by its new
// words and not its old ones, a deleted one not at all, live and when the
// events are replayed into a fresh index.
func TestEditsAndDeletionsThroughKafka(t *testing.T) {
	t.Parallel()
	k := startKafka(t, 3)
	idx, err := blevestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	run := func(group string, idx search.Indexer) func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- consumers.RunGroup(ctx, consumers.GroupConfig{Kafka: k.Cluster, Names: k.Names, GroupID: k.Names.Group(group), Topic: k.Names.Topic(schemas.TopicEvents)}, search.Projection{Index: idx})
		}()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("RunGroup: %v", err)
			}
		}
	}
	stop := run(schemas.GroupSearch, idx)
	produce(t, k,
		created("g_e", t0, "ann", "bob"),
		sent("g_e", 1, "ann", "meet at the harbour", t0.Add(time.Second)),
		sent("g_e", 2, "bob", "bring the lanterns", t0.Add(2*time.Second)),
		event(schemas.TypeMessageEdited, "g_e", 3, t0.Add(3*time.Second), schemas.MessageEditedV1{
			ConversationID: "g_e", Seq: 3, UserID: "ann", MessageSeq: 1, Body: "meet at the lighthouse", MessageSentAt: t0.Add(time.Second), CommandID: "e", EditedAt: t0.Add(3 * time.Second)}),
		event(schemas.TypeMessageDeleted, "g_e", 4, t0.Add(4*time.Second), schemas.MessageDeletedV1{
			ConversationID: "g_e", Seq: 4, UserID: "bob", MessageSeq: 2, CommandID: "d", DeletedAt: t0.Add(4 * time.Second)}),
		sent("g_e", 5, "ann", "done", t0.Add(5*time.Second)),
	)
	var searched interface {
		Search(context.Context, search.Query) (search.Result, error)
	} = idx
	count := func(q string) int {
		res, err := searched.Search(t.Context(), search.Query{Text: q, Conversations: []string{"g_e"}, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Hits)
	}
	check := func(when string) {
		t.Helper()
		if count("harbour") != 0 || count("lanterns") != 0 || count("lighthouse") != 1 {
			t.Errorf("%s: harbour %d, lanterns %d, lighthouse %d hits; want 0, 0, 1", when, count("harbour"), count("lanterns"), count("lighthouse"))
		}
	}
	eventually(t, "the last message to be indexed", func() bool { return count("done") == 1 })
	check("live")
	stop()
	// A second group replays the same events into a fresh index.
	fresh, err := blevestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	searched = fresh
	stop = run("parley-projection-search-replay", fresh)
	eventually(t, "the replay to reach the last message", func() bool { return count("done") == 1 })
	check("after a replay into a fresh index")
	stop()
}
