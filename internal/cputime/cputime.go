// Package cputime reads the CPU time the process has used, user and
// system together (getrusage), so that a benchmark counts the work its
// calls leave to background goroutines — a store's flushes and
// compactions, an index's merges — and not only the calls' own time.
package cputime

import (
	"fmt"
	"syscall"
	"time"
)

// Process returns the CPU time the process has used so far.
func Process() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
