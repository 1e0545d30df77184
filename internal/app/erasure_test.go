package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/gateway/gatewaytest"
	"github.com/parley-chat/parley/internal/disktest"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/rebuild"
	"github.com/parley-chat/parley/internal/replay"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/pebblestore"
	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/schemas"
	"github.com/parley-chat/parley/schemas/schemacheck"
)

// waitFor polls cond until it holds, failing t after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond) // polling a projection: nothing to wait on
	}
}

// dirHolds reports whether a file under dir holds any of words.
func dirHolds(t *testing.T, dir string, words ...string) []string {
	t.Helper()
	found, _, err := disktest.FilesHolding(dir, words...)
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// Crypto-shredding end to end, on `parley run` with PARLEY_CONTENT_KEK:
// what Alice writes is sealed in the log yet read in clear by history
// and search; an administrator erases her; then the log read with the
// key service, and a history store rebuilt from it, hold nothing of what
// she wrote, while Bob's messages and every event's metadata stay.
func TestErasureShredsAUsersContent(t *testing.T) {
	t.Parallel()
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	cfg := embeddedConfig(t, "-partitions", "2", "-content-kek", base64.StdEncoding.EncodeToString(kek), "-admin-users", "olga")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sys, err := Start(ctx, cfg, All, cfg.Logger(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sys.Stop(sctx); err != nil {
			t.Errorf("stopping: %v", err)
		}
	})
	api := gatewaytest.New(ctx, t, sys.HTTPAddr(), []byte(DevSecret))
	call := api.Call

	// Bob's socket, open before anything is sent: the delivery hub must
	// hand it the sealed events opened.
	bobToken := api.Token("bob")
	ws, _, err := websocket.Dial(ctx, "ws://"+sys.HTTPAddr()+"/v1/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + bobToken}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()

	const secret, title, bobs = "the password is swordfish", "Secret Garden Club", "bob says hello"
	status, created := call("alice", "POST", "/v1/conversations", `{"kind":"group","title":"`+title+`","members":["bob"]}`)
	if status != http.StatusOK && status != http.StatusCreated {
		t.Fatalf("creating the group: %d %v", status, created)
	}
	conv, _ := created["conversation_id"].(string)
	if status, out := call("alice", "POST", "/v1/conversations/"+conv+"/messages", `{"command_id":"a1","body":"`+secret+`"}`); status != http.StatusCreated {
		t.Fatalf("alice's message: %d %v", status, out)
	}
	if status, out := call("bob", "POST", "/v1/conversations/"+conv+"/messages", `{"command_id":"b1","body":"`+bobs+`"}`); status != http.StatusCreated {
		t.Fatalf("bob's message: %d %v", status, out)
	}

	delivered := map[float64]string{} // seq -> body, or title of the creation
	for len(delivered) < 3 {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, frame, err := ws.Read(rctx)
		cancel()
		if err != nil {
			t.Fatalf("bob's socket, after %v: %v", delivered, err)
		}
		var f struct {
			Type           string         `json:"type"`
			ConversationID string         `json:"conversation_id"`
			Seq            float64        `json:"seq"`
			Data           map[string]any `json:"data"`
		}
		if json.Unmarshal(frame, &f) != nil || f.Type != "event" || f.ConversationID != conv {
			continue
		}
		if f.Seq == 0 {
			delivered[0], _ = f.Data["title"].(string)
		} else {
			delivered[f.Seq], _ = f.Data["body"].(string)
		}
	}
	if delivered[0] != title || delivered[1] != secret || delivered[2] != bobs {
		t.Errorf("bob's socket got %v; want the title and both bodies in clear", delivered)
	}

	// History and search read the sealed events in clear.
	store := sys.Store()
	waitFor(t, time.Minute, "both messages in history", func() bool {
		p, err := store.Page(ctx, conv, history.PageQuery{Forward: true, Limit: 10})
		return err == nil && len(p.Events) == 2 && bytes.Contains(p.Events[0].Data, []byte(secret))
	})
	if c, err := store.Conversation(ctx, conv); err != nil || c.Title != title {
		t.Errorf("history's title %q, %v; want %q", c.Title, err, title)
	}
	waitFor(t, time.Minute, "alice's message found by search", func() bool {
		r, err := sys.SearchIndex().Search(ctx, search.Query{Text: "swordfish", Conversations: []string{conv}, Limit: 10})
		return err == nil && len(r.Hits) == 1
	})

	// The log holds none of it in clear.
	events := kafkatest.ReadAll(t, sys.Kafka(), sys.TopicNames().Topic(schemas.TopicEvents))
	sealed := 0
	for _, m := range events {
		for _, w := range []string{"swordfish", title, bobs} {
			if bytes.Contains(m.Value, []byte(w)) {
				t.Errorf("chat.events %d/%d holds %q in clear", m.Partition, m.Offset, w)
			}
		}
		for _, h := range m.Headers {
			if h.Key == schemas.HeaderContentType && string(h.Value) == schemas.ContentTypeSealed {
				sealed++
			}
		}
	}
	if sealed != 3 {
		t.Errorf("%d sealed records in chat.events; want 3 (the creation, two messages)", sealed)
	}
	// Nor do the commands that asked for them: the gateway seals them.
	sealed = 0
	for _, m := range kafkatest.ReadAll(t, sys.Kafka(), sys.TopicNames().Topic(schemas.TopicCommands)) {
		for _, w := range []string{"swordfish", title, bobs} {
			if bytes.Contains(m.Value, []byte(w)) {
				t.Errorf("chat.commands %d/%d holds %q in clear", m.Partition, m.Offset, w)
			}
		}
		for _, h := range m.Headers {
			if h.Key == schemas.HeaderContentType && string(h.Value) == schemas.ContentTypeSealed {
				sealed++
			}
		}
	}
	if sealed != 3 {
		t.Errorf("%d sealed records in chat.commands; want 3 (the creation, two messages)", sealed)
	}

	// Only an administrator erases.
	if status, out := call("bob", "POST", "/v1/users/alice/erase", ""); status != http.StatusForbidden || out["code"] != "forbidden" {
		t.Errorf("bob erasing alice: %d %v; want 403 forbidden", status, out)
	}
	status, out := call("olga", "POST", "/v1/users/alice/erase", "")
	if status != http.StatusOK || out["subject_ref"] != schemas.ErasureRef("alice") {
		t.Fatalf("olga erasing alice: %d %v", status, out)
	}
	audit := kafkatest.ReadAll(t, sys.Kafka(), sys.TopicNames().Topic(schemas.TopicAudit))
	if len(audit) != 1 || string(audit[0].Key) != schemas.ErasureRef("alice") {
		t.Fatalf("chat.audit holds %d records; want alice's erasure keyed by her reference", len(audit))
	}
	check, err := schemacheck.New()
	if err != nil {
		t.Fatal(err)
	}
	if a, err := kafkalog.Decode(audit[0]); err != nil || a.Type != schemas.TypeUserErased || a.Subject != schemas.ErasureRef("alice") {
		t.Errorf("the audit record's attributes %+v, %v", a, err)
	} else if err := check.Validate(a.Type, audit[0].Value); err != nil {
		t.Errorf("the audit record breaks its schema: %v", err)
	}
	for _, h := range append(audit[0].Headers, kafka.Header{Key: "value", Value: audit[0].Value}, kafka.Header{Key: "key", Value: audit[0].Key}) {
		if bytes.Contains(h.Value, []byte("alice")) {
			t.Errorf("the audit record names alice in %s: %s", h.Key, h.Value)
		}
	}

	// The live projections apply the erasure from chat.audit: history
	// and the index no longer hold her words, Bob's stay.
	waitFor(t, time.Minute, "alice's message blanked in the live history", func() bool {
		p, err := store.Page(ctx, conv, history.PageQuery{Forward: true, Limit: 10})
		return err == nil && len(p.Events) == 2 && !bytes.Contains(p.Events[0].Data, []byte("swordfish")) && bytes.Contains(p.Events[1].Data, []byte(bobs))
	})
	if c, err := store.Conversation(ctx, conv); err != nil || c.Title != "" || c.LastMessage == nil || c.LastMessage.Body != bobs {
		t.Errorf("live conversation after the erasure: %+v, %v; want no title, bob's preview", c, err)
	}
	// The gateway's cached summary too (this process's hub is told once
	// the store has applied the erasure).
	waitFor(t, time.Minute, "the conversation served without her title", func() bool {
		status, c := call("bob", "GET", "/v1/conversations/"+conv, "")
		return status == http.StatusOK && c["title"] == nil && c["created_by"] == "alice"
	})
	waitFor(t, time.Minute, "alice's message no longer found by search", func() bool {
		r, err := sys.SearchIndex().Search(ctx, search.Query{Text: "swordfish", Conversations: []string{conv}, Limit: 10})
		return err == nil && len(r.Hits) == 0
	})
	if r, err := sys.SearchIndex().Search(ctx, search.Query{Text: "hello", Conversations: []string{conv}, Limit: 10}); err != nil || len(r.Hits) != 1 {
		t.Errorf("bob's message in the index after the erasure: %v, %v", r.Hits, err)
	}
	// The store flushes and compacts after blanking: wait for that.
	waitFor(t, time.Minute, "the live store's files without her content", func() bool {
		return len(dirHolds(t, filepath.Join(cfg.DataDir, "history"), "swordfish", title)) == 0
	})
	if found := dirHolds(t, filepath.Join(cfg.DataDir, "history"), bobs); len(found) == 0 {
		t.Error("the scan finds not even bob's message in the live store's files: it proves nothing")
	}

	// A history store rebuilt from the log with the key service holds
	// nothing of hers, and all of Bob's: the same as the live one.
	freshDir := t.TempDir()
	fresh, err := pebblestore.Open(freshDir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := rebuild.History(ctx, rebuild.HistoryConfig{
		Config: rebuild.Config{Kafka: sys.Kafka(), Opener: sys.Keys()},
		Names:  sys.TopicNames(), Live: store, Fresh: fresh,
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := fresh.Page(ctx, conv, history.PageQuery{Forward: true, Limit: 10})
	if err != nil || len(p.Events) != 2 {
		t.Fatalf("rebuilt page: %v, %d events", err, len(p.Events))
	}
	var a, b schemas.MessageSentV2
	_ = json.Unmarshal(p.Events[0].Data, &a)
	_ = json.Unmarshal(p.Events[1].Data, &b)
	if a.SenderID != "alice" || a.Body != "" || a.Seq != 1 || b.Body != bobs {
		t.Errorf("rebuilt messages %+v and %+v; want alice's blank (metadata kept) and bob's intact", a, b)
	}
	if c, err := fresh.Conversation(ctx, conv); err != nil || c.Title != "" || len(c.Members) != 2 {
		t.Errorf("rebuilt conversation: title %q, %d members, %v; want no title, both members", c.Title, len(c.Members), err)
	}
	if rep.Records == 0 || len(rep.Differences) != 0 {
		t.Errorf("report %+v: the live store, blanked live, should be what the rebuild gives", rep)
	}
	if err := fresh.Close(); err != nil {
		t.Fatal(err)
	}
	if found := dirHolds(t, freshDir, "swordfish", title); len(found) > 0 {
		t.Errorf("the rebuilt store's files hold her content: %v", found)
	}
	if found := dirHolds(t, freshDir, bobs); len(found) == 0 {
		t.Error("the scan finds not even bob's message in the rebuilt store's files: it proves nothing")
	}

	// A replay with the key service: bob's in clear, hers blank.
	var nd bytes.Buffer
	sink := replay.NewNDJSON(&nd)
	if _, err := replay.Run(ctx, replay.Config{Kafka: sys.Kafka(), Topic: sys.TopicNames().Topic(schemas.TopicEvents), FromOffset: -1, Opener: sys.Keys()}, sink); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(nd.Bytes(), []byte(bobs)) || bytes.Contains(nd.Bytes(), []byte("swordfish")) || bytes.Contains(nd.Bytes(), []byte(title)) {
		t.Errorf("replay after the erasure:\n%s", nd.String())
	}
}
