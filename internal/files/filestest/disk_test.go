package filestest_test

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/diskspace/diskspacetest"
)

// TestUploadsWaitForRoomOnTheDisk: while the data directory's file
// system is below PARLEY_DISK_RESERVE — filled for real — an upload is
// refused at once with a retryable unavailable and a Retry-After,
// nothing presigned; once the space is freed the same upload goes
// through, to the end.
func TestUploadsWaitForRoomOnTheDisk(t *testing.T) {
	dir := t.TempDir()
	// As in internal/systemtest's TestAFullDiskRefusesWritesAndRecovers:
	// a margin that what other tests write meanwhile does not cross.
	const margin = 1 << 30
	free := diskspacetest.Free(t, dir, 4*margin)
	sys := startSystem(t, dir, "-disk-reserve", strconv.FormatUint(free-margin, 10))
	defer stopSystem(t, sys)
	alice := newClient(t, sys, "alice")
	conv := alice.createGroup("bob")
	data := []byte("a file for a full disk")

	release := diskspacetest.Fill(t, dir, 2*margin)
	eventually(t, "the node to see its disk low", func() bool { return diskLow(t, sys) == 1 })
	resp, out := alice.do("POST", "/v1/conversations/"+conv+"/uploads", uploadsDoc, fileRequest("full.txt", "text/plain", data))
	if resp.StatusCode != http.StatusServiceUnavailable || out["code"] != "unavailable" || out["retryable"] != true || resp.Header.Get("Retry-After") != "30" {
		t.Errorf("an upload with the disk full: %d %v, Retry-After %q; want 503, a retryable unavailable and 30", resp.StatusCode, out, resp.Header.Get("Retry-After"))
	}

	release()
	eventually(t, "the node to see room on its disk", func() bool { return diskLow(t, sys) == 0 })
	alice.upload(conv, "full.txt", "text/plain", data)
}

// diskLow reads parley_disk_low from sys's /metrics, or -1.
func diskLow(t *testing.T, sys *app.System) float64 {
	t.Helper()
	resp, err := http.Get("http://" + sys.HTTPAddr() + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "parley_disk_low "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("parley_disk_low: %v", err)
			}
			return f
		}
	}
	return -1
}
