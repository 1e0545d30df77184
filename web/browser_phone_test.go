package web_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserPhoneHistoryAndKeyboard uses the client on a phone-sized
// screen: one column at a time, the list then the conversation; 130
// messages load page by page as the user scrolls up, each once and in
// order; the keyboard alone opens a conversation and sends; and every
// control has an accessible name.
func TestBrowserPhoneHistoryAndKeyboard(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a browser and a whole system, about 20 s); make test runs it")
	}
	addr := freeAddr(t)
	sys := startSystem(t, t.TempDir(), addr)
	defer stopSystem(t, sys)
	base := "http://" + addr

	// Carol writes 130 messages to Dave over the HTTP API.
	carol := devToken(t, base, "carol")
	var created struct {
		ConversationID string `json:"conversation_id"`
	}
	post(t, base+"/v1/conversations", carol, map[string]any{"kind": "direct", "members": []string{"dave"}}, &created)
	const n = 130
	for i := 1; i <= n; i++ {
		post(t, base+"/v1/conversations/"+created.ConversationID+"/messages", carol,
			map[string]any{"command_id": fmt.Sprint("m-", i), "body": fmt.Sprint("message ", i)}, nil)
	}

	dave := newBrowserUser(t, startBrowser(t), "dave")
	dave.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	dave.do(chromedp.Navigate(base + "/"))
	dave.signInAsDev("dave")
	dave.waitFor("130 unread from carol", `document.querySelector('#conversations button[aria-label="carol, offline, 130 unread"] .unread')?.textContent === "130"`)
	visible := func(sel string) string {
		return sprintf(`(e => e && e.offsetParent !== null && e.getBoundingClientRect().width > 0)(document.querySelector(%s))`, js(sel))
	}
	dave.waitFor("only the list on a phone", visible("#sidebar")+" && !"+visible("#conversation"))
	unlabelled(t, dave)
	lowContrast(t, dave)
	dave.screenshot("phone-list")

	// The keyboard alone: focus the conversation, Enter opens it and
	// puts the focus in the message box; Enter sends.
	eval[bool](dave, `(document.querySelector("#conversations button").focus(), document.activeElement.dataset.conv !== undefined)`)
	dave.do(chromedp.KeyEvent("\r"))
	dave.waitFor("only the conversation, with the focus in the message box", visible("#conversation")+" && !"+visible("#sidebar")+` && document.activeElement?.id === "composer-input"`)
	dave.waitFor("the newest page", msgWhere("message 130", "true")+` && document.querySelectorAll("#message-list .msg").length < `+fmt.Sprint(n))
	dave.do(chromedp.KeyEvent("hello from the keyboard\r"))
	dave.waitFor("the message sent", msgWhere("hello from the keyboard", `!m.classList.contains("pending")`))
	unlabelled(t, dave)
	lowContrast(t, dave)
	dave.screenshot("phone-conversation")

	// Scrolling up loads older pages until the first message.
	dave.waitFor("every message, scrolling up", `(document.querySelector("#messages").scrollTop = 0, document.querySelectorAll("#message-list .msg").length === `+fmt.Sprint(n+1)+`)`, 60*time.Second)
	got := eval[[]string](dave, `[...document.querySelectorAll("#message-list .msg .msg-body")].map(b => b.textContent)`)
	for i := 0; i < n; i++ {
		if want := fmt.Sprint("message ", i+1); got[i] != want {
			t.Fatalf("message %d is %q, want %q (all: %q)", i, got[i], want, got)
		}
	}
	if got[n] != "hello from the keyboard" {
		t.Errorf("the last message is %q", got[n])
	}

	// Markup in a message, or in its search snippet, stays text.
	const markup = `<b>bold?</b> <img src=x> &amp;`
	dave.do(chromedp.SendKeys(chromedp.CSS("#composer-input"), markup+"\r"))
	dave.waitFor("the message as text", msgWhere(markup, `!m.classList.contains("pending")`)+` && !document.querySelector("#message-list b, #message-list img")`)
	dave.do(
		chromedp.SendKeys(chromedp.CSS("#search-q"), "bold"),
		chromedp.Click(chromedp.CSS(`#search-form button[type=submit]`)),
	)
	for deadline := time.Now().Add(30 * time.Second); !eval[bool](dave, `!!document.querySelector("#search-results mark")`); {
		if time.Now().After(deadline) {
			t.Fatalf("no search result\n%s", dave.snapshot())
		}
		dave.waitFor("the search answered", `!document.querySelector("#panel-body").textContent.startsWith("Searching")`)
		if !eval[bool](dave, `!!document.querySelector("#search-results mark")`) {
			dave.click(`#search-form button[type=submit]`)
		}
	}
	if got := eval[string](dave, `document.querySelector("#search-results .result span:last-child").textContent`); got != markup {
		t.Errorf("the snippet reads %q, want %q", got, markup)
	}
	if n := eval[int](dave, `document.querySelectorAll("#search-results *:not(li, ul, button, span, mark)").length`); n != 0 {
		t.Errorf("the search results hold %d elements made from a snippet", n)
	}
	dave.waitFor("the results instead of the conversation", visible("#panel")+" && !"+visible("#conversation"))
	dave.click("#search-results button.result")
	dave.waitFor("the conversation at the message", visible("#conversation")+" && !"+visible("#panel")+` && document.activeElement?.querySelector(".msg-body")?.textContent === `+js(markup))

	dave.click("#back")
	dave.waitFor("the list again", visible("#sidebar")+" && !"+visible("#conversation"))
}

