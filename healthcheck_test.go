package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/telemetry"
)

// execMainEnv, when set, makes the test binary run main() with the
// arguments after "--": the tests run the real command, exit status
// included, without building the binary.
const execMainEnv = "PARLEY_TEST_EXEC_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(execMainEnv) == "1" {
		for i, a := range os.Args {
			if a == "--" {
				os.Args = append([]string{"parley"}, os.Args[i+1:]...)
				break
			}
		}
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runMain runs `parley args...` as a process and returns its exit status,
// stdout and stderr.
func runMain(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(append(os.Environ(), execMainEnv+"=1"), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("running parley %v: %v", args, err)
	}
	return code, out.String(), errOut.String()
}

// readyServer serves the roles' real /readyz on a real listener; the
// returned flag says whether its one check passes.
func readyServer(t *testing.T) (*httptest.Server, *atomic.Bool) {
	t.Helper()
	var ready atomic.Bool
	r := chi.NewRouter()
	gateway.OpsRoutes(r, telemetry.New(), map[string]gateway.ReadyCheck{
		"kafka": func(context.Context) error {
			if ready.Load() {
				return nil
			}
			return errors.New("dial tcp kafka:9092: connection refused")
		},
		"presence": func(context.Context) error {
			if ready.Load() {
				return nil
			}
			return errors.New("still reading chat.presence")
		},
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv, &ready
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	srv, ready := readyServer(t)
	addr := strings.TrimPrefix(srv.URL, "http://")
	envAddr := func(k string) string {
		if k == "PARLEY_HTTP_ADDR" {
			return addr
		}
		return ""
	}

	t.Run("a role that is not ready fails with every reason on one line", func(t *testing.T) {
		var out, errOut bytes.Buffer
		err := run(t.Context(), []string{"healthcheck"}, envAddr, nil, &out, &errOut)
		if exitCode(err) != 1 {
			t.Fatalf("healthcheck of a 503: %v (exit %d), want exit 1", err, exitCode(err))
		}
		msg := err.Error()
		for _, want := range []string{"503", "kafka:9092", "still reading chat.presence"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not mention %q", msg, want)
			}
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("error %q is more than one line", msg)
		}
	})

	ready.Store(true)
	t.Run("a ready role passes, found through PARLEY_HTTP_ADDR", func(t *testing.T) {
		var out bytes.Buffer
		if err := run(t.Context(), []string{"healthcheck"}, envAddr, nil, &out, &out); err != nil {
			t.Fatalf("healthcheck of a ready role: %v", err)
		}
		if !strings.Contains(out.String(), srv.URL+"/readyz") {
			t.Errorf("output %q does not name the URL it asked", out.String())
		}
	})
	t.Run("-url overrides the address", func(t *testing.T) {
		var out bytes.Buffer
		err := run(t.Context(), []string{"healthcheck", "-url", srv.URL + "/readyz"}, noEnv, nil, &out, &out)
		if err != nil {
			t.Fatalf("healthcheck -url: %v", err)
		}
		err = run(t.Context(), []string{"healthcheck", "-url", srv.URL + "/no-such-path"}, envAddr, nil, &out, &out)
		if exitCode(err) != 1 || !strings.Contains(err.Error(), "404") {
			t.Errorf("healthcheck -url of a 404: %v, want exit 1 naming the status", err)
		}
	})
	t.Run("a closed port fails", func(t *testing.T) {
		var out bytes.Buffer
		err := run(t.Context(), []string{"healthcheck", "-url", "http://" + closedAddr(t) + "/readyz"}, noEnv, nil, &out, &out)
		if exitCode(err) != 1 || !strings.Contains(err.Error(), "refused") {
			t.Errorf("healthcheck of a closed port: %v, want exit 1 and connection refused", err)
		}
	})
}

// TestHealthcheckProcess runs the command as a process, as a compose
// healthcheck does: the exit status is what Docker reads.
func TestHealthcheckProcess(t *testing.T) {
	t.Parallel()
	srv, ready := readyServer(t)
	addr := "PARLEY_HTTP_ADDR=" + strings.TrimPrefix(srv.URL, "http://")

	code, _, stderr := runMain(t, []string{addr}, "healthcheck")
	if code != 1 {
		t.Errorf("not ready: exit %d, want 1 (stderr %q)", code, stderr)
	}
	if lines := strings.Count(stderr, "\n"); lines != 1 || !strings.Contains(stderr, "parley help") || !strings.Contains(stderr, "503") {
		t.Errorf("not ready: stderr %q, want one line naming the status and pointing to parley help", stderr)
	}

	ready.Store(true)
	if code, stdout, stderr := runMain(t, []string{addr}, "healthcheck"); code != 0 || stderr != "" || !strings.HasPrefix(stdout, "ready: ") {
		t.Errorf("ready: exit %d, stdout %q, stderr %q; want exit 0 and a ready line", code, stdout, stderr)
	}

	if code, _, stderr := runMain(t, []string{"PARLEY_HTTP_ADDR=" + closedAddr(t)}, "healthcheck"); code != 1 || !strings.Contains(stderr, "refused") {
		t.Errorf("closed port: exit %d, stderr %q; want 1 and connection refused", code, stderr)
	}
	if code, _, stderr := runMain(t, nil, "healthcheck", "-no-such-flag"); code != 1 {
		t.Errorf("bad flag: exit %d (stderr %q), want 1: Docker reserves 2", code, stderr)
	}
	if code, _, stderr := runMain(t, nil, "healthcheck", "-h"); code != 0 || !strings.Contains(stderr, "-url") {
		t.Errorf("healthcheck -h: exit %d, stderr %q; want 0 and the flags", code, stderr)
	}
	if code, _, _ := runMain(t, nil, "teleport"); code != 2 {
		t.Errorf("an unknown command: exit %d, want 2", code)
	}
}

func TestReadyURL(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"":               "http://127.0.0.1:8080/readyz",
		":8080":          "http://127.0.0.1:8080/readyz",
		":9000":          "http://127.0.0.1:9000/readyz",
		"0.0.0.0:8081":   "http://127.0.0.1:8081/readyz",
		"[::]:8082":      "http://127.0.0.1:8082/readyz",
		"10.0.0.7:8080":  "http://10.0.0.7:8080/readyz",
		"[::1]:8080":     "http://[::1]:8080/readyz",
		"localhost:8080": "http://localhost:8080/readyz",
	} {
		if got := readyURL(addr); got != want {
			t.Errorf("readyURL(%q) = %q, want %q", addr, got, want)
		}
	}
}
