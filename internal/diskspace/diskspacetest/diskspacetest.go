// Package diskspacetest fills a file system for real, for the tests of
// what Parley does when its disk runs low: a file whose blocks are
// allocated at once (fallocate), gigabytes in milliseconds, freed by
// removing it.
package diskspacetest

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/parley-chat/parley/internal/diskspace"
)

// Free returns the free space of dir's file system, and fails the test
// if it is less than need.
func Free(t testing.TB, dir string, need uint64) uint64 {
	t.Helper()
	free, err := diskspace.Free(dir)
	if err != nil {
		t.Fatal(err)
	}
	if free < need {
		t.Fatalf("the test needs %d bytes free on the file system of %s, it has %d", need, dir, free)
	}
	return free
}

// Fill takes size bytes of dir's file system at once, in a new file of
// dir, and returns what gives them back.
func Fill(t testing.TB, dir string, size int64) (release func()) {
	t.Helper()
	f, err := os.CreateTemp(dir, "filler-")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		_ = f.Close()
		t.Fatalf("allocating %d bytes in %s (the test needs a file system with fallocate): %v", size, dir, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Clean(f.Name())
	return func() {
		t.Helper()
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}
