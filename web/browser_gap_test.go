package web_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/app"
)

// TestBrowserResumeAcrossAGap cuts one browser's connections (a TCP
// proxy in between drops them and refuses new ones) while its user
// is sent more messages than a resume backfills (PARLEY_BACKFILL_LIMIT,
// 3 here): back online, the client resumes, is told of the gap, fetches
// it over HTTP, and shows every message once, in order.
func TestBrowserResumeAcrossAGap(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a browser and a whole system, about 30 s); make test runs it")
	}
	addr := freeAddr(t)
	sys := startSystem(t, t.TempDir(), addr, func(c *app.Config) { c.BackfillLimit = 3 })
	defer stopSystem(t, sys)
	base := "http://" + addr

	erin := devToken(t, base, "erin")
	var created struct {
		ConversationID string `json:"conversation_id"`
	}
	post(t, base+"/v1/conversations", erin, map[string]any{"kind": "direct", "members": []string{"frank"}}, &created)
	say := func(i int) {
		post(t, base+"/v1/conversations/"+created.ConversationID+"/messages", erin,
			map[string]any{"command_id": fmt.Sprint("e-", i), "body": fmt.Sprint("note ", i)}, nil)
	}
	say(1)

	frank := newBrowserUser(t, startBrowser(t), "frank")
	proxy := startCutter(t, addr)
	frank.do(chromedp.Navigate("http://" + proxy.addr + "/"))
	frank.signInAsDev("frank")
	frank.waitFor("online", `!document.querySelector("#app").hidden && document.querySelector("#banner").hidden`)
	openConversation(frank, "erin")
	frank.waitFor("the first note", msgWhere("note 1", "true"))

	proxy.cut()
	frank.waitFor("the offline banner", `!document.querySelector("#banner").hidden`)
	for i := 2; i <= 12; i++ {
		say(i)
	}
	proxy.restore()
	frank.waitFor("every note", msgWhere("note 12", "true"), 60*time.Second)
	// The gap was fetched over HTTP, from the cursor on.
	if !eval[bool](frank, `performance.getEntriesByType("resource").some(e => e.name.includes("/history?") && e.name.includes("after=1"))`) {
		t.Error("the client did not fetch the gap (no history request after seq 1)")
	}
	got := eval[[]string](frank, `[...document.querySelectorAll("#message-list .msg .msg-body")].map(b => b.textContent)`)
	if len(got) != 12 {
		t.Fatalf("after the gap: %q, want note 1 to note 12", got)
	}
	for i, g := range got {
		if want := fmt.Sprint("note ", i+1); g != want {
			t.Fatalf("after the gap: %q, want note 1 to note 12, each once, in order", got)
		}
	}
}

// TestBrowserRemovedWhileAway: a member removed from a group while the
// client was cut off is refused the group's resume, which therefore does
// not deliver the removal; the client notices the refusal, asks, and
// shows that the user is no longer a member.
func TestBrowserRemovedWhileAway(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a browser and a whole system, about 15 s); make test runs it")
	}
	addr := freeAddr(t)
	sys := startSystem(t, t.TempDir(), addr)
	defer stopSystem(t, sys)
	base := "http://" + addr
	erin := devToken(t, base, "erin")
	var group struct {
		ConversationID string `json:"conversation_id"`
	}
	post(t, base+"/v1/conversations", erin, map[string]any{"kind": "group", "title": "Ops", "members": []string{"frank"}}, &group)

	proxy := startCutter(t, addr)
	frank := newBrowserUser(t, startBrowser(t), "frank")
	frank.do(chromedp.Navigate("http://" + proxy.addr + "/"))
	frank.signInAsDev("frank")
	frank.waitFor("the group in the list", `[...document.querySelectorAll("#conversations .conv-name")].some(e => e.textContent === "Ops")`)
	openConversation(frank, "Ops")
	frank.waitFor("a member's composer", `!document.querySelector("#composer").hidden`)

	proxy.cut()
	frank.waitFor("the offline banner", `!document.querySelector("#banner").hidden`)
	req, err := http.NewRequest("DELETE", base+"/v1/conversations/"+group.ConversationID+"/members/frank", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+erin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("removing frank: %s", resp.Status)
	}
	proxy.restore()
	frank.waitFor("told he is no longer a member", `document.querySelector("#banner").hidden && document.querySelector("#conv-sub").textContent === "You are no longer a member" && document.querySelector("#composer").hidden`)
}

// cutter is a TCP proxy to a server that can cut every connection
// through it and refuse new ones, as a network that goes away does.
type cutter struct {
	addr string
	mu   sync.Mutex
	down bool
	open map[net.Conn]struct{}
}

func startCutter(t *testing.T, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{addr: ln.Addr().String(), open: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		c.cut()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil || !c.track(in, out) {
				in.Close()
				if out != nil {
					out.Close()
				}
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(out, in); out.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return c
}

// track registers a proxied pair, unless the network is down.
func (c *cutter) track(conns ...net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return false
	}
	for _, x := range conns {
		c.open[x] = struct{}{}
	}
	return true
}

// cut closes every connection and refuses new ones until restore.
func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = true
	for x := range c.open {
		x.Close()
	}
	clear(c.open)
}

func (c *cutter) restore() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = false
}