// unlabelled fails t for every visible control without an accessible
// name: a button without text or aria-label, a field without a label.
func unlabelled(t *testing.T, u *browserUser) {
	t.Helper()
	bad := eval[[]string](u, `[...document.querySelectorAll("button, input, textarea, select")]
		.filter(e => e.offsetParent !== null && e.type !== "hidden")
		.filter(e => !(e.getAttribute("aria-label") || (e.tagName === "BUTTON" && e.textContent.trim()) || (e.labels && e.labels.length)))
		.map(e => e.outerHTML.slice(0, 120))`)
	for _, b := range bad {
		t.Errorf("%s: a control without an accessible name: %s", u.name, b)
	}
}

func devToken(t *testing.T, base, user string) string {
	t.Helper()
	var out struct{ Token string }
	post(t, base+"/auth/dev-token", "", map[string]string{"user_id": user}, &out)
	return out.Token
}

func post(t *testing.T, url, token string, body, out any) {
	t.Helper()
	call(t, "POST", url, token, body, out)
}

// get GETs url as token's user and decodes the answer into out.
func get(t *testing.T, url, token string, out any) {
	t.Helper()
	call(t, "GET", url, token, nil, out)
}

// call sends body (none if nil) as JSON to url with method, as token's
// user if not "", fails t on an error status, and decodes the answer
// into out if not nil.
func call(t *testing.T, method, url, token string, body, out any) {
	t.Helper()
	var in io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		in = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, in)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var p map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&p)
		t.Fatalf("%s %s: %d %v", method, url, resp.StatusCode, p)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

// lowContrast fails t for every visible text whose colour has less than
// WCAG AA's contrast with the background it is drawn on: 4.5:1, or 3:1
// for large text (24 px, or 18.66 px bold). Disabled controls are exempt,
// as WCAG has it.
func lowContrast(t *testing.T, u *browserUser) {
	t.Helper()
	bad := eval[[]string](u, `(() => {
		const rgb = (s) => { const m = s.match(/[\d.]+/g).map(Number); return { r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1 }; };
		const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
		const background = (e) => {
			for (; e; e = e.parentElement) {
				const c = rgb(getComputedStyle(e).backgroundColor);
				if (c.a > 0.5) return c;
			}
			return rgb(getComputedStyle(document.documentElement).backgroundColor || "rgb(255,255,255)");
		};
		const out = [];
		const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
		for (let n = walker.nextNode(); n; n = walker.nextNode()) {
			const e = n.parentElement;
			if (!n.textContent.trim() || !e || e.offsetParent === null || e.closest("[disabled], .visually-hidden")) continue;
			const s = getComputedStyle(e);
			const fg = rgb(s.color), bg = background(e);
			const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
			const ratio = (hi + 0.05) / (lo + 0.05);
			const size = parseFloat(s.fontSize), bold = +s.fontWeight >= 700;
			const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
			if (ratio < need) out.push(ratio.toFixed(2) + ": " + n.textContent.trim().slice(0, 40) + " (" + s.color + " on " + JSON.stringify(bg) + ")");
		}
		return out;
	})()`)
	for _, b := range bad {
		t.Errorf("%s: text with too little contrast: %s", u.name, b)
	}
}
