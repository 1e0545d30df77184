package systemtest_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/app"
)

// searchUntil polls a search until it has results, and returns the first.
func searchUntil(t *testing.T, a api, q string) map[string]any {
	t.Helper()
	var first map[string]any
	if !within(30*time.Second, func() bool {
		status, out := a.do("GET", q, nil)
		if status != http.StatusOK {
			t.Fatalf("search: %d %v", status, out)
		}
		if rs := out["results"].([]any); len(rs) > 0 {
			first = rs[0].(map[string]any)
			return true
		}
		return false
	}) {
		t.Fatal("the message was never found")
	}
	return first
}

// TestSearch: a member finds a message once it is indexed; a non-member,
// and a user with a forged conversation filter, see nothing of it.
func TestSearch(t *testing.T) {
	sys := startSystem(t, t.TempDir())
	defer stopSystem(t, sys)
	addr := sys.HTTPAddr()
	alice := api{t, addr, token(t, "alice", time.Hour)}
	bob := api{t, addr, token(t, "bob", time.Hour)}
	carol := api{t, addr, token(t, "carol", time.Hour)}

	conv := alice.createDirect("bob")
	status, out := alice.do("POST", "/v1/conversations/"+conv+"/messages",
		map[string]any{"command_id": "s1", "body": "The quarterly Zeppelin review is on Friday"})
	if status != http.StatusCreated {
		t.Fatalf("send: %d %v", status, out)
	}
	q := "/v1/search?q=" + url.QueryEscape("zeppelin friday")
	hit := searchUntil(t, bob, q)
	if hit["conversation_id"] != conv || hit["seq"] != float64(1) || hit["sender_id"] != "alice" {
		t.Errorf("hit %v, want alice's message seq 1 in %s", hit, conv)
	}
	if s, _ := hit["snippet"].(string); s != "The quarterly <mark>Zeppelin</mark> review is on <mark>Friday</mark>" {
		t.Errorf("snippet %q", s)
	}
	// The message is indexed now, so what the others see is final.
	if status, out := carol.do("GET", q, nil); status != http.StatusOK || len(out["results"].([]any)) != 0 {
		t.Errorf("a non-member's search: %d %v, want no results", status, out)
	}
	if status, out := carol.do("GET", q+"&conversation_id="+conv, nil); status != http.StatusForbidden || out["code"] != "not_member" {
		t.Errorf("a forged conversation filter: %d %v, want 403 not_member", status, out)
	}
	if status, out := bob.do("GET", "/v1/search?q="+url.QueryEscape(`"zeppelin`), nil); status != http.StatusBadRequest || out["code"] != "invalid_request" {
		t.Errorf("a query syntax error: %d %v, want 400 invalid_request", status, out)
	}
}

// TestSearchRebuild: `parley project search --rebuild` reindexes from
// offset 0 into a new generation; the restarted system finds the
// messages through it.
func TestSearchRebuild(t *testing.T) {
	dir := t.TempDir()
	sys := startSystem(t, dir)
	alice := api{t, sys.HTTPAddr(), token(t, "alice", time.Hour)}
	conv := alice.createDirect("bob")
	for _, body := range []string{"first mention of the aardvark", "a second aardvark appears"} {
		status, out := alice.do("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"command_id": strings.Fields(body)[0], "body": body})
		if status != http.StatusCreated {
			t.Fatalf("send: %d %v", status, out)
		}
	}
	searchUntil(t, alice, "/v1/search?q=aardvark")
	stopSystem(t, sys)

	cfg, err := app.Load("rebuild", []string{"-data-dir", dir, "-kafka-listen", "127.0.0.1:0", "-partitions", "4", "-log-level", "warn"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := app.RebuildSearch(ctx, cfg, &progress, cfg.Logger(io.Discard)); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, progress.String())
	}
	if !strings.Contains(progress.String(), "search rebuild: done") {
		t.Errorf("rebuild printed %q, want a final progress line", progress.String())
	}

	sys = startSystem(t, dir)
	defer stopSystem(t, sys)
	alice = api{t, sys.HTTPAddr(), alice.token}
	status, out := alice.do("GET", "/v1/search?q=aardvark&sort=recent", nil)
	if status != http.StatusOK || len(out["results"].([]any)) != 2 {
		t.Fatalf("after the rebuild: %d %v, want both messages", status, out)
	}
}

// TestSearchIndexOfAnEarlierVersionIsRebuiltAtStart: a system that finds
// a search index made with an older mapping serves it and rebuilds it
// from the log beside it. The index put in place here is empty and the
// search projection's offsets are past the first message, so only the
// rebuild can make that message findable; the second, sent while the
// rebuild may be running, must be findable after it too.
func TestSearchIndexOfAnEarlierVersionIsRebuiltAtStart(t *testing.T) {
	dir := t.TempDir()
	sys := startSystem(t, dir)
	alice := api{t, sys.HTTPAddr(), token(t, "alice", time.Hour)}
	conv := alice.createDirect("bob")
	send := func(id, body string) {
		t.Helper()
		if status, out := alice.do("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"command_id": id, "body": body}); status != http.StatusCreated {
			t.Fatalf("send: %d %v", status, out)
		}
	}
	send("m1", "first mention of the okapi")
	searchUntil(t, alice, "/v1/search?q=okapi")
	stopSystem(t, sys)

	index := filepath.Join(dir, "search")
	if err := os.RemoveAll(index); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(index, os.DirFS(filepath.Join("..", "..", "projections", "search", "blevestore", "testdata", "before-order-key"))); err != nil {
		t.Fatal(err)
	}
	sys = startSystem(t, dir)
	defer stopSystem(t, sys)
	alice.base = sys.HTTPAddr()
	send("m2", "a second okapi appears")
	var got []any
	if !within(30*time.Second, func() bool {
		status, out := alice.do("GET", "/v1/search?q=okapi&sort=recent", nil)
		if status != http.StatusOK {
			t.Fatalf("search: %d %v", status, out)
		}
		got = out["results"].([]any)
		return len(got) == 2
	}) {
		t.Fatalf("after the upgrade the search finds %v, want both messages", got)
	}
	for i, want := range []float64{2, 1} {
		if seq := got[i].(map[string]any)["seq"]; seq != want {
			t.Errorf("result %d is seq %v, want %v", i, seq, want)
		}
	}
	if cur, err := os.ReadFile(filepath.Join(index, "CURRENT")); err != nil || strings.TrimSpace(string(cur)) != "gen-000002" {
		t.Errorf("CURRENT is %q (%v), want the rebuilt gen-000002", cur, err)
	}
}
