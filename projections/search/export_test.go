package search

import (
	"io"
	"time"
)

// NewProgressForTest is ProgressPrinter with a clock.
func NewProgressForTest(w io.Writer, interval time.Duration, now func() time.Time) func(done, total int64) {
	return newProgress(w, interval, now).report
}
