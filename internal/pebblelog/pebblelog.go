// Package pebblelog passes Pebble's log lines to slog, for every Pebble
// database Parley opens: the embedded history store and the decider's
// state.
package pebblelog

import (
	"context"
	"fmt"
	"log/slog"
)

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
