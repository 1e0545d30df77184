package web_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/app"
)

// TestBrowserFiles: Alice attaches an image and a PDF with the file
// picker, sees each upload reach 100 %, and sends them; Bob, in a
// browser context of his own, sees the image's thumbnail (made by the
// server) actually loaded and the PDF as a chip with its name and size,
// and downloads the PDF: the bytes saved are Alice's. An executable and
// a file over the size limit are refused with the server's reason.
// Bytes go between the browsers and the embedded file store (CORS),
// never through Parley.
func TestBrowserFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a browser and a whole system, about 20 s); make test runs it")
	}
	addr := freeAddr(t)
	const maxFile = 512 << 10
	sys := startSystem(t, t.TempDir(), addr, func(c *app.Config) { c.MaxFileBytes = maxFile })
	defer stopSystem(t, sys)
	base := "http://" + addr

	alice := devToken(t, base, "alice")
	post(t, base+"/v1/conversations", alice, map[string]any{"kind": "direct", "members": []string{"bob"}}, nil)

	files := t.TempDir()
	photo := filepath.Join(files, "harbour.png")
	writeFile(t, photo, pngOf(t, 640, 400))
	pdfBytes := append([]byte("%PDF-1.4\n% minutes of the harbour meeting\n"), bytes.Repeat([]byte("0123456789abcdef"), 20000)...)
	pdf := filepath.Join(files, "minutes.pdf")
	writeFile(t, pdf, pdfBytes)
	exe := filepath.Join(files, "setup.exe")
	writeFile(t, exe, []byte("MZ\x90\x00 not really a program"))
	huge := filepath.Join(files, "huge.pdf")
	writeFile(t, huge, bytes.Repeat([]byte{'x'}, maxFile+1))

	br := startBrowser(t)
	a := newBrowserUser(t, br, "alice")
	b := newBrowserUser(t, br, "bob")
	for _, u := range []*browserUser{a, b} {
		u.do(chromedp.Navigate(base + "/"))
		u.signInAsDev(u.name)
		u.waitFor("signed in and online", `!document.querySelector("#app").hidden && document.querySelector("#banner").hidden`)
	}
	openConversation(a, "bob")

	step(t, "upload an image and a PDF, then send", func() {
		a.do(chromedp.SetUploadFiles(chromedp.CSS("#composer-file"), []string{photo, pdf}))
		for _, name := range []string{"harbour.png", "minutes.pdf"} {
			a.waitFor(name+" uploaded to 100 %", sprintf(`[...document.querySelectorAll("#composer-files .upload")].some(li =>
				li.querySelector(".upload-name").textContent === %s && li.dataset.state === "done" &&
				li.querySelector("progress").value === 100 && li.querySelector(".upload-status").textContent.startsWith("100 %%"))`, js(name)))
		}
		unlabelled(t, a)
		a.screenshot("files-composer")
		a.do(
			chromedp.SendKeys(chromedp.CSS("#composer-input"), "the harbour, and the minutes"),
			chromedp.SendKeys(chromedp.CSS("#composer-input"), "\r"),
		)
		a.waitFor("the message sent with its files", msgWhere("the harbour, and the minutes",
			`!m.classList.contains("pending") && m.querySelectorAll(".attachments li").length === 2`))
		a.waitFor("the composer emptied of files", `document.querySelector("#composer-files").hidden`)
	})

	step(t, "Bob sees the thumbnail and downloads the PDF", func() {
		openConversation(b, "alice")
		b.waitFor("the thumbnail loaded", msgWhere("the harbour, and the minutes",
			`(i => i && i.complete && i.naturalWidth > 0 && i.naturalWidth <= 320 && i.alt === "harbour.png")(m.querySelector(".att-image img"))`), 60*time.Second)
		b.waitFor("the PDF as a chip with its name and size", msgWhere("the harbour, and the minutes",
			`m.querySelector(".att-file .att-name")?.textContent === "minutes.pdf" && m.querySelector(".att-file .att-size")?.textContent === "320 KB"`))
		unlabelled(t, b)
		lowContrast(t, b)
		b.screenshot("files-conversation")
		b.do(colorScheme("dark"))
		lowContrast(t, b)
		b.do(colorScheme(""))

		downloads := t.TempDir()
		ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
		defer cancel()
		progress := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
		events := true
		if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: &events,
			BrowserContextID: chromedp.FromContext(b.ctx).BrowserContextID,
		}); err != nil {
			t.Fatalf("allowing downloads: %v", err)
		}
		b.click(msgSel(b, "the harbour, and the minutes") + ` .att-file[data-action="download-1"]`)
		for ev, err := range progress {
			if err != nil {
				t.Fatalf("waiting for the download: %v\n%s", err, b.snapshot())
			}
			if ev.State == browser.DownloadProgressStateCanceled {
				t.Fatalf("the download was cancelled")
			}
			if ev.State != browser.DownloadProgressStateCompleted {
				continue
			}
			got, err := os.ReadFile(filepath.Join(downloads, ev.GUID))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, pdfBytes) {
				t.Fatalf("downloaded %d bytes, not the %d Alice uploaded", len(got), len(pdfBytes))
			}
			break
		}
		// The page stayed: a download, not a navigation.
		b.waitFor("still the conversation", `document.querySelector("#conv-title").textContent === "alice"`)

		// From history, after a reload, the thumbnail is there again.
		b.do(chromedp.Reload())
		b.waitFor("signed in again", `!document.querySelector("#app").hidden && document.querySelector("#banner").hidden`)
		openConversation(b, "alice")
		b.waitFor("the thumbnail from history", msgWhere("the harbour, and the minutes",
			`(i => i && i.complete && i.naturalWidth > 0)(m.querySelector(".att-image img"))`))
	})

	step(t, "refused files show the server's reason", func() {
		a.do(chromedp.SetUploadFiles(chromedp.CSS("#composer-file"), []string{exe, huge}))
		failed := func(name, reason string) string {
			return sprintf(`[...document.querySelectorAll("#composer-files .upload")].some(li =>
				li.querySelector(".upload-name").textContent === %s && li.dataset.state === "failed" &&
				li.querySelector(".upload-status").textContent.includes(%s) && li.querySelector(".upload-status").getAttribute("role") === "alert")`, js(name), js(reason))
		}
		a.waitFor("the executable refused", failed("setup.exe", "file type not accepted"))
		a.waitFor("the huge file refused", failed("huge.pdf", fmt.Sprintf("file too large: %d bytes, at most %d", maxFile+1, maxFile)))
		a.screenshot("files-refused")
		lowContrast(t, a)
		a.do(colorScheme("dark"))
		lowContrast(t, a)
		a.do(colorScheme(""))
		// Removing them empties the composer's files.
		for range 2 {
			a.click(`#composer-files .upload-remove`)
		}
		a.waitFor("no files left", `document.querySelector("#composer-files").hidden && document.querySelectorAll("#composer-files .upload").length === 0`)
	})

	step(t, "a slow upload shows its progress, and is cancelled", func() {
		throttle := func(bytesPerSecond float64) chromedp.Action[chromedp.Void] {
			return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
				if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
					return chromedp.Void{}, err
				}
				_, err := cdp.Call(ctx, tg, emulateNetworkConditionsByRule, emulateByRuleParams{
					MatchedNetworkConditions: []*network.Conditions{{DownloadThroughput: -1, UploadThroughput: bytesPerSecond}},
				})
				return chromedp.Void{}, err
			}
		}
		a.do(throttle(64 << 10))
		a.do(chromedp.SetUploadFiles(chromedp.CSS("#composer-file"), []string{pdf}))
		a.waitFor("the upload part way", `(li => li && li.dataset.state === "uploading" && li.querySelector("progress").value > 0 && li.querySelector("progress").value < 100 &&
			/^[0-9]+ %$/.test(li.querySelector(".upload-status").textContent))(document.querySelector("#composer-files .upload"))`)
		a.click(`#composer-files .upload-remove[aria-label="Cancel the upload of minutes.pdf"]`)
		a.waitFor("the upload gone", `document.querySelector("#composer-files").hidden && document.querySelectorAll("#composer-files .upload").length === 0`)
		a.do(throttle(-1))
	})

	step(t, "drop a file, paste one, on a phone-sized screen", func() {
		a.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
		eval[bool](a, `(() => {
			const dt = (name) => { const d = new DataTransfer(); d.items.add(new File(["notes for the crew\n"], name, {type: "text/plain"})); return d; };
			document.querySelector("#conversation").dispatchEvent(new DragEvent("drop", {dataTransfer: dt("dropped.txt"), bubbles: true, cancelable: true}));
			document.querySelector("#composer-input").dispatchEvent(new ClipboardEvent("paste", {clipboardData: dt("pasted.txt"), bubbles: true, cancelable: true}));
			return true;
		})()`)
		for _, name := range []string{"dropped.txt", "pasted.txt"} {
			a.waitFor(name+" uploaded", sprintf(`[...document.querySelectorAll("#composer-files .upload")].some(li =>
				li.querySelector(".upload-name").textContent === %s && li.dataset.state === "done")`, js(name)))
		}
		a.waitFor("nothing wider than the screen", `document.querySelector("#composer").scrollWidth <= document.querySelector("#composer").clientWidth`)
		unlabelled(t, a)
		lowContrast(t, a)
		a.do(chromedp.SendKeys(chromedp.CSS("#composer-input"), "\r"))
		a.waitFor("the files sent without text", `[...document.querySelectorAll("#message-list .msg:not(.pending)")].some(m =>
			!m.querySelector(".msg-body") && [...m.querySelectorAll(".att-name")].map(n => n.textContent).join() === "dropped.txt,pasted.txt")`)
		b.waitFor("the inbox names the first file", `document.querySelector("#conversations").textContent.includes("📎 dropped.txt")`)

		// A reply quotes a message without text by its files.
		filesOnly := `[...document.querySelectorAll("#message-list .msg")].find(m => !m.querySelector(".msg-body") && m.querySelectorAll(".att-name").length === 2)`
		b.waitFor("the files in Bob's timeline", filesOnly)
		b.click("#" + eval[string](b, filesOnly+`.id`) + ` [data-action="reply"]`)
		send(b, "got the notes")
		a.waitFor("Bob's reply quoting the files", msgWhere("got the notes", `m.querySelector(".msg-quote")?.textContent === "↪ alice: 📎 dropped.txt, pasted.txt"`))
	})
}

// pngOf is a w×h PNG with a gradient, a real image the server can make a
// thumbnail of.
func pngOf(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{R: uint8(255 * x / w), G: uint8(255 * y / h), B: 160, A: 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// emulateNetworkConditionsByRule is Network.emulateNetworkConditionsByRule
// with the parameters Chromium 148 requires: it made "offline" a required
// parameter, which cdproto's EmulateNetworkConditionsByRuleParams lacks
// (an older browser ignores it).
var emulateNetworkConditionsByRule = cdp.Command[emulateByRuleParams, network.EmulateNetworkConditionsByRuleResult]{Method: network.CommandEmulateNetworkConditionsByRule}

type emulateByRuleParams struct {
	Offline                  bool                  `json:"offline"`
	MatchedNetworkConditions []*network.Conditions `json:"matchedNetworkConditions"`
}
