package web_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/freeport"
)

// chromiumPath finds Debian's chromium (or another Chrome). A browser
// test without one fails, loudly: CI installs it (.ci/run).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: install Debian's chromium package (apt-get install chromium); .ci/run does")
	return ""
}

// startBrowser starts a headless Chromium for the test and returns the
// context of its first tab; the browser ends with the test.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root in CI containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.WindowSize(1280, 860),
		chromedp.UserDataDir(t.TempDir()),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Run starts the browser; it must not carry a deadline.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void]("1")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// browserUser is one user in a browser context of their own (their own
// cookies and storage), as if on another machine.
type browserUser struct {
	t    *testing.T
	name string
	ctx  context.Context
}

func newBrowserUser(t *testing.T, browser context.Context, name string) *browserUser {
	t.Helper()
	// Every uncaught exception and console.error of the page fails the
	// test: the client reports what it cannot handle there.
	var mu sync.Mutex
	var problems []string
	listen := chromedp.WithListener(func(ev any) {
		var p string
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			p = "uncaught: " + e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				p += " " + e.ExceptionDetails.Exception.Description
			}
		case *runtime.EventConsoleAPICalled:
			if e.Type != runtime.ConsoleAPICalledTypeError {
				return
			}
			p = "console.error:"
			for _, a := range e.Args {
				p += " " + string(a.Value) + a.Description
			}
		default:
			return
		}
		mu.Lock()
		problems = append(problems, p)
		mu.Unlock()
	})
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext(), listen)
	t.Cleanup(cancel)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("%s's page: %s", name, p)
		}
	})
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void]("1")); err != nil {
		t.Fatalf("%s: opening a browser context: %v", name, err)
	}
	return &browserUser{t: t, name: name, ctx: ctx}
}

// do runs actions, each bounded by 30 s.
func (u *browserUser) do(actions ...chromedp.Action[chromedp.Void]) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		u.t.Fatalf("%s: %v\n%s", u.name, err, u.snapshot())
	}
}

// click clicks the element sel names. The page draws a list item again
// when what it shows changes, so the element found may be replaced
// before the click lands; the click is then tried again on its
// successor, until 30 s have passed. (An error comes before the mouse
// events are sent, so a click is never sent twice.)
func (u *browserUser) click(sel string) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel)))
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			u.t.Fatalf("%s: clicking %s: %v\n%s", u.name, sel, err, u.snapshot())
		case <-tick.C:
		}
	}
}

// eval evaluates a JavaScript expression on the user's page.
func eval[T any](u *browserUser, js string, opts ...chromedp.EvaluateOption) T {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, opts...))
	if err != nil {
		u.t.Fatalf("%s: evaluating %s: %v\n%s", u.name, js, err, u.snapshot())
	}
	return v
}

// signInAsDev signs in on the development sign-in form as name, once
// the page shows it.
func (u *browserUser) signInAsDev(name string) {
	u.t.Helper()
	u.waitFor("the development sign-in form", `!document.querySelector("#dev-form").hidden`)
	u.do(
		chromedp.SendKeys(chromedp.CSS("#dev-user"), name),
		chromedp.Click(chromedp.CSS(`#dev-form button[type=submit]`)),
	)
}

// waitFor polls a JavaScript condition on the user's page until it is
// true, or fails the test after timeout: every wait of these tests is on
// what the page shows, never a sleep.
func (u *browserUser) waitFor(what, js string, timeout ...time.Duration) {
	u.t.Helper()
	d := 30 * time.Second
	if len(timeout) > 0 {
		d = timeout[0]
	}
	if ok, last := u.poll(js, d); !ok {
		u.t.Fatalf("%s: waited %s for %s (%s): last error %v\n%s", u.name, d, what, js, last, u.snapshot())
	}
}

// poll evaluates a JavaScript condition on the user's page every 50 ms
// until it is true (true), or d has passed (false, and the last error
// evaluating it, if any).
func (u *browserUser) poll(js string, d time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(u.ctx, d)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+js+")"))
		if err == nil && ok {
			return true, nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return false, last
		case <-tick.C:
		}
	}
}

// snapshot is what the page shows, for a failure's message, and what a
// test last read into window.__notes (the service worker's
// notifications), if it did.
func (u *browserUser) snapshot() string {
	ctx, cancel := context.WithTimeout(u.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(0, 4000) + (window.__notes === undefined ? "" : "\nwindow.__notes: " + window.__notes)`))
	if err != nil {
		return "(no snapshot: " + err.Error() + ")"
	}
	return "page of " + u.name + ": " + s
}

// screenshot saves the viewport as docs/screenshots/NAME.png when
// PARLEY_SCREENSHOTS names a directory (make screenshots).
func (u *browserUser) screenshot(name string) {
	u.t.Helper()
	dir := os.Getenv("PARLEY_SCREENSHOTS")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		u.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		u.t.Fatal(err)
	}
}

// freeAddr returns a loopback address nothing listens on, so that a
// system restarted on it is found where the browsers left it.
func freeAddr(t *testing.T) string {
	t.Helper()
	return freeport.Addr(t)
}

// startSystem starts every role in one process, as parley run does, on
// httpAddr and over dir.
func startSystem(t *testing.T, dir, httpAddr string, tweak ...func(*app.Config)) *app.System {
	t.Helper()
	cfg := testConfig(t, dir, httpAddr, tweak...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sys, err := app.Start(ctx, cfg, app.All, testLogger(cfg))
	if err != nil {
		t.Fatal(err)
	}
	return sys
}

// testConfig is the settings startSystem starts every role with.
func testConfig(t *testing.T, dir, httpAddr string, tweak ...func(*app.Config)) app.Config {
	t.Helper()
	cfg, err := app.Load("test", []string{
		"-data-dir", dir, "-http-addr", httpAddr, "-kafka-listen", "127.0.0.1:0",
		"-partitions", "2", "-log-level", "warn",
	}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range tweak {
		f(&cfg)
	}
	return cfg
}

// testLogger logs to standard error under -v, else nowhere.
func testLogger(cfg app.Config) *slog.Logger {
	var logOut io.Writer = io.Discard
	if testing.Verbose() {
		logOut = os.Stderr
	}
	return cfg.Logger(logOut)
}

func stopSystem(t *testing.T, sys *app.System) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sys.Stop(ctx); err != nil {
		t.Errorf("stopping: %v", err)
	}
}

// js quotes s as a JavaScript string literal.
func js(s string) string { return strconv.Quote(s) }

// sprintf is fmt.Sprintf, for building expressions.
func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
