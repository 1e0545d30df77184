package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserEncryptedGroup: two users in Chromium, each device's MLS
// keys in its browser's IndexedDB. Alice creates an end-to-end encrypted
// group with Bob; both write and read each other; the history the
// server pages holds ciphertext only; both see the same safety numbers
// for the same devices; and Bob's page, reloaded, shows what he read
// from his device's store (a message can be decrypted once only).
func TestBrowserEncryptedGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a browser and a whole system, about 20 s); make test runs it")
	}
	dir, addr := t.TempDir(), freeAddr(t)
	sys := startSystem(t, dir, addr)
	defer stopSystem(t, sys)
	base := "http://" + addr
	browser := startBrowser(t)
	alice := newBrowserUser(t, browser, "alice")
	bob := newBrowserUser(t, browser, "bob")
	signIn := func(u *browserUser) {
		u.do(chromedp.Navigate(base + "/"))
		u.waitFor("the development sign-in form", `!document.querySelector("#dev-form").hidden`)
		u.do(
			chromedp.SendKeys(chromedp.CSS("#dev-user"), u.name),
			chromedp.Click(chromedp.CSS(`#dev-form button[type=submit]`)),
		)
		u.waitFor("signed in and online", `!document.querySelector("#app").hidden && document.querySelector("#me").textContent === `+js(u.name)+` && document.querySelector("#banner").hidden`)
	}
	for _, u := range []*browserUser{alice, bob} {
		signIn(u)
	}
	// Bob's device has published its key packages before Alice claims one.
	bobAPI := func(path string) map[string]any {
		t.Helper()
		tok := devToken(t, base, "bob")
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s: %v %s", path, err, b)
		}
		return out
	}
	published := func() bool {
		l, _ := bobAPI("/v1/users/bob/devices")["devices"].([]any)
		return len(l) == 1
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(30 * time.Second); !published(); <-tick.C {
		if time.Now().After(deadline) {
			t.Fatal("bob's browser never published its key packages")
		}
	}

	alice.click("#new-group")
	alice.do(
		chromedp.SendKeys(chromedp.CSS("#group-title"), "Vault"),
		chromedp.SendKeys(chromedp.CSS("#group-members"), "bob"),
		chromedp.Click(chromedp.CSS("#group-encrypted")),
		chromedp.Click(chromedp.CSS(`#form-group button[type=submit]`)),
	)
	alice.waitFor("the group open", `document.querySelector("#conv-title").textContent === "Vault" && !document.querySelector("#composer").hidden`)
	alice.waitFor("bob added by the commit", `document.querySelector("#message-list").textContent.includes("alice added a device of bob")`)
	send(alice, "the combination is 4-8-15")
	alice.waitFor("her message shown", msgWhere("the combination is 4-8-15", "m.id"))
	bob.waitFor("the group in Bob's list", `[...document.querySelectorAll("#conversations .conv-name")].some(e => e.textContent === "Vault")`)
	openConversation(bob, "Vault")
	bob.waitFor("Alice's message decrypted", msgWhere("the combination is 4-8-15", "true"))
	send(bob, "noted, 16-23-42")
	alice.waitFor("Bob's message decrypted", msgWhere("noted, 16-23-42", "true"))

	// The server holds ciphertext only.
	hist := bobAPI("/v1/conversations/" + eval[string](bob, `document.querySelector("#conversations button[aria-current=true], #conversations button.current")?.dataset.conv ?? [...document.querySelectorAll("#conversations button")].find(b => b.textContent.includes("Vault")).dataset.conv`) + "/history?limit=200")
	raw, _ := json.Marshal(hist)
	if strings.Contains(string(raw), "4-8-15") || strings.Contains(string(raw), "16-23-42") || !strings.Contains(string(raw), "chat.mls.message.sent.v1") {
		t.Errorf("the history the server pages: %.600s", raw)
	}

	// Safety numbers: the same device, the same number, on both sides.
	numbers := func(u *browserUser) string {
		u.click("#members-button")
		u.waitFor("the safety numbers", `document.querySelectorAll("#safety-numbers li").length === 2`)
		return eval[string](u, `[...document.querySelectorAll("#safety-numbers li")].map(l => l.dataset.device.replace(/\/.*/, "") + " " + l.querySelector("code").textContent).sort().join("\n")`)
	}
	na, nb := numbers(alice), numbers(bob)
	if na != nb || strings.Count(na, " ") < 30 {
		t.Errorf("safety numbers differ or are empty:\nalice sees\n%s\nbob sees\n%s", na, nb)
	}

	// Reloaded, Bob's page reads what his device decrypted from its own
	// store: the server could not give it again.
	bob.do(chromedp.Reload())
	bob.waitFor("signed in again", `!document.querySelector("#app").hidden && document.querySelector("#banner").hidden`)
	openConversation(bob, "Vault")
	bob.waitFor("the messages from the device's store", msgWhere("the combination is 4-8-15", "true")+" && "+msgWhere("noted, 16-23-42", "true"))
}
