package systemtest_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestAcknowledgedFileSurvivesKill9: with the real binary and its
// embedded S3 server, a file whose upload the store acknowledged and
// whose message Parley acknowledged survives a kill -9 of `parley run`
// that comes in the middle of another upload; the cut-off upload left
// nothing a message could name, and uploads work again after the
// restart.
func TestAcknowledgedFileSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (builds the binary and restarts it after a kill -9); make test runs it")
	}
	addr, start := restartableRun(t)
	cmd := start()
	alice := api{t, addr, token(t, "alice", time.Hour)}
	bob := api{t, addr, token(t, "bob", time.Hour)}
	conv := alice.createDirect("bob")

	kept := bytes.Repeat([]byte("acknowledged bytes "), 5000)
	id := uploadFile(t, alice, conv, "kept.bin", kept)
	status, out := alice.do("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"command_id": "f1", "body": "", "attachments": []map[string]any{{"upload_id": id}}})
	if status != http.StatusCreated {
		t.Fatalf("send: %d %v", status, out)
	}
	seq := int(out["seq"].(float64))

	// An upload in flight: half its bytes sent, then kill -9.
	cut := bytes.Repeat([]byte("never finished "), 100000)
	status, up := alice.do("POST", "/v1/conversations/"+conv+"/uploads", uploadRequest("cut.bin", cut))
	if status != http.StatusCreated {
		t.Fatalf("upload: %d %v", status, up)
	}
	pr, pw := io.Pipe()
	req := presignedPut(t, up, pr, len(cut))
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 {
				err = fmt.Errorf("the cut-off PUT succeeded: %d", resp.StatusCode)
			} else {
				err = nil
			}
		}
		done <- err
	}()
	if _, err := pw.Write(cut[:len(cut)/2]); err != nil {
		t.Fatal(err)
	}
	kill9(t, cmd)
	_ = pw.CloseWithError(io.ErrUnexpectedEOF)
	<-done // the PUT fails one way or another; it is never acknowledged

	start()
	alice, bob = api{t, addr, alice.token}, api{t, addr, bob.token}
	var link string
	eventually(t, func() bool {
		resp := noFollow(t, bob, fmt.Sprintf("/v1/conversations/%s/messages/%d/attachments/0", conv, seq))
		link = resp.Header.Get("Location")
		return resp.StatusCode == http.StatusFound
	})
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, kept) {
		t.Errorf("the acknowledged file after the kill: %d, %d bytes of %d", resp.StatusCode, len(got), len(kept))
	}
	status, out = alice.do("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"command_id": "f2", "body": "", "attachments": []map[string]any{{"upload_id": up["upload_id"]}}})
	if status != http.StatusUnprocessableEntity || out["code"] != "upload_invalid" {
		t.Errorf("a message naming the cut-off upload: %d %v, want 422 upload_invalid", status, out)
	}
	uploadFile(t, alice, conv, "after.bin", []byte("uploads work after the restart"))
}

func uploadRequest(name string, data []byte) map[string]any {
	sum := sha256.Sum256(data)
	return map[string]any{"name": name, "size": len(data), "content_type": "application/octet-stream", "sha256": hex.EncodeToString(sum[:])}
}

func presignedPut(t *testing.T, up map[string]any, body io.Reader, size int) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, up["url"].(string), body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range up["headers"].(map[string]any) {
		req.Header.Set(k, v.(string))
	}
	req.ContentLength = int64(size)
	return req
}

// uploadFile uploads data to conv through a presigned PUT and returns
// the upload id.
func uploadFile(t *testing.T, a api, conv, name string, data []byte) string {
	t.Helper()
	status, up := a.do("POST", "/v1/conversations/"+conv+"/uploads", uploadRequest(name, data))
	if status != http.StatusCreated {
		t.Fatalf("upload: %d %v", status, up)
	}
	resp, err := http.DefaultClient.Do(presignedPut(t, up, bytes.NewReader(data), len(data)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	return up["upload_id"].(string)
}

// noFollow sends a GET with a's token without following a redirect.
func noFollow(t *testing.T, a api, path string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+a.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}
