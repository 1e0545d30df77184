package web_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/schemas"
)

// TestBrowserAfterTheLogLostMessages: a browser shows twelve messages;
// while the server is down its log loses the latest of them, commands
// and events (their segments cut short, as by a crash of the machine),
// and `parley recover` accepts what is left. Back online, the client's
// resume beyond the conversation's end is refused; the client asks where
// the conversation ends, drops what it held past it, and shows the next
// message, which takes a lost one's seq (it would have taken it for one
// it already had, and dropped it).
func TestBrowserAfterTheLogLostMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a browser and three starts of a system, about 30 s); make test runs it")
	}
	addr, dir := freeAddr(t), t.TempDir()
	sys := startSystem(t, dir, addr)
	base := "http://" + addr
	erin := devToken(t, base, "erin")
	var created struct {
		ConversationID string `json:"conversation_id"`
	}
	post(t, base+"/v1/conversations", erin, map[string]any{"kind": "direct", "members": []string{"frank"}}, &created)
	conv := created.ConversationID
	say := func(id, body string) int {
		var sent struct{ Seq int }
		post(t, base+"/v1/conversations/"+conv+"/messages", erin, map[string]any{"command_id": id, "body": body}, &sent)
		return sent.Seq
	}
	for i := 1; i <= 12; i++ {
		say(fmt.Sprint("n-", i), fmt.Sprint("note ", i))
	}

	frank := newBrowserUser(t, startBrowser(t), "frank")
	frank.do(chromedp.Navigate(base + "/"))
	frank.signInAsDev("frank")
	frank.waitFor("online", `!document.querySelector("#app").hidden && document.querySelector("#banner").hidden`)
	openConversation(frank, "erin")
	frank.waitFor("the twelfth note", msgWhere("note 12", "true"))

	stopSystem(t, sys)
	frank.waitFor("the offline banner", `!document.querySelector("#banner").hidden`)
	for _, topic := range []string{schemas.TopicCommands, schemas.TopicEvents} {
		cutShort(t, dir, topic)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := testConfig(t, dir, addr)
	var out bytes.Buffer
	if err := app.Recover(ctx, cfg, false, &out, testLogger(cfg)); err != nil {
		t.Fatalf("recover: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "lost: chat.events/") {
		t.Fatalf("recover found nothing lost:\n%s", out.String())
	}

	sys = startSystem(t, dir, addr)
	defer stopSystem(t, sys)
	frank.waitFor("online again", `document.querySelector("#banner").hidden`, 60*time.Second)
	// History is made again from the log: the conversation is back once
	// it has read the creation.
	var kept struct {
		LastSeq int `json:"last_seq"`
	}
	untilFound(t, base+"/v1/conversations/"+conv, erin)
	get(t, base+"/v1/conversations/"+conv, erin, &kept)
	if kept.LastSeq >= 12 {
		t.Fatalf("the conversation ends at seq %d after the log lost messages, want fewer than 12", kept.LastSeq)
	}
	frank.waitFor("the lost notes gone", `!`+msgWhere("note 12", "true"), 30*time.Second)
	seq := say("after", "after the loss")
	if seq != kept.LastSeq+1 {
		t.Fatalf("the next message got seq %d, want %d", seq, kept.LastSeq+1)
	}
	frank.waitFor("the next message", msgWhere("after the loss", "true"), 30*time.Second)
	got := eval[[]string](frank, `[...document.querySelectorAll("#message-list .msg .msg-body")].map(b => b.textContent)`)
	var want []string
	for i := 1; i <= kept.LastSeq; i++ {
		want = append(want, fmt.Sprint("note ", i))
	}
	want = append(want, "after the loss")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("frank's page shows %q, want %q", got, want)
	}
}

// cutShort cuts the segment of the one partition of topic that holds
// records to half its length: the tail of the log lost.
func cutShort(t *testing.T, dir, topic string) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "kafka", "partitions", topic+"-*", "*.dat"))
	if err != nil {
		t.Fatal(err)
	}
	cut := 0
	for _, seg := range segs {
		st, err := os.Stat(seg)
		if err != nil || st.Size() == 0 {
			continue
		}
		if err := os.Truncate(seg, st.Size()/2); err != nil {
			t.Fatal(err)
		}
		cut++
	}
	if cut != 1 {
		t.Fatalf("%d segments of %s hold records, want one", cut, topic)
	}
}

// untilFound polls url as token's user until it answers 200, or fails t
// after 30 s.
func untilFound(t *testing.T, url, token string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		status := 0
		if resp, err := http.DefaultClient.Do(req); err == nil {
			status = resp.StatusCode
			resp.Body.Close()
		}
		if status == http.StatusOK {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("GET %s: %d after 30 s", url, status)
		case <-tick.C:
		}
	}
}
