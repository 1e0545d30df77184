package main

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/consumers/dlqtest"
	"github.com/parley-chat/parley/gateway/gatewaytest"
	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/push"
	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/schemas"
)

// After a mixed workload through the HTTP API — a group and a direct
// conversation, messages and a reply, edits, a deletion, reactions added
// and removed, members added and removed, a rename, read markers — both
// verified rebuilds find the history store, the search index and the
// push store to be exactly what the log says: with content in clear, and
// sealed.
func TestRebuildsAfterAMixedWorkloadFindNoDifference(t *testing.T) {
	t.Parallel()
	for _, sealed := range []bool{false, true} {
		t.Run(map[bool]string{false: "in clear", true: "sealed"}[sealed], func(t *testing.T) {
			t.Parallel()
			rebuildsAfterAMixedWorkload(t, sealed)
		})
	}
}

func rebuildsAfterAMixedWorkload(t *testing.T, sealed bool) {
	dir := t.TempDir()
	settings := runSettings(dir)
	if sealed {
		settings = runSettings(dir, kekSetting()...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sys := startRun(ctx, t, app.All, settings)
	api := gatewaytest.New(ctx, t, sys.HTTPAddr(), []byte(app.DevSecret))
	call := func(user, method, path, body string) map[string]any {
		t.Helper()
		status, out := api.Call(user, method, path, body)
		if status >= 300 {
			t.Fatalf("%s %s as %s: %d %v", method, path, user, status, out)
		}
		return out
	}
	g, _ := call("alice", "POST", "/v1/conversations", `{"kind":"group","title":"Plans","members":["bob","carol"]}`)["conversation_id"].(string)
	d, _ := call("dave", "POST", "/v1/conversations", `{"kind":"direct","members":["erin"]}`)["conversation_id"].(string)
	msgs := "/v1/conversations/" + g + "/messages"
	call("alice", "POST", msgs, `{"command_id":"m1","body":"first plan"}`)
	call("bob", "POST", msgs, `{"command_id":"m2","body":"a reply","reply_to":1}`)
	call("carol", "POST", msgs, `{"command_id":"m3","body":"to be deleted"}`)
	call("alice", "PATCH", msgs+"/1", `{"command_id":"e1","body":"first plan, edited"}`)
	call("carol", "DELETE", msgs+"/3?command_id=d1", "")
	call("bob", "PUT", msgs+"/1/reactions/"+url.PathEscape("👍")+"?command_id=r1", "")
	call("carol", "PUT", msgs+"/1/reactions/"+url.PathEscape("🎉")+"?command_id=r2", "")
	call("carol", "DELETE", msgs+"/1/reactions/"+url.PathEscape("🎉")+"?command_id=r3", "")
	call("alice", "POST", "/v1/conversations/"+g+"/members", `{"command_id":"a1","user_ids":["frank"]}`)
	call("alice", "DELETE", "/v1/conversations/"+g+"/members/carol?command_id=x1", "")
	call("alice", "PATCH", "/v1/conversations/"+g, `{"command_id":"t1","title":"Better plans"}`)
	call("frank", "POST", msgs, `{"command_id":"m4","body":"hello all"}`)
	call("bob", "POST", "/v1/conversations/"+g+"/read", `{"seq":4}`)
	call("dave", "POST", "/v1/conversations/"+d+"/messages", `{"command_id":"m5","body":"hi erin"}`)
	call("erin", "POST", "/v1/conversations/"+d+"/read", `{"seq":1}`)
	dlqtest.WaitFor(t, time.Minute, "the projections caught up", func() bool {
		c, err := sys.Store().Conversation(ctx, g)
		if err != nil || c.LastSeq < 12 {
			return false
		}
		r, err := sys.SearchIndex().Search(ctx, search.Query{Text: "hello", Conversations: []string{g}, Limit: 10})
		if err != nil || len(r.Hits) != 1 {
			return false
		}
		list, err := sys.Store().Conversations(ctx, "erin", 10)
		return err == nil && len(list) == 1 && list[0].ReadSeq == 1
	})
	if p, err := sys.Store().Page(ctx, g, history.PageQuery{Forward: true, Limit: 50}); err != nil || len(p.Events) < 10 {
		t.Fatalf("the group's history: %v, %d events", err, len(p.Events))
	}
	// The push role has applied everything written when its group has
	// committed the ends of both topics.
	k := kafkatest.Cluster{Cluster: sys.Kafka(), Names: sys.TopicNames()}
	dlqtest.WaitCommitted(t, k, schemas.GroupPush, schemas.TopicEvents)
	dlqtest.WaitCommitted(t, k, schemas.GroupPush, schemas.TopicReceipts)
	if err := sys.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, what := range []string{"history", "search", "push"} {
		var out, errOut bytes.Buffer
		if err := run(ctx, append([]string{"rebuild", what}, settings...), noEnv, nil, &out, &errOut); err != nil {
			t.Errorf("rebuild %s: %v\n%s%s", what, err, out.String(), errOut.String())
			continue
		}
		if !strings.Contains(out.String(), " 0 differ") || strings.Contains(out.String(), "differs:") {
			t.Errorf("rebuild %s printed:\n%s", what, out.String())
		}
	}
	// The push store altered behind the log's back: bob's read marker
	// moved. The rebuild says so, and exits 1.
	ps, err := push.OpenStore(filepath.Join(dir, "push", "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	if err := push.RebuildProjection(ps).Apply(ctx, []push.Item{{Type: schemas.TypeReceipt, Time: at,
		Value: &schemas.ReceiptV1{ConversationID: g, UserID: "bob", Kind: schemas.ReceiptRead, Seq: 12, At: at}}}); err != nil {
		t.Fatal(err)
	}
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err = run(ctx, append([]string{"rebuild", "push"}, settings...), noEnv, nil, &out, &errOut)
	if !errors.Is(err, app.ErrRebuildDiffers) || exitCode(err) != 1 {
		t.Errorf("rebuild push of an altered store: %v (exit %d); want ErrRebuildDiffers, exit 1\n%s", err, exitCode(err), errOut.String())
	}
	if !strings.Contains(out.String(), "differs: user/bob live=") || !strings.Contains(out.String(), " 1 differ") {
		t.Errorf("rebuild push of an altered store printed:\n%s", out.String())
	}
}
