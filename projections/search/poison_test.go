package search_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/consumers/dlqtest"
	"github.com/parley-chat/parley/consumers/grouptest"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/projections/search/blevestore"
	"github.com/parley-chat/parley/schemas"
)

// The search group dead-letters each poison record of chat.events,
// counts it, commits past it and indexes the good message after it (same
// key, so same partition).
func TestSearchGroupDeadLettersPoisonAndGoesOn(t *testing.T) {
	t.Parallel()
	k := startKafka(t, 3)
	idx, err := blevestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idx.Close() })
	const conv = "g_poison"
	poisons := []struct {
		name string
		msg  kafka.Message
		err  string
	}{
		{"no CloudEvents headers", kafka.Message{Key: []byte(conv), Value: sent(conv, 90, "ann", "poison", t0).Value}, schemas.HeaderSpecVersion},
		{"a message breaking its schema", withValue(sent(conv, 91, "ann", "poison", t0), []byte(`{"seq":"one"}`)), "invalid"},
		{"a type search does not index, no JSON", withValue(created(conv, t0, "ann"), []byte(`{"conversation_id":`)), "invalid"},
		{"an unknown schema version that is no JSON", withValue(event("chat.message.sent.v9", conv, 93, t0, nil), []byte("poison")), "not JSON"},
	}
	var msgs []kafka.Message
	for i, p := range poisons {
		msgs = append(msgs, p.msg, sent(conv, uint64(i+1), "ann", "wholesome", t0))
	}
	dlqtest.Write(t, k, schemas.TopicEvents, msgs...)
	m := telemetry.New()
	grouptest.Run(t, consumers.GroupConfig{
		Kafka: k.Cluster, Names: k.Names, GroupID: k.Names.Group(schemas.GroupSearch), Topic: k.Names.Topic(schemas.TopicEvents), Metrics: m,
	}, search.Projection{Index: idx})

	var dead []kafka.Message
	dlqtest.WaitFor(t, 30*time.Second, "every dead letter", func() bool {
		dead = dlqtest.Read(t, k)
		return len(dead) >= len(poisons)
	})
	dlqtest.WaitCommitted(t, k, schemas.GroupSearch, schemas.TopicEvents)
	if len(dead) != len(poisons) {
		t.Fatalf("%d dead letters, want %d", len(dead), len(poisons))
	}
	for i, p := range poisons {
		t.Run(p.name, func(t *testing.T) {
			dlqtest.Check(t, k, dead[i], p.msg, schemas.TopicEvents, schemas.GroupSearch, p.err)
		})
	}
	if n := dlqtest.Count(t, k, m, schemas.GroupSearch); n != float64(len(poisons)) {
		t.Errorf("dead letters counted %v, want %d", n, len(poisons))
	}
	for q, want := range map[string]int{"wholesome": len(poisons), "poison": 0} {
		res, err := idx.Search(t.Context(), search.Query{Text: q, Conversations: []string{conv}, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Hits) != want {
			t.Errorf("search for %q found %d messages, want %d", q, len(res.Hits), want)
		}
	}
}

// refusingIndex is a real Bleve index that refuses every batch holding
// the message of one seq, and takes every other write.
type refusingIndex struct {
	*blevestore.Store
	mu     sync.Mutex
	refuse uint64
}

func (r *refusingIndex) Index(ctx context.Context, docs []search.Doc) error {
	r.mu.Lock()
	refuse := r.refuse
	r.mu.Unlock()
	for _, d := range docs {
		if d.Kind == search.KindIndex && d.Seq == refuse {
			return fmt.Errorf("index refuses seq %d", d.Seq)
		}
	}
	return r.Store.Index(ctx, docs)
}

// A message the index keeps refusing while it takes other writes is
// dead-lettered (the projection probes the Bleve index); the messages
// around it are indexed.
func TestSearchGroupDeadLettersAMessageTheIndexKeepsRefusing(t *testing.T) {
	t.Parallel()
	k := startKafka(t, 3)
	bs, err := blevestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bs.Close() })
	idx := &refusingIndex{Store: bs, refuse: 2}
	const conv = "g_refused"
	var msgs []kafka.Message
	for seq := uint64(1); seq <= 3; seq++ {
		msgs = append(msgs, sent(conv, seq, "ann", fmt.Sprintf("word%d", seq), t0))
	}
	dlqtest.Write(t, k, schemas.TopicEvents, msgs...)
	m := telemetry.New()
	grouptest.Run(t, consumers.GroupConfig{
		Kafka: k.Cluster, Names: k.Names, GroupID: k.Names.Group(schemas.GroupSearch), Topic: k.Names.Topic(schemas.TopicEvents), Metrics: m,
		ApplyAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
	}, search.Projection{Index: idx})
	var dead []kafka.Message
	dlqtest.WaitFor(t, 30*time.Second, "a dead letter", func() bool {
		dead = dlqtest.Read(t, k)
		return len(dead) >= 1
	})
	dlqtest.WaitCommitted(t, k, schemas.GroupSearch, schemas.TopicEvents)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	dlqtest.Check(t, k, dead[0], msgs[1], schemas.TopicEvents, schemas.GroupSearch, "index refuses seq 2")
	if e := dlqtest.Header(dead[0], schemas.HeaderDLQError); !strings.Contains(e, "while the store took writes") {
		t.Errorf("error %q does not say the index took writes", e)
	}
	for q, want := range map[string]int{"word1": 1, "word2": 0, "word3": 1} {
		res, err := bs.Search(t.Context(), search.Query{Text: q, Conversations: []string{conv}, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Hits) != want {
			t.Errorf("search for %q found %d messages, want %d", q, len(res.Hits), want)
		}
	}
	if n := dlqtest.Count(t, k, m, schemas.GroupSearch); n != 1 {
		t.Errorf("dead letters counted %v, want 1", n)
	}
}
