package keydir_test

import (
	"log/slog"
	"testing"

	"github.com/parley-chat/parley/internal/keydir"
	"github.com/parley-chat/parley/internal/keydir/keydirtest"
)

// TestDirectory runs the conformance suite against the Pebble adapter,
// in memory. A Pebble directory belongs to one process, so the suite's
// concurrent tests run on one instance.
func TestDirectory(t *testing.T) {
	t.Parallel()
	keydirtest.Run(t, keydirtest.Adapter{
		Open: func(t *testing.T, o keydirtest.Options) keydirtest.Directory {
			var opts []keydir.Option
			if o.Recorder != nil {
				opts = append(opts, keydir.WithRecorder(o.Recorder))
			}
			if o.Now != nil {
				opts = append(opts, keydir.WithClock(o.Now))
			}
			d, err := keydir.Open(t.TempDir(), slog.New(slog.DiscardHandler), opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			return d
		},
	})
}
