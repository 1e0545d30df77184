package systemtest_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
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
	startReady(t, cmd, addr)
	return cmd
}

// startReady starts cmd, a parley process serving HTTP on addr, which is
// killed at the end of the test, and waits until addr answers /readyz
// with 200.
func startReady(t *testing.T, cmd *exec.Cmd, addr string) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	eventually(t, func() bool {
		status, _, err := getPublic(t, addr, "/readyz")
		return err == nil && status == http.StatusOK
	})
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

// TestALowOpenFilesLimitIsWarnedOf: `parley run` under a limit of open
// files that would turn sockets away at a few hundred still starts, and
// says so as it starts, with the limit; under this machine's limit it
// warns only if that is low too.
func TestALowOpenFilesLimitIsWarnedOf(t *testing.T) {
	bin := buildParley(t)
	var own unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &own); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		limit string
		warns bool
	}{
		{"1024", "ulimit -n 1024; ", true},
		{"the machine's", "", own.Max < 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			kafka := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			var stderr bytes.Buffer
			cmd := exec.Command("sh", "-c", tc.limit+`exec "$0" "$@"`, bin, "run", "-data-dir", t.TempDir(), "-http-addr", addr, "-kafka-listen", kafka, "-partitions", "4", "-log-level", "info")
			cmd.Stderr = &stderr // read once Wait has copied all of it
			startReady(t, cmd, addr)
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			log := stderr.String()
			if warned := strings.Contains(log, "the open files limit is low"); warned != tc.warns {
				t.Errorf("warned of a low open files limit: %v, want %v; the log:\n%s", warned, tc.warns, log)
			}
			if tc.warns && !strings.Contains(log, "open_files_limit=1024") {
				t.Errorf("the warning does not give the limit; the log:\n%s", log)
			}
		})
	}
}
