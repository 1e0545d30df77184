package web_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/oidctest"
)

// TestBrowserTwoUsers drives the web client in Chromium as two users, each
// in a browser context of their own, against every role in one process:
// they sign in, Alice creates a group with Bob, they exchange messages
// (unread counts, typing, a reply, a reaction, an edit, receipts), start
// a direct chat (ticks, presence, a deletion), manage members, search
// and jump to a result; then the server restarts mid-conversation while
// Alice sends, and both clients reconnect and resume with every message
// once.
func TestBrowserTwoUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a browser and a whole system, about 60 s); make test runs it")
	}
	dir, addr := t.TempDir(), freeAddr(t)
	sys := startSystem(t, dir, addr)
	defer func() {
		if sys != nil {
			stopSystem(t, sys)
		}
	}()
	base := "http://" + addr
	browser := startBrowser(t)
	alice := newBrowserUser(t, browser, "alice")
	bob := newBrowserUser(t, browser, "bob")

	for _, u := range []*browserUser{alice, bob} {
		u.do(chromedp.Navigate(base + "/"))
		u.waitFor("the development sign-in form", `!document.querySelector("#dev-form").hidden`)
		if u == alice {
			alice.screenshot("signin")
		}
		u.do(
			chromedp.SendKeys(chromedp.CSS("#dev-user"), u.name),
			chromedp.Click(chromedp.CSS(`#dev-form button[type=submit]`)),
		)
		u.waitFor("signed in and online", `!document.querySelector("#app").hidden && document.querySelector("#me").textContent === `+js(u.name)+` && document.querySelector("#banner").hidden`)
	}

	step(t, "group creation and first message", func() {
		alice.click("#new-group")
		alice.do(
			chromedp.SendKeys(chromedp.CSS("#group-title"), "Lighthouse"),
			chromedp.SendKeys(chromedp.CSS("#group-members"), "bob"),
			chromedp.Click(chromedp.CSS(`#form-group button[type=submit]`)),
		)
		alice.waitFor("the group open", `document.querySelector("#conv-title").textContent === "Lighthouse" && !document.querySelector("#composer").hidden`)
		bob.waitFor("the group in Bob's list", `[...document.querySelectorAll("#conversations .conv-name")].some(e => e.textContent === "Lighthouse")`)
		send(alice, "Hello Bob")
		alice.waitFor("the message sent", msgWhere("Hello Bob", `!m.classList.contains("pending")`))
		bob.waitFor("one unread in the list", `[...document.querySelectorAll("#conversations button")].some(b => b.textContent.includes("Lighthouse") && b.querySelector(".unread")?.textContent === "1")`)
		bob.screenshot("unread")
		openConversation(bob, "Lighthouse")
		bob.waitFor("Alice's message", msgWhere("Hello Bob", "true"))
		bob.waitFor("the unread count cleared", `[...document.querySelectorAll("#conversations button")].some(b => b.textContent.includes("Lighthouse") && !b.querySelector(".unread"))`)
	})

	step(t, "typing, reply, reaction, edit and receipts", func() {
		bob.do(chromedp.SendKeys(chromedp.CSS("#composer-input"), "Hi Al"))
		alice.waitFor("Bob typing", `document.querySelector("#typing").textContent === "bob is typing…"`)
		setValue(bob, "#composer-input", "")
		bob.click(msgSel(bob, "Hello Bob") + ` [data-action="reply"]`)
		bob.waitFor("the reply context", `document.querySelector("#composer-context-text").textContent.startsWith("Replying to alice: Hello Bob")`)
		send(bob, "Hi Alice")
		alice.waitFor("Bob's reply quoting hers", msgWhere("Hi Alice", `m.querySelector(".msg-quote")?.textContent === "↪ alice: Hello Bob"`))
		alice.waitFor("the typing indicator gone", `document.querySelector("#typing").textContent === ""`)

		bob.click(msgSel(bob, "Hi Alice") + ` [data-action="thread"]`)
		bob.waitFor("the thread", `document.querySelector("#panel-title").textContent === "Thread" && [...document.querySelectorAll("#panel-body .thread li")].map(l => l.textContent).join("|").match(/^alice · .*Hello Bob\|bob · .*Hi Alice$/)`)
		bob.do(chromedp.KeyEvent(kb.Escape)) // the focus is in the panel
		bob.waitFor("the panel closed by Escape", `document.querySelector("#panel").hidden`)

		alice.click(msgSel(alice, "Hi Alice") + ` [data-action="react"]`)
		alice.click(msgSel(alice, "Hi Alice") + ` [data-action="pick-👍"]`)
		bob.waitFor("Alice's reaction", msgWhere("Hi Alice", `m.querySelector(".reactions button")?.textContent === "👍 1"`))
		// Her own list redraws when her reaction comes back: a click
		// while it redraws can land on the node it replaces.
		alice.waitFor("her reaction on her side", msgWhere("Hi Alice", `m.querySelector(".reactions button")?.textContent === "👍 1"`))

		alice.click(msgSel(alice, "Hello Bob") + ` [data-action="edit"]`)
		alice.waitFor("the edit context", `document.querySelector("#composer-send").textContent === "Save"`)
		setValue(alice, "#composer-input", "Hello Bob, welcome aboard")
		alice.click("#composer-send")
		bob.waitFor("the edit", msgWhere("Hello Bob, welcome aboard", `m.querySelector(".edited")`))
		bob.waitFor("the quote follows the edit", msgWhere("Hi Alice", `m.querySelector(".msg-quote")?.textContent === "↪ alice: Hello Bob, welcome aboard"`))
		// Bob has the group open: Alice's newest message is read by him.
		alice.waitFor("the group's read receipt", msgWhere("Hello Bob, welcome aboard", `m.querySelector(".msg-state")?.textContent === "Read by 1 of 1"`), 45*time.Second)
		alice.screenshot("conversation")
	})

	step(t, "a direct chat: ticks, presence and a deletion", func() {
		bob.click("#new-direct")
		bob.do(
			chromedp.SendKeys(chromedp.CSS("#direct-user"), "alice"),
			chromedp.Click(chromedp.CSS(`#form-direct button[type=submit]`)),
		)
		bob.waitFor("the direct chat open", `document.querySelector("#conv-title").textContent === "alice"`)
		send(bob, "psst, a secret")
		bob.waitFor("delivered or sent", msgWhere("psst, a secret", `/Sent|Delivered/.test(m.querySelector(".msg-state")?.textContent)`))
		alice.waitFor("Bob online in the list", `document.querySelector('#conversations button[aria-label^="bob, online"] .dot.online')`)
		openConversation(alice, "bob")
		alice.waitFor("the direct message", msgWhere("psst, a secret", "true"))
		bob.waitFor("the read tick", msgWhere("psst, a secret", `m.querySelector(".msg-state")?.textContent === "✓✓ Read"`))
		bob.click(msgSel(bob, "psst, a secret") + ` [data-action="delete"]`)
		alice.waitFor("the deletion", `[...document.querySelectorAll(".msg.deleted .msg-body")].some(b => b.textContent === "This message was deleted.")`)
		bob.click("#block-button")
		alice.waitFor("the block", `document.querySelector("#conv-sub").textContent === "Blocked" && document.querySelector("#composer").hidden`)
		bob.waitFor("Bob's block", `document.querySelector("#conv-sub").textContent === "You blocked this conversation" && document.querySelector("#block-button").textContent === "Unblock"`)
		bob.click("#block-button")
		alice.waitFor("the block lifted", `!document.querySelector("#composer").hidden`)
	})

	step(t, "members by role", func() {
		openConversation(alice, "Lighthouse")
		alice.click("#members-button")
		alice.waitFor("the member list", `document.querySelector('#member-list [data-member="bob"]')`)
		alice.do(
			chromedp.SendKeys(chromedp.CSS("#add-member"), "carol"),
			chromedp.Click(chromedp.CSS(`#add-member-form button[type=submit]`)),
		)
		alice.waitFor("Carol added", `document.querySelector('#member-list [data-member="carol"]')`)
		setValue(alice, `select[data-action="role-bob"]`, "admin")
		alice.screenshot("members")
		openConversation(bob, "Lighthouse")
		bob.waitFor("Bob told he is an admin", `[...document.querySelectorAll(".system")].some(e => e.textContent.startsWith("alice made bob an admin"))`)
		bob.click("#members-button")
		// An admin may remove a member but not change roles.
		bob.waitFor("an admin's controls", `document.querySelector('[data-action="remove-carol"]') && !document.querySelector('select[data-action^="role-"]')`)
		bob.click(`[data-action="remove-carol"]`)
		alice.waitFor("Carol removed", `!document.querySelector('#member-list [data-member="carol"]') && [...document.querySelectorAll(".system")].some(e => e.textContent.startsWith("bob removed carol"))`)
		// Only the owner archives: the group becomes read-only.
		bob.waitFor("no archive button for an admin", `!document.querySelector('[data-action="archive"]')`)
		alice.click(`[data-action="archive"]`)
		bob.waitFor("the group archived", `document.querySelector("#conv-sub").textContent === "Archived (read-only)" && document.querySelector("#composer").hidden`)
		alice.waitFor("the unarchive button", `document.querySelector('[data-action="archive"]')?.textContent === "Unarchive the group"`)
		alice.click(`[data-action="archive"]`)
		bob.waitFor("the group unarchived", `document.querySelector("#conv-sub").textContent === "2 members" && !document.querySelector("#composer").hidden`)
		bob.click("#panel-close")
		alice.click("#panel-close")
	})

	step(t, "search jumps to the message", func() {
		alice.do(
			chromedp.SendKeys(chromedp.CSS("#search-q"), "welcome"),
			chromedp.Click(chromedp.CSS(`#search-form button[type=submit]`)),
		)
		// The index follows the log within about a second: search again
		// until it has the edit.
		deadline := time.Now().Add(30 * time.Second)
		for !eval[bool](alice, `!!document.querySelector("#search-results mark")`) {
			if time.Now().After(deadline) {
				t.Fatalf("no search result with a highlight\n%s", alice.snapshot())
			}
			alice.waitFor("the search answered", `!document.querySelector("#panel").hidden && !document.querySelector("#panel-body").textContent.startsWith("Searching")`)
			if eval[bool](alice, `!!document.querySelector("#search-results mark")`) {
				break
			}
			alice.click(`#search-form button[type=submit]`)
		}
		if got := eval[string](alice, `document.querySelector("#search-results mark").textContent`); got != "welcome" {
			t.Errorf("highlighted %q, want welcome", got)
		}
		alice.screenshot("search")
		openConversation(alice, "bob") // somewhere else first
		alice.click(`#search-results button.result`)
		alice.waitFor("the jump to the message", `document.querySelector("#conv-title").textContent === "Lighthouse" && document.activeElement?.classList.contains("msg") && document.activeElement.querySelector(".msg-body").textContent === "Hello Bob, welcome aboard"`)
		alice.click("#panel-close")
	})

	step(t, "contrast, light and dark", func() {
		openConversation(alice, "Lighthouse")
		lowContrast(t, alice)
		alice.do(colorScheme("dark"))
		alice.waitFor("the dark scheme", `matchMedia("(prefers-color-scheme: dark)").matches`)
		lowContrast(t, alice)
		alice.screenshot("dark")
		alice.do(colorScheme(""))
	})

	step(t, "the server restarts mid-conversation", func() {
		openConversation(alice, "Lighthouse")
		stopSystem(t, sys)
		sys = nil
		for _, u := range []*browserUser{alice, bob} {
			u.waitFor("the offline banner", `!document.querySelector("#banner").hidden && document.querySelector("#banner").textContent.startsWith("You are offline")`)
		}
		send(alice, "sent while the server was down")
		alice.waitFor("the message queued", msgWhereSel(".pending", "sent while the server was down", `m.querySelector(".msg-state").textContent === "Waiting for the connection…"`)+
			` && document.querySelector("#banner").textContent.includes("1 unsent message waits")`)
		alice.screenshot("offline")
		sys = startSystem(t, dir, addr)
		for _, u := range []*browserUser{alice, bob} {
			u.waitFor("back online", `document.querySelector("#banner").hidden`, 60*time.Second)
		}
		bob.waitFor("the queued message", msgWhere("sent while the server was down", "true"))
		alice.waitFor("the queued message sent", msgWhere("sent while the server was down", `!m.classList.contains("pending")`)+` && !document.querySelector(".msg.pending")`)
		send(bob, "and after the restart")
		alice.waitFor("Bob's message after the restart", msgWhere("and after the restart", "true"))
		for _, u := range []*browserUser{alice, bob} {
			got := eval[[]string](u, `[...document.querySelectorAll("#message-list .msg .msg-body")].map(b => b.textContent)`)
			want := []string{"Hello Bob, welcome aboard", "Hi Alice", "sent while the server was down", "and after the restart"}
			if !slices.Equal(got, want) {
				t.Errorf("%s's messages after the restart: %q, want %q (each once, in order)", u.name, got, want)
			}
			seqs := eval[[]int](u, `[...document.querySelectorAll("#message-list [data-seq]")].map(e => +e.dataset.seq)`)
			for i := 1; i < len(seqs); i++ {
				if seqs[i] <= seqs[i-1] {
					t.Errorf("%s's timeline has seqs %v: want each once, in order", u.name, seqs)
					break
				}
			}
		}
	})
}

