package systemtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/pebblestore"
	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/projections/search/blevestore"
	"github.com/parley-chat/parley/schemas"
)

// must does a request and fails the test unless it answers with status.
func (a api) must(status int, method, path string, body any) map[string]any {
	a.t.Helper()
	got, out := a.do(method, path, body)
	if got != status {
		a.t.Fatalf("%s %s: %d %v, want %d", method, path, got, out, status)
	}
	return out
}

// group creates a group of a with members and returns its id.
func (a api) group(commandID, title string, members ...string) string {
	a.t.Helper()
	out := a.must(http.StatusCreated, "POST", "/v1/conversations", map[string]any{"kind": "group", "title": title, "members": members, "command_id": commandID})
	return out["conversation_id"].(string)
}

// post sends a message (optionally a reply) and returns its seq.
func (a api) post(conv, commandID, body string, replyTo int) int {
	a.t.Helper()
	req := map[string]any{"command_id": commandID, "body": body}
	if replyTo > 0 {
		req["reply_to"] = replyTo
	}
	out := a.must(http.StatusCreated, "POST", "/v1/conversations/"+conv+"/messages", req)
	return int(out["seq"].(float64))
}

// seqOf returns the seq an accepted command answered with.
func seqOf(out map[string]any) int { return int(out["seq"].(float64)) }

// eventTypes returns the event frames of conv as seq → event type.
func (w *wsClient) eventTypes(conv string) map[int]string {
	out := map[int]string{}
	for _, f := range w.snapshot() {
		if f["type"] == "event" && f["conversation_id"] == conv {
			out[int(f["seq"].(float64))] = f["event_type"].(string)
		}
	}
	return out
}

