// Package pebblelog is what Parley's Pebble databases share about logs:
// Pebble's log lines passed to slog (Logger), for every Pebble database
// Parley opens, and the cleaner (DeletingCleaner) of the stores that
// blank an erased user's content, which must not keep old write-ahead
// logs around.
package pebblelog

import (
	"context"
	"fmt"
	"log/slog"

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

// Logger is a pebble.Logger that writes to an slog.Logger.
type Logger struct{ Log *slog.Logger }

// Infof logs at debug level: Pebble's informational lines are about its
// internals, not about Parley.
func (l Logger) Infof(format string, args ...any) {
	if l.Log.Enabled(context.Background(), slog.LevelDebug) {
		l.Log.Debug("pebble", "detail", fmt.Sprintf(format, args...))
	}
}

// Errorf logs at error level.
func (l Logger) Errorf(format string, args ...any) {
	l.Log.Error("pebble", "detail", fmt.Sprintf(format, args...))
}

// Fatalf logs and panics: Pebble calls it when it cannot go on, and
// expects it not to return.
func (l Logger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.Log.Error("pebble fatal", "detail", msg)
	panic("pebble: " + msg)
}
