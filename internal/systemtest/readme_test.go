package systemtest_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/walkthrough"
)

// TestREADME runs the README as a reader would, against a fresh `parley
// run`: every shell block in order in one shell, every WebSocket transcript
// through `parley ws`, every output compared to the shape shown
// (internal/walkthrough says how the README marks them). The README's
// addresses, localhost:8080 and localhost:9092, are rewritten to this
// test's; the reader's `make run` is this test's start of the same binary.
func TestREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (builds the binary and plays the whole README against it, about 15 s); make test runs it")
	}
	for _, tool := range []string{"bash", "curl", "jq", "kcat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's commands need %s: apt-get install %s (.ci/run does)", tool, tool)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := walkthrough.Blocks(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	ran := map[string]int{}
	for _, b := range blocks {
		switch b.Lang {
		case "sh", "ws", "console", "", "json", "yaml", "text":
			ran[b.Lang]++
		default:
			t.Fatalf("%v: mark shell commands sh (run by this test) or console (shown only), transcripts ws NAME", b)
		}
	}
	if ran["sh"] < 5 || ran["ws"] < 3 {
		t.Fatalf("the README has %d shell blocks and %d transcripts to run: has the marking changed?", ran["sh"], ran["ws"])
	}

	bin := buildParley(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	broker := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startParley(t, bin, addr, "run", "-data-dir", t.TempDir(), "-http-addr", addr, "-kafka-listen", broker)

	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PARLEY_") {
			env = append(env, kv)
		}
	}
	var log strings.Builder
	r := &walkthrough.Runner{
		Dir:     filepath.Dir(bin),
		Env:     append(env, "PARLEY_HTTP_ADDR="+addr),
		Rewrite: strings.NewReplacer("localhost:8080", addr, "localhost:9092", broker),
		Wait:    2 * time.Minute, // a bound for a broken run, not a latency target
		Log:     &log,
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	fail := func(err error) {
		t.Helper()
		if testing.Verbose() {
			t.Logf("the run so far:\n%s", log.String())
		}
		t.Fatal(err)
	}
	for _, b := range blocks {
		if err := r.Run(b); err != nil {
			r.Close()
			fail(err)
		}
	}
	if err := r.Close(); err != nil {
		fail(err)
	}
	t.Logf("ran %d shell blocks and %d transcripts; %d blocks shown only", ran["sh"], ran["ws"], ran["console"])
}