// TestGroupLifecycle: every kind of event — membership, roles, title,
// archive, messages, replies, edits, reactions, deletions — reaches the
// members' sockets in seq order, live and on resume after a reconnect; a
// removed member gets the removal and nothing after it, and can no longer
// read, resume or search the group; replaying chat.events and
// chat.receipts into fresh stores reproduces inbox, history and search.
func TestGroupLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (every event kind live, on resume and replayed into fresh stores, about 5 s); make test runs it")
	}
	sys := startSystem(t, t.TempDir())
	defer stopSystem(t, sys)
	addr := sys.HTTPAddr()
	olga := api{t, addr, token(t, "olga", time.Hour)}
	mia := api{t, addr, token(t, "mia", time.Hour)}
	max := api{t, addr, token(t, "max", time.Hour)}
	zoe := api{t, addr, token(t, "zoe", time.Hour)}

	conv := olga.group("life", "Lighthouse keepers", "mia", "max")
	p := "/v1/conversations/" + conv
	miaLive := dial(t, addr, mia.token, false)
	miaPhone := dial(t, addr, mia.token, false) // goes away mid-way, then resumes
	maxWS := dial(t, addr, max.token, false)

	want := map[int]string{}
	expect := func(seq int, typ string) {
		t.Helper()
		if want[seq] != "" {
			t.Fatalf("seq %d twice", seq)
		}
		want[seq] = typ
	}
	m1 := olga.post(conv, "m1", "the lamp needs oil", 0)
	expect(m1, schemas.TypeMessageSentV2)
	expect(seqOf(olga.must(200, "POST", p+"/members", map[string]any{"user_ids": []string{"zoe"}, "command_id": "add-zoe"})), schemas.TypeMembersAdded)
	expect(seqOf(olga.must(200, "PUT", p+"/members/mia/role", map[string]any{"role": "admin"})), schemas.TypeRolesChanged)
	m2 := mia.post(conv, "m2", "I will bring the oil", m1)
	expect(m2, schemas.TypeMessageSentV2)
	miaPhone.waitFor(func([]map[string]any) bool { return slices.Contains(miaPhone.events(conv), m2) })
	_ = miaPhone.c.CloseNow()

	expect(seqOf(mia.must(200, "PATCH", p, map[string]any{"title": "Keepers of the light"})), schemas.TypeRenamed)
	expect(seqOf(max.must(200, "PUT", fmt.Sprintf("%s/messages/%d/reactions/%s", p, m2, url.PathEscape("🔥")), nil)), schemas.TypeReactionAdded)
	expect(seqOf(zoe.must(200, "PUT", fmt.Sprintf("%s/messages/%d/reactions/%s", p, m2, url.PathEscape("🔥")), nil)), schemas.TypeReactionAdded)
	expect(seqOf(zoe.must(200, "DELETE", fmt.Sprintf("%s/messages/%d/reactions/%s", p, m2, url.PathEscape("🔥")), nil)), schemas.TypeReactionRemoved)
	expect(seqOf(mia.must(200, "PATCH", fmt.Sprintf("%s/messages/%d", p, m2), map[string]any{"body": "I will bring the kerosene"})), schemas.TypeMessageEdited)
	m3 := max.post(conv, "m3", "wrong chat, sorry", 0)
	expect(m3, schemas.TypeMessageSentV2)
	expect(seqOf(olga.must(200, "DELETE", fmt.Sprintf("%s/messages/%d", p, m3), nil)), schemas.TypeMessageDeleted)
	removed := seqOf(mia.must(200, "DELETE", p+"/members/max", nil))
	expect(removed, schemas.TypeMemberRemoved)
	m4 := olga.post(conv, "m4", "max is off the rota", 0)
	expect(m4, schemas.TypeMessageSentV2)
	expect(seqOf(olga.must(200, "PATCH", p, map[string]any{"archived": true})), schemas.TypeArchived)
	if status, out := mia.do("POST", p+"/messages", map[string]any{"command_id": "late", "body": "hello?"}); status != http.StatusConflict || out["code"] != "archived" {
		t.Errorf("sending to an archived group: %d %v, want 409 archived", status, out)
	}
	expect(seqOf(olga.must(200, "PATCH", p, map[string]any{"archived": false})), schemas.TypeArchived)
	expect(seqOf(zoe.must(200, "POST", p+"/leave", map[string]any{"command_id": "bye"})), schemas.TypeMemberLeft)
	last := len(want)
	if got := slices.Sorted(maps.Keys(want)); !slices.Equal(got, seqRange(1, last)) {
		t.Fatalf("the seqs of the events are %v, want 1..%d", got, last)
	}

	// Live: mia's socket got every event once, in seq order, of every type.
	miaLive.waitFor(func([]map[string]any) bool { return len(miaLive.events(conv)) >= last })
	if got := miaLive.events(conv); !slices.Equal(got, seqRange(1, last)) {
		t.Errorf("mia's socket: %v, want 1..%d", got, last)
	}
	if got := miaLive.eventTypes(conv); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("mia's socket event types:\n got %v\nwant %v", got, want)
	}
	// Resume: mia's phone comes back with the last seq it had.
	phone := dial(t, addr, mia.token, false)
	phone.send(map[string]any{"type": "resume", "id": "r", "conversations": map[string]int{conv: m2}})
	phone.await(func(f map[string]any) bool { return f["type"] == "resumed" && f["id"] == "r" })
	if got := phone.events(conv); !slices.Equal(got, seqRange(m2+1, last)) {
		t.Errorf("resumed phone: %v, want %d..%d", got, m2+1, last)
	}
	for seq, typ := range phone.eventTypes(conv) {
		if want[seq] != typ {
			t.Errorf("resumed event %d is a %s, want %s", seq, typ, want[seq])
		}
	}
	// The resumed deleted message is a tombstone: the text is gone.
	for _, f := range phone.snapshot() {
		if f["type"] == "event" && f["seq"] == float64(m3) {
			if body := f["data"].(map[string]any)["body"]; body != "" {
				t.Errorf("the deleted message came back on resume with its text %q", body)
			}
		}
	}

	// Max: the removal, then nothing.
	maxWS.waitFor(func([]map[string]any) bool { return slices.Contains(maxWS.events(conv), removed) })
	if status, out := max.do("GET", p+"/history", nil); status != http.StatusForbidden || out["code"] != "not_member" {
		t.Errorf("removed member's history: %d %v, want 403 not_member", status, out)
	}
	maxWS.send(map[string]any{"type": "resume", "id": "r", "conversations": map[string]int{conv: 1}})
	if f := maxWS.await(func(f map[string]any) bool { return f["id"] == "r" && f["type"] == "error" }); f["code"] != "not_member" {
		t.Errorf("removed member's resume: %v", f)
	}
	searchUntil(t, olga, "/v1/search?q=rota")
	for _, q := range []string{"rota", "oil", "conversation_id=" + conv} {
		path := "/v1/search?q=" + url.QueryEscape(q)
		if q[0] == 'c' {
			path = "/v1/search?q=oil&" + q
		}
		status, out := max.do("GET", path, nil)
		if status == http.StatusOK && len(out["results"].([]any)) != 0 {
			t.Errorf("removed member's search %q found %v", q, out["results"])
		}
	}
	eventually(t, func() bool {
		_, out := max.do("GET", "/v1/conversations", nil)
		return len(out["conversations"].([]any)) == 0
	})
	// Barrier: a new group of max's on the group's partition of
	// chat.events, created after every event of the group. The partition
	// is read in order and max's session writes to his socket in order:
	// once he has the new group's creation, anything of the group wrongly
	// routed to him after his removal has arrived before it.
	marker := groupOnPartitionOf(t, sys, olga, conv, "max")
	maxWS.waitFor(func([]map[string]any) bool { return len(maxWS.events(marker)) > 0 })
	if got := maxWS.events(conv); !slices.Equal(got, seqRange(1, removed)) {
		t.Errorf("max's socket: %v, want 1..%d and nothing after his removal", got, removed)
	}

	// Search: the edit is found by its new word, the deleted message not
	// at all.
	hit := searchUntil(t, olga, "/v1/search?q=kerosene")
	if hit["seq"] != float64(m2) {
		t.Errorf("searching the edited word found %v, want m2", hit)
	}
	if _, out := olga.do("GET", "/v1/search?q=sorry", nil); len(out["results"].([]any)) != 0 {
		t.Errorf("the deleted message is still found: %v", out["results"])
	}

	// History: the summary and every message's state.
	c := olga.must(200, "GET", p, nil)
	if c["title"] != "Keepers of the light" || c["archived"] != false || len(c["members"].([]any)) != 2 {
		t.Errorf("conversation %v, want the new title, unarchived, olga and mia", c)
	}
	for _, m := range c["members"].([]any) {
		if mm := m.(map[string]any); mm["user_id"] == "mia" && mm["role"] != "admin" {
			t.Errorf("mia's role %v, want admin", mm["role"])
		}
	}
	events := olga.history(conv)
	byseq := map[int]map[string]any{}
	for _, e := range events {
		byseq[int(e["seq"].(float64))] = e
	}
	st, _ := byseq[m2]["message"].(map[string]any)
	if st == nil || st["body"] != "I will bring the kerosene" || st["edited_at"] == nil || len(st["reactions"].([]any)) != 1 {
		t.Errorf("m2's state %v, want the edit and max's 🔥", st)
	} else if r := st["reactions"].([]any)[0].(map[string]any); r["emoji"] != "🔥" || fmt.Sprint(r["users"]) != "[max]" {
		t.Errorf("m2's reactions %v, want 🔥 by max only", st["reactions"])
	}
	if d := byseq[m2]["data"].(map[string]any); d["reply_to"] != float64(m1) {
		t.Errorf("m2 replies to %v, want %d", d["reply_to"], m1)
	}
	st3, _ := byseq[m3]["message"].(map[string]any)
	if st3 == nil || st3["deleted"] != true || st3["body"] != "" || byseq[m3]["data"].(map[string]any)["body"] != "" {
		t.Errorf("m3 %v, want a tombstone without its text", byseq[m3])
	}
	thread := olga.must(200, "GET", fmt.Sprintf("%s/messages/%d/thread", p, m2), nil)
	if got := seqs(toMaps(thread["events"])); !slices.Equal(got, []int{m1, m2}) {
		t.Errorf("thread of m2: %v, want [%d %d]", got, m1, m2)
	}

	checkReplay(t, sys, []string{"olga", "mia", "max", "zoe"}, []string{"oil", "rota", "sorry", "kerosene"})
}

