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
// for the same devices. Alice adds Carol while Carol's page is closed;
// back, Carol's device joins from history and reads what followed, not
// what came before. Alice removes Bob, who reads nothing after. Carol's
// page, reloaded, shows what she read from her device's store (a
// message can be decrypted once only).
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
	carol := newBrowserUser(t, browser, "carol")
	signIn := func(u *browserUser) {
		u.do(chromedp.Navigate(base + "/"))
		u.signInAsDev(u.name)
		u.waitFor("signed in and online", `!document.querySelector("#app").hidden && document.querySelector("#me").textContent === `+js(u.name)+` && document.querySelector("#banner").hidden`)
	}
	for _, u := range []*browserUser{alice, bob, carol} {
		signIn(u)
	}
	// Bob's device has published its key packages before Alice claims one.
	apiAs := func(user, path string) map[string]any {
		t.Helper()
		tok := devToken(t, base, user)
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
	bobAPI := func(path string) map[string]any { return apiAs("bob", path) }
	published := func() bool {
		for _, u := range []string{"bob", "carol"} {
			if l, _ := apiAs(u, "/v1/users/"+u+"/devices")["devices"].([]any); len(l) != 1 {
				return false
			}
		}
		return true
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
	alice.screenshot("encrypted")
	if na != nb || strings.Count(na, " ") < 30 {
		t.Errorf("safety numbers differ or are empty:\nalice sees\n%s\nbob sees\n%s", na, nb)
	}

	// Alice adds Carol, then removes Bob: each by a commit of her device.
	// Carol reads what follows; Bob's device, out of the group, gets
	// nothing more.
	// Carol's page is closed while she is added: her device joins from
	// history when she comes back.
	carol.do(chromedp.Navigate("about:blank"))
	alice.do(chromedp.SendKeys(chromedp.CSS("#add-member"), "carol"), chromedp.Click(chromedp.CSS(`#add-member-form button[type=submit]`)))
	alice.waitFor("carol added", `document.querySelector("#message-list").textContent.includes("alice added a device of carol")`)
	send(alice, "welcome, carol")
	alice.waitFor("her message shown", msgWhere("welcome, carol", "m.id"))
	carol.do(chromedp.Navigate(base + "/"))
	carol.waitFor("signed in again", `!document.querySelector("#app").hidden && document.querySelector("#banner").hidden`)
	carol.waitFor("the group in Carol's list", `[...document.querySelectorAll("#conversations .conv-name")].some(e => e.textContent === "Vault")`)
	openConversation(carol, "Vault")
	carol.waitFor("what came before her, unreadable", msgWhere("🔒 Encrypted message", "true"))
	carol.waitFor("the message after she joined", msgWhere("welcome, carol", "true"))
	bob.waitFor("bob reads it too", msgWhere("welcome, carol", "true"))
	alice.click(`#member-list [data-action="remove-bob"]`)
	alice.waitFor("bob removed", `document.querySelector("#message-list").textContent.includes("removed bob from the group")`)
	bob.waitFor("bob told he was removed", `document.querySelector("#message-list").textContent.includes("removed bob from the group")`)
	send(alice, "bob cannot read this")
	carol.waitFor("carol reads it", msgWhere("bob cannot read this", "true"))
	if eval[bool](bob, msgWhere("bob cannot read this", "true")) {
		t.Error("bob's page shows a message sent after his removal")
	}

	// Reloaded, Carol's page reads what her device decrypted from its own
	// store: the server could not give it again.
	carol.do(chromedp.Reload())
	carol.waitFor("signed in again", `!document.querySelector("#app").hidden && document.querySelector("#banner").hidden`)
	openConversation(carol, "Vault")
	carol.waitFor("the messages from the device's store", msgWhere("welcome, carol", "true")+" && "+msgWhere("bob cannot read this", "true"))

	// Bob's browser loses its storage: the same device id, new keys. His
	// device replaces the key packages it can no longer use, Alice adds
	// him back, and her members panel warns that his device's safety
	// number changed.
	bob.do(chromedp.Evaluate[chromedp.Void](`indexedDB.databases().then(dbs => Promise.all(dbs.map(d => new Promise(r => { const q = indexedDB.deleteDatabase(d.name); q.onsuccess = q.onerror = q.onblocked = r; }))))`, chromedp.EvalAwaitPromise), chromedp.Reload())
	bob.waitFor("signed in again", `!document.querySelector("#app").hidden && document.querySelector("#banner").hidden`)
	for deadline := time.Now().Add(30 * time.Second); ; <-tick.C {
		if st := bobAPI("/v1/devices/" + eval[string](bob, `localStorage.getItem("parley.device")`) + "/key-packages"); st["available"] == float64(20) && st["devices_version"] == float64(3) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob's browser never replaced its key packages")
		}
	}
	alice.do(chromedp.SendKeys(chromedp.CSS("#add-member"), "bob"), chromedp.Click(chromedp.CSS(`#add-member-form button[type=submit]`)))
	alice.waitFor("bob added again", `[...document.querySelectorAll("#message-list .system")].filter(l => l.textContent.includes("alice added a device of bob")).length === 2`)
	openConversation(bob, "Vault")
	send(alice, "welcome back, bob")
	bob.waitFor("bob reads what follows", msgWhere("welcome back, bob", "true"))
	alice.click("#members-button")
	alice.click("#members-button")
	alice.waitFor("the warning on bob's device", `[...document.querySelectorAll("#safety-numbers li")].some(l => l.dataset.device.startsWith("bob/") && l.querySelector(".changed"))`)
	if eval[bool](alice, `[...document.querySelectorAll("#safety-numbers li")].some(l => !l.dataset.device.startsWith("bob/") && l.querySelector(".changed"))`) {
		t.Error("a device whose key did not change is marked changed")
	}

	// Carol leaves: her device proposes it, Alice's device commits it.
	openConversation(carol, "Vault")
	carol.click("#members-button")
	carol.click(`#panel-body [data-action="leave"]`)
	alice.waitFor("carol gone", `document.querySelector("#message-list").textContent.includes("removed carol from the group")`)
	carol.waitFor("carol told", `document.querySelector("#message-list").textContent.includes("removed carol from the group")`)
	send(alice, "carol has left")
	bob.waitFor("bob reads on", msgWhere("carol has left", "true"))
	if eval[bool](carol, msgWhere("carol has left", "true")) {
		t.Error("carol's page shows a message sent after she left")
	}
}
