package search_test

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/consumers/dlqtest"
	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/projections/search/blevestore"
	"github.com/parley-chat/parley/schemas"
)

// erasure is the chat.audit record of user's erasure at at, or with
// value as its value when given.
func erasure(user string, at time.Time, value string) kafka.Message {
	if value == "" {
		m, err := contentkeys.ErasureRecord(user, "olga", at)
		if err != nil {
			panic(err)
		}
		return m
	}
	return kafkalog.Encode(kafkalog.NewAttributes(schemas.TypeUserErased, schemas.ErasureRef(user), at), []byte(value))
}

// The search group, reading chat.events and chat.audit as internal/app
// wires it, blanks an erased user's messages live and dead-letters an
// erasure record that breaks its schema.
func TestProjectionAppliesErasures(t *testing.T) {
	t.Parallel()
	k := startKafka(t, 2)
	idx, err := blevestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- consumers.RunGroup(ctx, consumers.GroupConfig{
			Kafka: k.Cluster, Names: k.Names, GroupID: k.Names.Group(schemas.GroupSearch),
			Topics: []string{k.Names.Topic(schemas.TopicEvents), k.Names.Topic(schemas.TopicAudit)},
		}, search.Projection{Index: idx, Audit: k.Names.Topic(schemas.TopicAudit)})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunGroup: %v", err)
		}
	}()
	produce(t, k,
		created("g_erase", t0, "ann", "bob"),
		sent("g_erase", 1, "ann", "anns thursday secret", t0.Add(time.Second)),
		sent("g_erase", 2, "bob", "bobs thursday answer", t0.Add(2*time.Second)),
	)
	find := func(word string) int {
		res, err := idx.Search(t.Context(), search.Query{Text: word, Conversations: []string{"g_erase"}, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Hits)
	}
	eventually(t, "both messages searchable", func() bool { return find("thursday") == 2 })
	bad := erasure("ann", t0.Add(3*time.Second), `{"subject_ref":1}`)
	later := kafkalog.Encode(kafkalog.NewAttributes("chat.user.suspended.v1", schemas.ErasureRef("ann"), t0), []byte(`{"later":true}`))
	dlqtest.Write(t, k, schemas.TopicAudit, bad, later, erasure("ann", t0.Add(3*time.Second), ""))
	eventually(t, "ann's message no longer found", func() bool { return find("secret") == 0 })
	if find("thursday") != 1 || find("bobs") != 1 {
		t.Errorf("after ann's erasure: %d hits for thursday, %d for bobs; want bob's message only", find("thursday"), find("bobs"))
	}
	dead := dlqtest.Read(t, k)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want the malformed erasure only (not the audit record of a later type)", len(dead))
	}
	dlqtest.Check(t, k, dead[0], bad, schemas.TopicAudit, schemas.GroupSearch, "subject_ref")
}
