package push_test

import (
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/disktest"
	"github.com/parley-chat/parley/projections/push"
	"github.com/parley-chat/parley/schemas"
)

// TestErasureBlanksPendingPreviews: the push group reads chat.audit too;
// an erasure blanks the preview of a notification still pending (held by
// the coalescing window) whose newest message is the erased user's, and
// no file of the push store keeps it; the notification still goes, with
// no text.
func TestErasureBlanksPendingPreviews(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerWebPush("bob", "bob-laptop")
	stop := e.start(push.Config{Window: time.Hour, PreviewRunes: 100})
	e.waitRegistered("bob", "bob-laptop")
	e.create("g1", "alice", "bob")
	e.send("g1", "alice", "hello bob")
	eventually(t, "bob notified of the first message", func() bool { return len(e.webPushes("bob-laptop")) == 1 })
	e.send("g1", "alice", "the vault code is 4711")
	previews := func() []string {
		p, err := e.p.PendingPreviews()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	eventually(t, "the second message pending, with its preview", func() bool {
		return slices.Equal(previews(), []string{"the vault code is 4711"})
	})

	rec, err := contentkeys.ErasureRecord("alice", "olga", time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	e.write(schemas.TopicAudit, rec)
	eventually(t, "the pending preview blanked", func() bool { return slices.Equal(previews(), []string{""}) })
	stop()
	found, read, err := disktest.FilesHolding(e.dir, "vault code")
	if err != nil || read == 0 {
		t.Fatalf("reading the store's files: %d read, %v", read, err)
	}
	for _, f := range found {
		t.Errorf("the erased preview is still on disk: %s", f)
	}
}