// groupOnPartitionOf has a create groups of members until one lands on
// conv's partition of chat.events (murmur2 of the conversation ID, as
// Parley's writers place it), and returns that group.
func groupOnPartitionOf(t *testing.T, sys *app.System, a api, conv string, members ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := kafkalog.Partitions(ctx, kafkalog.NewClient(sys.Kafka()), schemas.TopicEvents)
	if err != nil {
		t.Fatal(err)
	}
	partitions := make([]int, n)
	for i := range partitions {
		partitions[i] = i
	}
	var b kafka.Murmur2Balancer
	want := b.Balance(kafka.Message{Key: []byte(conv)}, partitions...)
	for i := range 50 * n {
		g := a.group(fmt.Sprintf("marker-%s-%d", conv, i), "Marker", members...)
		if b.Balance(kafka.Message{Key: []byte(g)}, partitions...) == want {
			return g
		}
	}
	t.Fatalf("no group landed on %s's partition", conv)
	return ""
}

func toMaps(v any) []map[string]any {
	var out []map[string]any
	for _, e := range v.([]any) {
		out = append(out, e.(map[string]any))
	}
	return out
}

// checkReplay replays chat.events and chat.receipts from offset 0 into a
// fresh history store and search index, and compares them with the
// running ones: every user's inbox, every conversation's events and
// receipts, and the search results of queries.
func checkReplay(t *testing.T, sys *app.System, users, queries []string) {
	t.Helper()
	ctx := context.Background()
	running := sys.Store()
	// Wait for the running projections to have everything.
	for _, m := range kafkatest.ReadAll(t, sys.Kafka(), schemas.TopicEvents) {
		attrs, err := kafkalog.Decode(m)
		if err != nil {
			t.Fatal(err)
		}
		waitConversation(t, running, attrs.Subject, attrs.Seq)
	}
	fresh, err := pebblestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	replay(t, sys.Kafka(), fresh)
	var receipts []history.Receipt
	for _, m := range kafkatest.ReadAll(t, sys.Kafka(), schemas.TopicReceipts) {
		attrs, err := kafkalog.Decode(m)
		if err != nil {
			t.Fatal(err)
		}
		r, err := history.ReceiptProjection{}.Decode(recordOf(m, attrs))
		if err != nil {
			t.Fatal(err)
		}
		receipts = append(receipts, r)
	}
	if err := fresh.ApplyReceipts(ctx, receipts); err != nil {
		t.Fatal(err)
	}
	convs := map[string]bool{}
	for _, u := range users {
		var x, y []history.Conversation
		eventuallyT(t, u+"'s inbox to match the replay", func() bool {
			x, _ = running.Conversations(ctx, u, 1000)
			y, _ = fresh.Conversations(ctx, u, 1000)
			return sameJSON(x, y)
		}, func() string { return fmt.Sprintf("running %s\nreplayed %s", asJSON(x), asJSON(y)) })
		for _, c := range x {
			convs[c.ID] = true
		}
	}
	for id := range convs {
		a, b := allEvents(t, running, id), allEvents(t, fresh, id)
		if !sameJSON(a, b) {
			t.Errorf("events of %s differ:\nrunning %s\nreplayed %s", id, asJSON(a), asJSON(b))
		}
		ra, _ := running.Receipts(ctx, id)
		rb, _ := fresh.Receipts(ctx, id)
		if !sameJSON(ra, rb) {
			t.Errorf("receipts of %s differ: running %+v, replayed %+v", id, ra, rb)
		}
	}
	// Search: a fresh index fed the same events answers the same.
	idx, err := blevestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	var docs []search.Doc
	for _, m := range kafkatest.ReadAll(t, sys.Kafka(), schemas.TopicEvents) {
		attrs, _ := kafkalog.Decode(m)
		d, err := search.Projection{}.Decode(recordOf(m, attrs))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d)
	}
	if err := (search.Projection{Index: idx}).Apply(ctx, docs); err != nil {
		t.Fatal(err)
	}
	ids := slices.Sorted(maps.Keys(convs))
	for _, q := range queries {
		var want, got search.Result
		eventuallyT(t, "search "+q+" to match the replay", func() bool {
			want, _ = sys.SearchIndex().Search(ctx, search.Query{Text: q, Conversations: ids, Limit: 50})
			got, _ = idx.Search(ctx, search.Query{Text: q, Conversations: ids, Limit: 50})
			return hitsOf(want) == hitsOf(got)
		}, func() string { return fmt.Sprintf("running %s, replayed %s", hitsOf(want), hitsOf(got)) })
	}
}