// step runs one part of a test, logging its name and time.
func step(t *testing.T, name string, f func()) {
	t.Helper()
	start := time.Now()
	f()
	t.Logf("%s: %s", name, time.Since(start).Round(time.Millisecond))
}

// setValue sets a form control's value as a user's choice does, with
// its input and change events.
func setValue(u *browserUser, sel, v string) {
	u.t.Helper()
	eval[bool](u, sprintf(`(() => { const e = document.querySelector(%s); e.value = %s; e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); return true })()`, js(sel), js(v)))
}

// colorScheme emulates the user's preferred colour scheme ("" for none).
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		var features []*emulation.MediaFeature
		if scheme != "" {
			features = []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}
		}
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: features})
		return chromedp.Void{}, err
	}
}

// send types a message in the composer and sends it with Enter.
func send(u *browserUser, body string) {
	u.t.Helper()
	u.do(
		chromedp.SendKeys(chromedp.CSS("#composer-input"), body),
		chromedp.SendKeys(chromedp.CSS("#composer-input"), "\r"),
	)
}

// openConversation opens the conversation called name once the user's
// list shows it: a conversation the user was just added to reaches the
// list by the event, a moment after whoever added them saw it.
func openConversation(u *browserUser, name string) {
	u.t.Helper()
	button := sprintf(`[...document.querySelectorAll("#conversations button")].find(b => b.querySelector(".conv-name").textContent === %s)`, js(name))
	u.waitFor(sprintf("the conversation %q in the list", name), button)
	id := eval[string](u, button+`.dataset.conv`)
	u.click(sprintf(`#conversations button[data-conv=%s]`, js(id)))
	u.waitFor("the conversation open", sprintf(`document.querySelector("#conv-title").textContent === %s`, js(name)))
}

