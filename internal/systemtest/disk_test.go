package systemtest_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/diskspace/diskspacetest"
	"github.com/parley-chat/parley/schemas"
)

// TestAFullDiskRefusesWritesAndRecovers fills the data directory's file
// system for real, past PARLEY_DISK_RESERVE: the node refuses every
// write at once — a send over the socket, a send and a read marker over
// HTTP — with a retryable unavailable, appends nothing, keeps serving
// what it has, and takes writes again once the space is freed. (Uploads:
// internal/files/filestest, TestUploadsWaitForRoomOnTheDisk, where the
// embedded S3 server may run.)
func TestAFullDiskRefusesWritesAndRecovers(t *testing.T) {
	dir := t.TempDir()
	// The reserve sits a margin below today's free space, and the filler
	// takes twice the margin: what other processes write meanwhile (other
	// tests, package diskspace's fillers of 512 MiB among them) moves
	// neither across it.
	const margin = 1 << 30
	free := diskspacetest.Free(t, dir, 4*margin)
	sys := startSystem(t, dir, func(c *app.Config) { c.DiskReserve = int(free - margin) })
	defer stopSystem(t, sys)
	addr := sys.HTTPAddr()
	if low := metric(t, addr, "parley_disk_low"); low != 0 {
		t.Fatalf("parley_disk_low %v with room on the disk", low)
	}
	if b := metric(t, addr, "parley_disk_free_bytes"); b < float64(free-margin) {
		t.Errorf("parley_disk_free_bytes %v, want about %d", b, free)
	}
	if r := metric(t, addr, "parley_disk_reserve_bytes"); r != float64(free-margin) {
		t.Errorf("parley_disk_reserve_bytes %v, want the reserve, %d", r, free-margin)
	}
	alice := api{t, addr, token(t, "alice", time.Hour)}
	conv := alice.createDirect("bob")
	first := alice.send(conv, "before")
	eventuallyT(t, "the first message in history", func() bool { return newestInHistory(alice, conv) == first }, func() string { return "" })
	bob := dial(t, addr, token(t, "bob", time.Hour), false)

	release := diskspacetest.Fill(t, dir, 2*margin)
	waitMetric(t, addr, "parley_disk_low", 1)

	commands := sys.TopicNames().Topic(schemas.TopicCommands)
	receipts := sys.TopicNames().Topic(schemas.TopicReceipts)
	before := recordsIn(t, sys.Kafka(), commands) + recordsIn(t, sys.Kafka(), receipts)

	a := dial(t, addr, alice.token, false)
	a.send(map[string]any{"type": "send", "id": "full-1", "conversation_id": conv, "command_id": "during", "body": "hi"})
	fr := a.await(func(f map[string]any) bool { return f["id"] == "full-1" })
	if fr["type"] != "error" || fr["code"] != "unavailable" || fr["retryable"] != true || fr["retry_after_ms"] != float64(30000) {
		t.Errorf("a send over the socket with the disk full got %v, want a retryable unavailable error asking for 30 s", fr)
	}
	resp, raw := alice.request(http.MethodPost, "/v1/conversations/"+conv+"/messages", map[string]any{"command_id": "during", "body": "hi"})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "30" {
		t.Errorf("an HTTP send with the disk full: %d, Retry-After %q: %s; want 503 and 30", resp.StatusCode, resp.Header.Get("Retry-After"), raw)
	}
	if status, out := (api{t, addr, token(t, "bob", time.Hour)}).do(http.MethodPost, "/v1/conversations/"+conv+"/read", map[string]any{"seq": first}); status != http.StatusServiceUnavailable {
		t.Errorf("a read marker with the disk full: %d %v, want 503", status, out)
	}
	if after := recordsIn(t, sys.Kafka(), commands) + recordsIn(t, sys.Kafka(), receipts); after != before {
		t.Errorf("%d records appended while the disk was full, want none", after-before)
	}
	// What the node has, it still serves.
	if got := newestInHistory(alice, conv); got != first {
		t.Errorf("history with the disk full ends at seq %d, want %d", got, first)
	}
	if n := metric(t, addr, `parley_rejections_total{code="unavailable",where="gateway"}`); n != 3 {
		t.Errorf("%v unavailable refusals counted, want 3", n)
	}

	release()
	waitMetric(t, addr, "parley_disk_low", 0)
	a.send(map[string]any{"type": "send", "id": "room-1", "conversation_id": conv, "command_id": "during", "body": "hi"})
	fr = a.await(func(f map[string]any) bool { return f["id"] == "room-1" })
	if fr["type"] != "ack" || fr["seq"] != float64(first+1) {
		t.Fatalf("the same send once space was freed got %v, want its ack with seq %d", fr, first+1)
	}
	bob.await(func(f map[string]any) bool { return f["type"] == "event" && f["seq"] == float64(first+1) })
}

// waitMetric waits until addr's series reads want.
func waitMetric(t *testing.T, addr, series string, want float64) {
	t.Helper()
	eventuallyT(t, fmt.Sprintf("%s to read %v", series, want), func() bool { return metric(t, addr, series) == want },
		func() string { return fmt.Sprintf("%s reads %v", series, metric(t, addr, series)) })
}

// newestInHistory is the seq of the newest event of conv that a's user
// reads in the history, or -1.
func newestInHistory(a api, conv string) int {
	status, out := a.do(http.MethodGet, "/v1/conversations/"+conv+"/history", nil)
	if status != http.StatusOK {
		return -1
	}
	newest := -1
	for _, e := range toMaps(out["events"]) {
		newest = max(newest, int(e["seq"].(float64)))
	}
	return newest
}