// asJSON renders v for comparison: pointers followed, times in RFC 3339.
func asJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("unencodable: %v", err)
	}
	return string(b)
}

func sameJSON(a, b any) bool { return asJSON(a) == asJSON(b) }

func hitsOf(r search.Result) string {
	var s []string
	for _, h := range r.Hits {
		s = append(s, fmt.Sprintf("%s/%d", h.ConversationID, h.Seq))
	}
	return fmt.Sprint(s)
}

func eventuallyT(t *testing.T, what string, cond func() bool, detail func() string) {
	t.Helper()
	if !within(30*time.Second, cond) {
		t.Fatalf("waiting for %s: %s", what, detail())
	}
}

// TestUnreadAcrossDevices: a direct conversation with bob on two devices
// while alice sends concurrently; bob's devices mark read concurrently,
// one with a lower marker, which never moves the marker back; the unread
// counts, the totals, the receipts alice sees and the receipt frames on
// bob's other device all agree.
func TestUnreadAcrossDevices(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (concurrent senders and readers on two devices, about 5 s); make test runs it")
	}
	sys := startSystem(t, t.TempDir())
	defer stopSystem(t, sys)
	addr := sys.HTTPAddr()
	alice := api{t, addr, token(t, "alice", time.Hour)}
	bob := api{t, addr, token(t, "bob", time.Hour)}
	conv := alice.createDirect("bob")
	grp := alice.group("g", "Readers", "bob", "carol")
	laptop := dial(t, addr, bob.token, false)
	phone := dial(t, addr, bob.token, false)
	aliceWS := dial(t, addr, alice.token, false)

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() { alice.post(conv, fmt.Sprint("a", i), fmt.Sprint("note ", i), 0) })
	}
	for i := range 5 {
		wg.Go(func() { alice.post(grp, fmt.Sprint("g", i), fmt.Sprint("group note ", i), 0) })
	}
	wg.Wait()
	laptop.waitFor(func([]map[string]any) bool { return len(laptop.events(conv)) == 20 })
	// Both devices mark read at once: the laptop up to 12, the phone up
	// to 5 (it is behind). The higher marker wins whatever the order.
	var wg2 sync.WaitGroup
	wg2.Go(func() {
		laptop.send(map[string]any{"type": "read", "id": "rd", "conversation_id": conv, "seq": 12})
		laptop.await(func(f map[string]any) bool { return f["id"] == "rd" && f["type"] == "ack" })
	})
	wg2.Go(func() { bob.must(200, "POST", "/v1/conversations/"+conv+"/read", map[string]any{"seq": 5}) })
	wg2.Wait()
	// The inbox follows two logs: the read markers and the messages
	// (history applies each in its own consumer group). Wait for both.
	eventually(t, func() bool {
		_, out := bob.do("GET", "/v1/conversations", nil)
		caughtUp := 0
		for _, c := range toMaps(out["conversations"]) {
			switch c["conversation_id"] {
			case conv:
				if c["read_seq"] == float64(12) && c["last_seq"] == float64(20) {
					caughtUp++
				}
			case grp:
				if c["last_seq"] == float64(5) {
					caughtUp++
				}
			}
		}
		return caughtUp == 2
	})
	out := bob.must(200, "GET", "/v1/conversations", nil)
	for _, c := range toMaps(out["conversations"]) {
		want := map[string]float64{conv: 8, grp: 5}[c["conversation_id"].(string)]
		if c["unread"] != want {
			t.Errorf("%s: unread %v, want %v", c["conversation_id"], c["unread"], want)
		}
	}
	if out["unread_total"] != float64(13) || out["unread_conversations"] != float64(2) {
		t.Errorf("totals: %v unread in %v conversations, want 13 in 2", out["unread_total"], out["unread_conversations"])
	}
	// A lower marker afterwards changes nothing.
	if got := bob.must(200, "POST", "/v1/conversations/"+conv+"/read", map[string]any{"seq": 3}); got["read_seq"] != float64(12) {
		t.Errorf("a lower marker answered %v, want the recorded 12", got)
	}
	// The phone learnt of the laptop's read: a receipt frame for bob.
	phone.await(func(f map[string]any) bool {
		return f["type"] == "receipt" && f["user_id"] == "bob" && f["kind"] == "read" && f["seq"] == float64(12)
	})
	// Alice sees bob's read marker live and over HTTP, and delivered
	// markers up to the last message.
	aliceWS.await(func(f map[string]any) bool {
		return f["type"] == "receipt" && f["user_id"] == "bob" && f["kind"] == "read" && f["seq"] == float64(12)
	})
	eventually(t, func() bool {
		r := alice.must(200, "GET", "/v1/conversations/"+conv+"/receipts?seq=20", nil)
		return r["delivered"] == float64(1) && r["read"] == float64(0)
	})
	r := alice.must(200, "GET", "/v1/conversations/"+conv+"/receipts?seq=12", nil)
	if r["read"] != float64(1) || r["members"] != float64(1) {
		t.Errorf("receipts of seq 12: %v, want read by the one other member", r)
	}
	// Bob replies from the phone: sending marks everything read.
	bob.post(conv, "reply", "read them all", 0)
	eventually(t, func() bool {
		out := bob.must(200, "GET", "/v1/conversations", nil)
		return out["unread_total"] == float64(5)
	})
	// In the group, receipts are counts.
	bob.must(200, "POST", "/v1/conversations/"+grp+"/read", map[string]any{})
	eventually(t, func() bool {
		r := alice.must(200, "GET", "/v1/conversations/"+grp+"/receipts", nil)
		return r["read"] == float64(1) && r["members"] == float64(2) && r["receipts"] == nil
	})
	checkReplay(t, sys, []string{"alice", "bob", "carol"}, []string{"note"})
}

