package systemtest_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// buildParley builds the parley binary into a temporary directory.
func buildParley(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "parley")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building parley: %v\n%s", err, out)
	}
	return bin
}

// startParley runs bin with args as a separate process, killed at the
// end of the test, and waits until addr answers /readyz with 200.
func startParley(t *testing.T, bin, addr string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	eventually(t, func() bool {
		status, _, err := getPublic(t, addr, "/readyz")
		return err == nil && status == http.StatusOK
	})
	return cmd
}

// restartableRun builds parley and returns the address of a `parley run`
// over one data directory on fixed ports (four partitions, and extra
// settings), and start, which starts it: first, and again after kill9.
func restartableRun(t *testing.T, extra ...string) (addr string, start func() *exec.Cmd) {
	t.Helper()
	bin := buildParley(t)
	dir := t.TempDir()
	addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	kafka := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := append([]string{"run", "-data-dir", dir, "-http-addr", addr, "-kafka-listen", kafka, "-partitions", "4", "-log-level", "warn"}, extra...)
	return addr, func() *exec.Cmd {
		t.Helper()
		return startParley(t, bin, addr, args...)
	}
}

// kill9 kills cmd with SIGKILL — no shutdown, no flush, no commit — and
// reaps it.
func kill9(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}
