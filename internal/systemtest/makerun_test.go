package systemtest_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMakeRunStopsOnSIGTERM starts Parley as the README does, with `make
// run`, and stops it as a service manager would, with SIGTERM to make: the
// server itself must get the signal and exit, freeing its ports — not stay
// behind, orphaned, holding them.
func TestMakeRunStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (builds and starts Parley through make, about 8 s); make test runs it")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is not installed: apt-get install make")
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	broker := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	mk := exec.Command("make", "run", "BIN="+filepath.Join(dir, "parley"), "DATA_DIR="+filepath.Join(dir, "data"))
	mk.Dir = "../.."
	mk.Env = append(os.Environ(), "PARLEY_HTTP_ADDR="+addr, "PARLEY_KAFKA_LISTEN="+broker)
	var out strings.Builder
	mk.Stdout, mk.Stderr = &out, &out
	if err := mk.Start(); err != nil {
		t.Fatal(err)
	}
	exited := waitFor(mk)
	t.Cleanup(func() { _ = mk.Process.Kill() })

	// The build comes first: the bound is for a broken run, not a target.
	if !within(5*time.Minute, func() bool {
		status, _, err := getPublic(t, addr, "/readyz")
		return err == nil && status == http.StatusOK
	}) {
		t.Fatalf("make run was not ready within 5m:\n%s", out.String())
	}
	server := childOf(t, mk.Process.Pid)
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", server)); filepath.Base(exe) != "parley" {
		t.Fatalf("make's child is %s, want the parley binary itself (the recipe execs it)", exe)
	}
	t.Cleanup(func() { _ = syscall.Kill(server, syscall.SIGKILL) })

	if err := mk.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(2 * time.Minute):
		t.Fatalf("make did not exit within 2m of SIGTERM:\n%s", out.String())
	}
	if !within(time.Minute, func() bool { return !alive(server) }) {
		t.Fatalf("the server (pid %d) outlived make:\n%s", server, out.String())
	}
	if !within(time.Minute, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	}) {
		t.Fatalf("%s still accepts connections after the server exited", addr)
	}
	if !strings.Contains(out.String(), "shutting down") {
		t.Errorf("the server did not shut down cleanly on SIGTERM:\n%s", out.String())
	}
}

func waitFor(cmd *exec.Cmd) <-chan error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return done
}

// childOf returns the one child process of pid.
func childOf(t *testing.T, pid int) int {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(raw))
	if len(fields) != 1 {
		t.Fatalf("make (pid %d) has children %q, want one: the server", pid, fields)
	}
	child, err := strconv.Atoi(fields[0])
	if err != nil {
		t.Fatal(err)
	}
	return child
}

// alive reports whether pid is a process that has not exited (a zombie
// has exited).
func alive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state …: the state follows the last ')'.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}