// msgWhere is a condition on the message whose body is body, as m.
func msgWhere(body, cond string) string {
	return msgWhereSel("", body, cond)
}

func msgWhereSel(extra, body, cond string) string {
	return sprintf(`[...document.querySelectorAll("#message-list .msg%s")].some(m => m.querySelector(".msg-body")?.textContent === %s && (%s))`, extra, js(body), cond)
}

// msgSel returns a selector of the (sent) message whose body is body.
func msgSel(u *browserUser, body string) string {
	u.t.Helper()
	u.waitFor("the message "+body, msgWhere(body, "m.id"))
	id := eval[string](u, sprintf(`[...document.querySelectorAll("#message-list .msg")].find(m => m.querySelector(".msg-body")?.textContent === %s).id`, js(body)))
	return "#" + id
}

// TestBrowserOIDCSignIn signs in through the redirect: the client, told
// by GET /auth/config that the server trusts an OpenID provider (zitadel's
// example provider, running in the test), sends the browser there with
// the authorization-code flow and PKCE; the user signs in on the
// provider's own form; the provider sends the browser back to
// /auth/callback with a code, which the client exchanges for an ID token
// that Parley accepts over HTTP and the WebSocket. The code leaves the
// address bar, and no token ever appears in a URL the page loaded.
func TestBrowserOIDCSignIn(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a browser, an identity provider and a whole system, about 20 s); make test runs it")
	}
	p := oidctest.Start(t)
	p.Up()
	dir, addr := t.TempDir(), freeAddr(t)
	withOIDC := func(c *app.Config) {
		c.OIDCIssuers = []string{p.Issuer}
		c.OIDCAudience = oidctest.ClientID
	}
	sys := startSystem(t, dir, addr, withOIDC)
	defer func() { stopSystem(t, sys) }()
	u := newBrowserUser(t, startBrowser(t), "test-user2")

	u.do(chromedp.Navigate("http://" + addr + "/"))
	u.waitFor("the identity provider's button", `!document.querySelector("#oidc-box").hidden && document.querySelector("#dev-form").hidden`)
	u.click("#oidc-button")
	u.waitFor("the provider's login form", sprintf(`location.origin === %s && document.querySelector("#username")`, js(p.Issuer)))
	u.do(
		chromedp.SendKeys(chromedp.CSS("#username"), oidctest.User2),
		chromedp.SendKeys(chromedp.CSS("#password"), oidctest.Password),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
	)
	u.waitFor("signed in and online", sprintf(`location.origin === %s && !document.querySelector("#app").hidden && document.querySelector("#me").textContent === %s && document.querySelector("#banner").hidden`,
		js("http://"+addr), js(oidctest.User2ID)))
	if got := eval[string](u, `location.pathname + location.search`); got != "/" {
		t.Errorf("after the sign-in the address is %q, want / (the code removed)", got)
	}

	u.click("#new-group")
	u.do(
		chromedp.SendKeys(chromedp.CSS("#group-title"), "Notes"),
		chromedp.Click(chromedp.CSS(`#form-group button[type=submit]`)),
	)
	u.waitFor("the group open", `document.querySelector("#conv-title").textContent === "Notes"`)
	send(u, "signed in at the provider")
	u.waitFor("the message in the log", msgWhere("signed in at the provider", `!m.classList.contains("pending") && m.dataset.seq`))

	// A restarted server fetches the provider's keys again; the client,
	// whose token it may refuse for that moment, reconnects and stays
	// signed in.
	stopSystem(t, sys)
	u.waitFor("the offline banner", `!document.querySelector("#banner").hidden`)
	sys = startSystem(t, dir, addr, withOIDC)
	u.waitFor("back online, still signed in", `document.querySelector("#banner").hidden && !document.querySelector("#app").hidden`, 60*time.Second)
	send(u, "and after a restart")
	u.waitFor("the second message in the log", msgWhere("and after a restart", `!m.classList.contains("pending") && m.dataset.seq`))

	// The authorization code comes in the callback's URL, as the
	// protocol has it (and leaves the address bar at once); the ID token
	// never travels in one.
	token := eval[string](u, `sessionStorage.getItem("parley.token")`)
	if sig := token[strings.LastIndex(token, ".")+1:]; len(sig) < 20 {
		t.Fatalf("no ID token kept: %q", token)
	}
	urls := eval[[]string](u, `[location.href, ...performance.getEntriesByType("navigation").map(e => e.name), ...performance.getEntriesByType("resource").map(e => e.name)]`)
	for _, s := range urls {
		if strings.Contains(s, token[strings.LastIndex(token, ".")+1:]) || strings.Contains(s, "access_token=") || strings.Contains(s, "id_token=") {
			t.Errorf("a URL the page loaded carries a token: %s", s)
		}
	}
}
