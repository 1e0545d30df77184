package cputime_test

import (
	"crypto/sha256"
	"testing"

	"github.com/parley-chat/parley/internal/cputime"
)

// TestProcessCountsWork: the process's CPU time grows with work done.
func TestProcessCountsWork(t *testing.T) {
	before, err := cputime.Process()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(nil)
	for range 200_000 {
		sum = sha256.Sum256(sum[:])
	}
	after, err := cputime.Process()
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Errorf("CPU time %v after hashing, %v before: want it to grow", after, before)
	}
}
