// Package grouptest runs a consumer group for the length of a test, as
// the tests of every projection do.
package grouptest

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/consumers"
)

// Run runs consumers.RunGroup with cfg and p until the test ends, then
// stops it and fails the test if it returned an error or did not stop
// within 20 s.
func Run[T any](t testing.TB, cfg consumers.GroupConfig, p consumers.Projection[T]) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- consumers.RunGroup(ctx, cfg, p) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("RunGroup: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("RunGroup did not stop within 20s")
		}
	})
}
