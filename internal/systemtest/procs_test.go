package systemtest_test

import (
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/parley-chat/parley/internal/app"
)

// TestServerProcessors: the parley binary runs its roles with the Go
// processors app.Procs gives for this machine, or with the GOMAXPROCS the
// environment sets.
func TestServerProcessors(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (builds the binary and starts it, about 5 s); make test runs it")
	}
	want, ok := app.Procs(os.Getenv, runtime.GOMAXPROCS(0))
	if !ok {
		n, err := strconv.Atoi(os.Getenv("GOMAXPROCS"))
		if err != nil {
			t.Fatal(err)
		}
		want = n
	}
	addr, start := restartableRun(t)
	start()
	if got := metric(t, addr, "go_sched_gomaxprocs_threads"); got != float64(want) {
		t.Errorf("parley run has GOMAXPROCS %v, want %d", got, want)
	}
}