// TestLimitsAndBlocks: every limit refuses with a clear error and appends
// nothing to chat.events; a block stops direct messages both ways until
// it is lifted, and the same pair always gets the same conversation.
func TestLimitsAndBlocks(t *testing.T) {
	sys := startSystem(t, t.TempDir(), func(c *app.Config) { c.MaxMembers = 3; c.MaxReactions = 2; c.MaxTitleRunes = 10; c.MaxBodyBytes = 64 })
	defer stopSystem(t, sys)
	addr := sys.HTTPAddr()
	alice := api{t, addr, token(t, "alice", time.Hour)}
	bob := api{t, addr, token(t, "bob", time.Hour)}
	grp := alice.group("g", "Small", "bob")
	m := alice.post(grp, "m", "hi", 0)
	p := "/v1/conversations/" + grp
	before := logEnd(t, sys.Kafka())[schemas.TopicEvents]
	for _, c := range []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"a group over the size limit", "POST", "/v1/conversations", map[string]any{"kind": "group", "title": "Big", "members": []string{"b", "c", "d"}}, 422, "limit_exceeded"},
		{"a blank title", "PATCH", p, map[string]any{"title": "   "}, 400, "invalid_request"},
		{"adding past the size limit", "POST", p + "/members", map[string]any{"user_ids": []string{"c", "d"}}, 422, "limit_exceeded"},
		{"a title too long", "PATCH", p, map[string]any{"title": "Eleven runes"}, 400, "invalid_request"},
		{"a message too long", "POST", p + "/messages", map[string]any{"command_id": "x", "body": string(make([]byte, 65))}, 413, "too_large"},
		{"an edit too long", "PATCH", fmt.Sprintf("%s/messages/%d", p, m), map[string]any{"body": string(make([]byte, 65))}, 413, "too_large"},
		{"a reaction that is a word", "PUT", fmt.Sprintf("%s/messages/%d/reactions/ok", p, m), nil, 400, "invalid_request"},
		{"a reaction to no message", "PUT", fmt.Sprintf("%s/messages/99/reactions/%s", p, url.PathEscape("👍")), nil, 404, "message_not_found"},
		{"a reply to no message", "POST", p + "/messages", map[string]any{"command_id": "y", "body": "re", "reply_to": 99}, 404, "message_not_found"},
		{"a rename to the same title", "PATCH", p, map[string]any{"title": "Small"}, 409, "no_change"},
		{"both title and archived", "PATCH", p, map[string]any{"title": "X", "archived": true}, 400, "invalid_request"},
	} {
		if status, out := alice.do(c.method, c.path, c.body); status != c.status || out["code"] != c.code {
			t.Errorf("%s: %d %v, want %d %s", c.name, status, out, c.status, c.code)
		}
	}
	if status, out := bob.do("PATCH", fmt.Sprintf("%s/messages/%d", p, m), map[string]any{"body": "mine now"}); status != 403 || out["code"] != "forbidden" {
		t.Errorf("editing another's message: %d %v, want 403 forbidden", status, out)
	}
	for _, e := range []string{"👍", "🎉"} {
		alice.must(200, "PUT", fmt.Sprintf("%s/messages/%d/reactions/%s", p, m, url.PathEscape(e)), nil)
	}
	if status, out := bob.do("PUT", fmt.Sprintf("%s/messages/%d/reactions/%s", p, m, url.PathEscape("❤️")), nil); status != 422 || out["code"] != "limit_exceeded" {
		t.Errorf("a third emoji: %d %v, want 422 limit_exceeded", status, out)
	}
	if status, out := alice.do("PUT", fmt.Sprintf("%s/messages/%d/reactions/%s", p, m, url.PathEscape("👍")), nil); status != 409 || out["code"] != "no_change" {
		t.Errorf("the same reaction again: %d %v, want 409 no_change", status, out)
	}
	if got := logEnd(t, sys.Kafka())[schemas.TopicEvents]; got != before+2 {
		t.Errorf("chat.events grew by %d, want 2 (the two reactions): refusals append nothing", got-before)
	}

	// Blocks. Bob blocks carol before they ever talked.
	carol := api{t, addr, token(t, "carol", time.Hour)}
	out := bob.must(200, "PUT", "/v1/blocks/carol", nil)
	dc := out["conversation_id"].(string)
	if again := carol.createDirect("bob"); again != dc {
		t.Errorf("carol's direct conversation with bob is %s, the block's is %s", again, dc)
	}
	if status, out := carol.do("POST", "/v1/conversations/"+dc+"/messages", map[string]any{"command_id": "c1", "body": "hi bob"}); status != 403 || out["code"] != "blocked" {
		t.Errorf("carol writing to bob who blocks her: %d %v, want 403 blocked", status, out)
	}
	if status, out := bob.do("POST", "/v1/conversations/"+dc+"/messages", map[string]any{"command_id": "b1", "body": "hi carol"}); status != 403 || out["code"] != "blocked" {
		t.Errorf("bob writing while he blocks: %d %v, want 403 blocked", status, out)
	}
	if c := bob.must(200, "GET", "/v1/conversations/"+dc, nil); fmt.Sprint(c["blocked_by"]) != "[bob]" {
		t.Errorf("blocked_by %v, want [bob]", c["blocked_by"])
	}
	bob.must(200, "DELETE", "/v1/blocks/carol", nil)
	carol.post(dc, "c2", "hi bob", 0)
}

