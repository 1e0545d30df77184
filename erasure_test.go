package main

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/consumers/dlqtest"
	"github.com/parley-chat/parley/gateway/gatewaytest"
	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/pebblestore"
	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/projections/search/blevestore"
)

// The erasure procedure of the README, command by command: with content
// sealed, an administrator erases Carol; the live index and history stop
// holding her words; `parley replay -decrypt` then shows her message
// blank and Dan's in clear, a replay without -decrypt shows neither;
// `parley rebuild search` and `parley rebuild history`, with parley run
// stopped, find that the live index and store are what the log gives.
func TestErasureProcedure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	settings := runSettings(dir, append(kekSetting(), "-admin-users", "olga")...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sys := startRun(ctx, t, app.All, settings)
	api := gatewaytest.New(ctx, t, sys.HTTPAddr(), []byte(app.DevSecret))
	post := func(user, path, body string) (int, map[string]any) {
		t.Helper()
		return api.Call(user, http.MethodPost, path, body)
	}
	const hers, his = "carols-secret-recipe", "dans-open-letter"
	s, created := post("carol", "/v1/conversations", `{"kind":"group","title":"Kitchen","members":["dan"]}`)
	if s != http.StatusCreated && s != http.StatusOK {
		t.Fatalf("creating: %d %v", s, created)
	}
	conv, _ := created["conversation_id"].(string)
	if s, _ := post("carol", "/v1/conversations/"+conv+"/messages", `{"command_id":"c1","body":"`+hers+`"}`); s != http.StatusCreated {
		t.Fatalf("carol's message: %d", s)
	}
	if s, _ := post("dan", "/v1/conversations/"+conv+"/messages", `{"command_id":"d1","body":"`+his+`"}`); s != http.StatusCreated {
		t.Fatalf("dan's message: %d", s)
	}
	dlqtest.WaitFor(t, time.Minute, "both messages in history", func() bool {
		p, err := sys.Store().Page(ctx, conv, history.PageQuery{Forward: true, Limit: 10})
		return err == nil && len(p.Events) == 2
	})
	dlqtest.WaitFor(t, time.Minute, "both messages in the search index", func() bool {
		return hitsLive(ctx, sys, conv, "recipe") == 1 && hitsLive(ctx, sys, conv, "letter") == 1
	})
	if s, _ := post("olga", "/v1/users/carol/erase", ""); s != http.StatusOK {
		t.Fatalf("erasing carol: %d", s)
	}
	// The live projections apply the erasure from chat.audit.
	dlqtest.WaitFor(t, time.Minute, "her words gone from the live index", func() bool {
		return hitsLive(ctx, sys, conv, "recipe") == 0 && hitsLive(ctx, sys, conv, "letter") == 1
	})
	dlqtest.WaitFor(t, time.Minute, "her words gone from the live history", func() bool {
		p, err := sys.Store().Page(ctx, conv, history.PageQuery{Forward: true, Limit: 10})
		return err == nil && len(p.Events) == 2 && !bytes.Contains(p.Events[0].Data, []byte(hers)) && bytes.Contains(p.Events[1].Data, []byte(his))
	})
	if err := sys.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	replayOut := func(extra ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := run(ctx, append(append([]string{"replay", "-conversation", conv}, extra...), settings...), noEnv, nil, &out, &errOut); err != nil {
			t.Fatalf("replay %v: %v\n%s", extra, err, errOut.String())
		}
		return out.String()
	}
	if got := replayOut("-decrypt"); !strings.Contains(got, his) || strings.Contains(got, hers) {
		t.Errorf("replay -decrypt after the erasure: want dan's words and not carol's:\n%s", got)
	}
	if got := replayOut(); strings.Contains(got, his) || strings.Contains(got, hers) || !strings.Contains(got, `"sealed":true`) {
		t.Errorf("replay without -decrypt: want sealed events, no words:\n%s", got)
	}

	// Rebuilds from the log find what the live projections hold.
	if hits(t, dir, conv, "recipe") != 0 || hits(t, dir, conv, "letter") != 1 {
		t.Errorf("the index after the erasure: %d hits for her word, %d for his; want 0 and 1", hits(t, dir, conv, "recipe"), hits(t, dir, conv, "letter"))
	}
	for _, what := range []string{"search", "history"} {
		var out, errOut bytes.Buffer
		if err := run(ctx, append([]string{"rebuild", what}, settings...), noEnv, nil, &out, &errOut); err != nil {
			t.Fatalf("rebuild %s: %v\n%s%s", what, err, out.String(), errOut.String())
		}
		if !strings.Contains(out.String(), " 0 differ") {
			t.Errorf("rebuild %s after the erasure printed:\n%s", what, out.String())
		}
	}
	st, err := pebblestore.Open(filepath.Join(dir, "history"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := st.Page(ctx, conv, history.PageQuery{Forward: true, Limit: 10})
	if err != nil || len(p.Events) != 2 {
		t.Fatalf("history after the erasure: %v, %d events", err, len(p.Events))
	}
	if bytes.Contains(p.Events[0].Data, []byte(hers)) || !bytes.Contains(p.Events[1].Data, []byte(his)) {
		t.Errorf("history after the erasure: %s / %s; want carol's blank and dan's intact", p.Events[0].Data, p.Events[1].Data)
	}
}

// hits opens the embedded search index of dir and counts the messages of
// conv that word finds.
func hits(t *testing.T, dir, conv, word string) int {
	t.Helper()
	ix, err := blevestore.Open(filepath.Join(dir, "search"))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	r, err := ix.Search(context.Background(), search.Query{Text: word, Conversations: []string{conv}, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	return len(r.Hits)
}

// hitsLive counts the messages of conv that word finds in a running
// system's index.
func hitsLive(ctx context.Context, sys *app.System, conv, word string) int {
	r, err := sys.SearchIndex().Search(ctx, search.Query{Text: word, Conversations: []string{conv}, Limit: 10})
	if err != nil {
		return -1
	}
	return len(r.Hits)
}
