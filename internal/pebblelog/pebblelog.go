// Package pebblelog is what Parley's Pebble databases share about logs:
// Pebble's log lines passed to slog (Logger, which logs an error that
// keeps coming once per interval), for every Pebble database Parley
// opens, and the cleaner (DeletingCleaner) of the stores that blank an
// erased user's content, which must not keep old write-ahead logs
// around.
package pebblelog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// DeletingCleaner is a pebble.Cleaner that deletes obsolete files, as
// Pebble's default cleaner does, and tells Pebble that it needs their
// contents (the promoted marker of pebble.ArchiveCleaner), which makes
// Pebble delete obsolete write-ahead logs rather than recycle them: a
// recycled log keeps the bytes of old writes in its tail, so a value
// overwritten to erase it, then flushed and compacted, would survive
// there. The cost is a file created per memtable rather than one reused.
type DeletingCleaner struct {
	pebble.DeleteCleaner
	marker
}

// marker carries pebble.ArchiveCleaner's marker method one level deeper
// than DeletingCleaner's Clean, so that Clean deletes.
type marker struct{ pebble.ArchiveCleaner }

// Logger is a pebble.Logger that writes to an slog.Logger. An error
// Pebble meets again and again — a flush retried on a full disk fails
// about a hundred times a second — is logged once, then at most once per
// repeatEvery with how many of its kind were left out: a log that floods
// a full disk makes it fuller.
type Logger struct {
	log *slog.Logger
	now func() time.Time

	mu sync.Mutex
	// errs is when each kind of error (Pebble's format) was last logged
	// and how many of it were not logged since. Pebble's formats are a
	// fixed set, so it stays small.
	errs map[string]streak
}

// streak is one kind of error's last logged line and what followed it.
type streak struct {
	at   time.Time
	left int
}

// repeatEvery is how often an error that keeps coming is logged.
const repeatEvery = 10 * time.Second

// NewLogger returns a Logger writing to log.
func NewLogger(log *slog.Logger) *Logger {
	return &Logger{log: log, now: time.Now, errs: map[string]streak{}}
}

// Infof logs at debug level: Pebble's informational lines are about its
// internals, not about Parley.
func (l *Logger) Infof(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug("pebble", "detail", fmt.Sprintf(format, args...))
	}
}

// Errorf logs at error level, the first of a kind of error and then at
// most one of it every repeatEvery.
func (l *Logger) Errorf(format string, args ...any) {
	now := l.now()
	l.mu.Lock()
	s, seen := l.errs[format]
	if seen && now.Sub(s.at) < repeatEvery {
		s.left++
		l.errs[format] = s
		l.mu.Unlock()
		return
	}
	l.errs[format] = streak{at: now}
	l.mu.Unlock()
	attrs := []any{"detail", fmt.Sprintf(format, args...)}
	if s.left > 0 {
		attrs = append(attrs, "left_out", s.left)
	}
	l.log.Error("pebble", attrs...)
}

// Fatalf logs and panics: Pebble calls it when it cannot go on, and
// expects it not to return.
func (l *Logger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("pebble fatal", "detail", msg)
	panic("pebble: " + msg)
}