// TestInboxPages: the inbox lists conversations by last activity with
// title, preview and unread count, in pages that cover every
// conversation once.
func TestInboxPages(t *testing.T) {
	sys := startSystem(t, t.TempDir())
	defer stopSystem(t, sys)
	addr := sys.HTTPAddr()
	alice := api{t, addr, token(t, "alice", time.Hour)}
	bob := api{t, addr, token(t, "bob", time.Hour)}
	var order []string
	for i := range 5 {
		conv := alice.group(fmt.Sprint("inbox-", i), fmt.Sprint("Group ", i), "bob")
		bob.post(conv, "hello", fmt.Sprintf("hello from bob in %d, a long message that the preview keeps whole", i), 0)
		order = append([]string{conv}, order...) // newest first
		// Wall time must pass between the conversations' last activity
		// for "newest first" to have one order; nothing to observe.
		time.Sleep(5 * time.Millisecond)
	}
	eventually(t, func() bool {
		out := alice.must(200, "GET", "/v1/conversations", nil)
		return out["unread_total"] == float64(5)
	})
	var got []string
	cursor := ""
	for page := 0; ; page++ {
		out := alice.must(200, "GET", "/v1/conversations?limit=2&cursor="+cursor, nil)
		for _, c := range toMaps(out["conversations"]) {
			got = append(got, c["conversation_id"].(string))
			lm, _ := c["last_message"].(map[string]any)
			if lm == nil || lm["sender_id"] != "bob" || c["unread"] != float64(1) || c["title"] == "" {
				t.Errorf("inbox entry %v, want bob's message as preview, 1 unread and a title", c)
			}
		}
		next, _ := out["next_cursor"].(string)
		if next == "" {
			break
		}
		if page > 5 {
			t.Fatal("too many pages")
		}
		cursor = next
	}
	if !slices.Equal(got, order) {
		t.Errorf("inbox pages %v, want %v", got, order)
	}
	if status, out := alice.do("GET", "/v1/conversations?cursor=garbage!", nil); status != 400 {
		t.Errorf("a malformed cursor: %d %v", status, out)
	}
}
