package diskspace_test

import (
	"bytes"
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/diskspace"
	"github.com/parley-chat/parley/internal/diskspace/diskspacetest"
)

// slack is how far apart two measurements of a file system other
// processes write to may be.
const slack = 256 << 20

// margin is how far below the free space the tests put a guard's
// reserve; they fill twice as much. Other tests' fillers must not cross
// it: internal/systemtest's margin of 1 GiB is well above what these
// fillers take.
const margin = 256 << 20

// TestFreeAgreesWithDf: Free measures what df reports as available.
func TestFreeAgreesWithDf(t *testing.T) {
	dir := t.TempDir()
	free, err := diskspace.Free(dir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("df", "--output=avail", "-B1", dir).Output()
	if err != nil {
		t.Fatalf("df: %v", err)
	}
	lines := strings.Fields(string(out))
	avail, err := strconv.ParseUint(lines[len(lines)-1], 10, 64)
	if err != nil {
		t.Fatalf("df printed %q: %v", out, err)
	}
	if diff := int64(free) - int64(avail); diff > slack || diff < -slack {
		t.Errorf("Free says %d bytes, df %d", free, avail)
	}
	if _, err := diskspace.Free(filepath.Join(dir, "missing")); err == nil {
		t.Error("Free of a directory that does not exist: no error")
	}
}

// TestGuardIsLowWhileFreeSpaceIsBelowTheReserve fills the file system
// for real: a file allocated past the reserve makes the guard Low, and
// removing it gives room again, each change logged once.
func TestGuardIsLowWhileFreeSpaceIsBelowTheReserve(t *testing.T) {
	dir := t.TempDir()
	free := diskspacetest.Free(t, dir, 3*margin)
	var logs bytes.Buffer
	g, err := diskspace.NewGuard(dir, free-margin, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if g.Low() {
		t.Fatalf("Low with %d bytes free and a reserve of %d", g.FreeBytes(), g.Reserve())
	}
	release := diskspacetest.Fill(t, dir, 2*margin)
	if err := g.Check(); err != nil {
		t.Fatal(err)
	}
	if !g.Low() {
		t.Fatalf("not Low with %d bytes free and a reserve of %d", g.FreeBytes(), g.Reserve())
	}
	release()
	if err := g.Check(); err != nil {
		t.Fatal(err)
	}
	if g.Low() {
		t.Fatalf("still Low with %d bytes free again and a reserve of %d", g.FreeBytes(), g.Reserve())
	}
	if err := g.Check(); err != nil {
		t.Fatal(err)
	}
	got := logs.String()
	if strings.Count(got, "level=WARN") != 1 || strings.Count(got, "level=INFO") != 1 || strings.Index(got, "level=WARN") > strings.Index(got, "level=INFO") {
		t.Errorf("want one warning as the space ran low, then one line as it came back; logged:\n%s", got)
	}

	off, err := diskspace.NewGuard(dir, 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if off.Low() {
		t.Error("a guard with no reserve is Low")
	}
	if _, err := diskspace.NewGuard(filepath.Join(dir, "missing"), 0, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a guard of a directory that does not exist: no error")
	}
}

// TestGuardRunMeasuresUntilStopped: Run takes a change in free space
// without being asked, and returns once its context is done.
func TestGuardRunMeasuresUntilStopped(t *testing.T) {
	dir := t.TempDir()
	free := diskspacetest.Free(t, dir, 3*margin)
	g, err := diskspace.NewGuard(dir, free-margin, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.Run(ctx, 10*time.Millisecond)
	}()
	diskspacetest.Fill(t, dir, 2*margin)
	deadline := time.Now().Add(10 * time.Second)
	for !g.Low() {
		if time.Now().After(deadline) {
			t.Fatalf("Run did not notice the file system go below the reserve: %d free, reserve %d", g.FreeBytes(), g.Reserve())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return once its context was done")
	}
}
