package web_test

import (
	"bytes"
	"io/fs"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/web"
)

// mlsRoundTrip runs, in the page, a two-member MLS group with the
// vendored ts-mls — key packages, a commit adding bob, his welcome, an
// application message each way — in the suite Parley accepts, and
// returns what each read.
const mlsRoundTrip = `(async () => {
  const m = await import("/static/vendor/ts-mls/dist/src/index.js");
  const impl = await m.getCiphersuiteImpl(m.getCiphersuiteFromName("MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"));
  const enc = new TextEncoder(), dec = new TextDecoder();
  const kp = (id) => m.generateKeyPackage({ credentialType: "basic", identity: enc.encode(id) }, m.defaultCapabilities(), m.defaultLifetime, [], impl);
  const alice = await kp("alice/browser"), bob = await kp("bob/browser");
  let a = await m.createGroup(enc.encode("g_browser"), alice.publicPackage, alice.privatePackage, [], impl);
  const c = await m.createCommit({ state: a, cipherSuite: impl }, { extraProposals: [{ proposalType: "add", add: { keyPackage: bob.publicPackage } }], ratchetTreeExtension: true });
  a = c.newState;
  const wire = m.encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: c.welcome });
  let b = await m.joinGroup(m.decodeMlsMessage(wire, 0)[0].welcome, bob.publicPackage, bob.privatePackage, m.emptyPskIndex, impl);
  const send = async (from, text) => {
    const r = await m.createApplicationMessage(from, enc.encode(text), impl);
    return [r.newState, m.encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: r.privateMessage })];
  };
  const read = async (to, bytes) => {
    const r = await m.processPrivateMessage(to, m.decodeMlsMessage(bytes, 0)[0].privateMessage, m.emptyPskIndex, impl);
    return [r.newState, dec.decode(r.message)];
  };
  let w, got1, got2;
  [a, w] = await send(a, "hello from alice");
  [b, got1] = await read(b, w);
  [b, w] = await send(b, "hello from bob");
  [a, got2] = await read(a, w);
  return got1 + " | " + got2 + " | epoch " + a.groupContext.epoch;
})()`

// TestBrowserRunsTheVendoredMLS: the vendored ts-mls loads in Chromium
// from the web handler, under its strict Content-Security-Policy (same
// origin modules only, no eval), and does real MLS there.
func TestBrowserRunsTheVendoredMLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium (a few seconds); make test runs it")
	}
	h, err := web.NewHandler(web.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	u := newBrowserUser(t, startBrowser(t), "alice")
	u.do(chromedp.Navigate(srv.URL + "/"))
	got := eval[string](u, mlsRoundTrip, chromedp.EvalAwaitPromise)
	if want := "hello from alice | hello from bob | epoch 1"; got != want {
		t.Errorf("in the browser: %q, want %q", got, want)
	}
}

// TestVendoredMLSIsFresh: web/static/vendor is exactly what `make
// web-vendor` makes from web/mlsvendor's locked packages.
func TestVendoredMLSIsFresh(t *testing.T) {
	// This file's directory, not the working directory: the embedded S3
	// server the other tests of this package start changes the process's
	// working directory to its root.
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot tell where this test file is")
	}
	dir := filepath.Dir(self)
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "mlsvendor", "node_modules", "ts-mls", "package.json"))
	}
	if err != nil {
		t.Fatalf("cannot run web/mlsvendor/vendor.mjs (%v): install Node 20+ and npm; `make test` (make node-deps) runs npm ci in web/mlsvendor", err)
	}
	out := t.TempDir()
	vendor := exec.Command(node, "vendor.mjs", out)
	vendor.Dir = filepath.Join(dir, "mlsvendor")
	if b, err := vendor.CombinedOutput(); err != nil {
		t.Fatalf("vendor.mjs: %v\n%s", err, b)
	}
	want := files(t, out)
	got := files(t, filepath.Join(dir, "static", "vendor"))
	for name, b := range want {
		if !bytes.Equal(got[name], b) {
			t.Errorf("web/static/vendor/%s differs from what make web-vendor makes", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("web/static/vendor/%s is not made by make web-vendor", name)
		}
	}
}

func files(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
