package filestest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/schemas"
	"github.com/parley-chat/parley/schemas/contractcheck"
	"github.com/parley-chat/parley/schemas/schemacheck"
)

var newContract = sync.OnceValues(contractcheck.New)

// noRedirect does not follow redirects, so that a test sees the 302.
var noRedirect = &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func startSystem(t *testing.T, dir string, args ...string) *app.System {
	t.Helper()
	cfg, err := app.Load("test", append([]string{
		"-data-dir", dir, "-http-addr", "127.0.0.1:0", "-kafka-listen", "127.0.0.1:0",
		"-partitions", "2", "-log-level", "warn",
	}, args...), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	logs := &systemLog{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the system's warnings and errors:\n%s", logs)
		}
	})
	sys, err := app.Start(ctx, cfg, app.All, cfg.Logger(logs))
	if err != nil {
		t.Fatal(err)
	}
	return sys
}

// systemLog keeps what a system logs, for a test that fails.
type systemLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *systemLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *systemLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func stopSystem(t *testing.T, sys *app.System) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sys.Stop(ctx); err != nil {
		t.Errorf("stopping: %v", err)
	}
}

// client is one user of the HTTP API.
type client struct {
	t     *testing.T
	base  string
	user  string
	token string
}

func newClient(t *testing.T, sys *app.System, user string) client {
	t.Helper()
	a, err := gateway.NewAuthenticator(gateway.AuthConfig{Secret: []byte(app.DevSecret)})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.Issue(user, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return client{t: t, base: "http://" + sys.HTTPAddr(), user: user, token: tok}
}

// do sends a request and checks the answer against the OpenAPI document
// (docPath is the path template); errors must be problem+json.
func (c client) do(method, path, docPath string, body any) (*http.Response, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	checker, err := newContract()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := checker.Response(method, docPath, resp.StatusCode, resp.Header.Get("Content-Type"), raw); err != nil {
		c.t.Errorf("%s %s: %v\n%.1000s", method, path, err, raw)
	}
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
		c.t.Errorf("%s %s: %d with Content-Type %q", method, path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var out map[string]any
	if len(raw) > 0 && strings.Contains(resp.Header.Get("Content-Type"), "json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return resp, out
}

func (c client) want(status int, method, path, docPath string, body any) map[string]any {
	c.t.Helper()
	resp, out := c.do(method, path, docPath, body)
	if resp.StatusCode != status {
		c.t.Fatalf("%s %s %s: %d %v, want %d", c.user, method, path, resp.StatusCode, out, status)
	}
	return out
}

// wantProblem checks a refusal: its status and code.
func (c client) wantProblem(status int, code, method, path, docPath string, body any) {
	c.t.Helper()
	resp, out := c.do(method, path, docPath, body)
	if resp.StatusCode != status || out["code"] != code {
		c.t.Errorf("%s %s %s: %d %v, want %d %s", c.user, method, path, resp.StatusCode, out, status, code)
	}
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func fileRequest(name, contentType string, data []byte) map[string]any {
	return map[string]any{"name": name, "size": len(data), "content_type": contentType, "sha256": sum(data)}
}

// upload asks for an upload of data in conv and PUTs data to it; it
// returns the upload id.
func (c client) upload(conv, name, contentType string, data []byte) string {
	c.t.Helper()
	up := c.want(http.StatusCreated, "POST", "/v1/conversations/"+conv+"/uploads", "/v1/conversations/{id}/uploads", fileRequest(name, contentType, data))
	if code, msg := put(c.t, up, data); code != http.StatusOK {
		c.t.Fatalf("PUT to the presigned URL: %d %s", code, msg)
	}
	return up["upload_id"].(string)
}

// put sends data to a presigned upload with its headers.
func put(t *testing.T, up map[string]any, data []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, up["url"].(string), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range up["headers"].(map[string]any) {
		req.Header.Set(k, v.(string))
	}
	req.ContentLength = int64(len(data))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func get(t *testing.T, link string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, not synchronising
	}
}

// history is the conversation's history as c reads it, or false while
// the history projection has not yet taken in the conversation's
// creation (404 conversation_not_found); any other answer fails the test.
func (c client) history(conv string) (map[string]any, bool) {
	c.t.Helper()
	resp, out := c.do("GET", "/v1/conversations/"+conv+"/history", "/v1/conversations/{id}/history", nil)
	switch {
	case resp.StatusCode == http.StatusNotFound && out["code"] == "conversation_not_found":
		return nil, false
	case resp.StatusCode != http.StatusOK:
		c.t.Fatalf("%s GET %s history: %d %v, want 200", c.user, conv, resp.StatusCode, out)
	}
	return out, true
}

func (c client) createGroup(members ...string) string {
	c.t.Helper()
	out := c.want(http.StatusCreated, "POST", "/v1/conversations", "/v1/conversations", map[string]any{"kind": "group", "title": "photos", "members": members})
	return out["conversation_id"].(string)
}

func (c client) lastSeq(conv string) float64 {
	c.t.Helper()
	out := c.want(http.StatusOK, "GET", "/v1/conversations/"+conv, "/v1/conversations/{id}", nil)
	return out["last_seq"].(float64)
}

const (
	messagesDoc   = "/v1/conversations/{id}/messages"
	uploadsDoc    = "/v1/conversations/{id}/uploads"
	attachmentDoc = "/v1/conversations/{id}/messages/{seq}/attachments/{n}"
)

// TestShareAPhoto: a photo goes up through a presigned PUT, travels in a
// message (HTTP and WebSocket) as metadata only, shows in history, the
// inbox preview and search, and comes down through a presigned GET for
// members only; every refusal is a problem with nothing appended, and
// deleting the message deletes the file.
func TestShareAPhoto(t *testing.T) {
	dir := t.TempDir()
	sys := startSystem(t, dir, "-max-file-bytes", "1048576")
	defer stopSystem(t, sys)
	alice, bob, carol, dave := newClient(t, sys, "alice"), newClient(t, sys, "bob"), newClient(t, sys, "carol"), newClient(t, sys, "dave")
	conv := alice.createGroup("bob", "carol")
	photo := bytes.Repeat([]byte("\xff\xd8 a JPEG, or nearly "), 3000)

	id := alice.upload(conv, "photo.jpg", "image/jpeg", photo)
	out := alice.want(http.StatusCreated, "POST", "/v1/conversations/"+conv+"/messages", messagesDoc,
		map[string]any{"command_id": "p1", "body": "", "attachments": []map[string]any{{"upload_id": id, "size": len(photo), "sha256": sum(photo)}}})
	seq := int(out["seq"].(float64))

	// History: chat.message.sent.v3 with the file's metadata.
	var ev map[string]any
	eventually(t, "the message in history", func() bool {
		hist, ok := bob.history(conv)
		if !ok {
			return false
		}
		for _, e := range hist["events"].([]any) {
			if m := e.(map[string]any); int(m["seq"].(float64)) == seq {
				ev = m
			}
		}
		return ev != nil
	})
	data := ev["data"].(map[string]any)
	atts, _ := data["attachments"].([]any)
	if ev["event_type"] != "chat.message.sent.v3" || len(atts) != 1 {
		t.Fatalf("history event %v", ev)
	}
	a := atts[0].(map[string]any)
	if a["name"] != "photo.jpg" || a["size"].(float64) != float64(len(photo)) || a["content_type"] != "image/jpeg" || a["sha256"] != sum(photo) || a["upload_id"] != id {
		t.Errorf("attachment %v", a)
	}

	// Download: a redirect to a presigned GET, with the file's name.
	path := fmt.Sprintf("/v1/conversations/%s/messages/%d/attachments/0", conv, seq)
	resp, _ := bob.do("GET", path, attachmentDoc, nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("download: %d", resp.StatusCode)
	}
	link := resp.Header.Get("Location")
	code, h, got := get(t, link)
	if code != http.StatusOK || !bytes.Equal(got, photo) {
		t.Fatalf("GET the presigned URL: %d, %d bytes", code, len(got))
	}
	if cd := h.Get("Content-Disposition"); !strings.Contains(cd, "attachment") || !strings.Contains(cd, "photo.jpg") {
		t.Errorf("Content-Disposition %q", cd)
	}
	asJSON := bob.want(http.StatusOK, "GET", path+"?redirect=false", attachmentDoc, nil)
	if asJSON["name"] != "photo.jpg" || !strings.Contains(asJSON["url"].(string), "X-Amz-Signature=") {
		t.Errorf("redirect=false: %v", asJSON)
	}
	// A URL for the same file with another signature, or another key
	// with this signature, is refused by the store.
	u, _ := url.Parse(link)
	q := u.Query()
	q.Set("X-Amz-Signature", strings.Repeat("0", 64))
	u.RawQuery = q.Encode()
	if code, _, _ := get(t, u.String()); code != http.StatusForbidden {
		t.Errorf("a tampered download URL: %d, want 403", code)
	}

	// Inbox preview and search.
	eventually(t, "the inbox preview", func() bool {
		list := bob.want(http.StatusOK, "GET", "/v1/conversations", "/v1/conversations", nil)
		for _, c := range list["conversations"].([]any) {
			cm := c.(map[string]any)
			if lm, ok := cm["last_message"].(map[string]any); ok && cm["conversation_id"] == conv {
				return lm["body"] == "📎 photo.jpg"
			}
		}
		return false
	})
	eventually(t, "the file name to be searchable", func() bool {
		res := bob.want(http.StatusOK, "GET", "/v1/search?q=photo", "/v1/search", nil)
		hits, _ := res["results"].([]any)
		return len(hits) == 1 && int(hits[0].(map[string]any)["seq"].(float64)) == seq
	})

	// Over the WebSocket: a send with a file is acknowledged; one naming
	// an upload that does not exist gets an error frame echoing its id.
	id2 := alice.upload(conv, "notes.txt", "text/plain", []byte("minutes of the meeting"))
	ws := dialWS(t, sys, alice.token)
	defer ws.CloseNow()
	writeFrame(t, ws, map[string]any{"type": "send", "id": "r1", "conversation_id": conv, "command_id": "w1", "body": "the notes", "attachments": []map[string]any{{"upload_id": id2}}})
	ack := readFrame(t, ws, "r1")
	if ack["type"] != "ack" || ack["seq"].(float64) != float64(seq+1) {
		t.Fatalf("ack %v", ack)
	}
	writeFrame(t, ws, map[string]any{"type": "send", "id": "r2", "conversation_id": conv, "command_id": "w2", "body": "", "attachments": []map[string]any{{"upload_id": "u_" + strings.Repeat("ab", 16)}}})
	if e := readFrame(t, ws, "r2"); e["type"] != "error" || e["code"] != "upload_invalid" {
		t.Errorf("a send naming no upload: %v", e)
	}

	// Refusals: each a problem, nothing appended.
	last := alice.lastSeq(conv)
	fresh := []byte("a fresh file")
	id3 := alice.upload(conv, "fresh.txt", "text/plain", fresh)
	send := func(c client, cmd string, att map[string]any) {
		t.Helper()
		c.wantProblem(http.StatusUnprocessableEntity, "upload_invalid", "POST", "/v1/conversations/"+conv+"/messages", messagesDoc,
			map[string]any{"command_id": cmd, "body": "x", "attachments": []map[string]any{att}})
	}
	send(carol, "c1", map[string]any{"upload_id": id3})                                 // not hers
	send(alice, "a1", map[string]any{"upload_id": id3, "size": len(fresh) + 1})         // another size
	send(alice, "a2", map[string]any{"upload_id": id3, "sha256": sum([]byte("other"))}) // another hash
	send(alice, "a3", map[string]any{"upload_id": id3, "content_type": "image/png"})    // another type
	neverPut := alice.want(http.StatusCreated, "POST", "/v1/conversations/"+conv+"/uploads", uploadsDoc, fileRequest("later.txt", "text/plain", fresh))
	send(alice, "a4", map[string]any{"upload_id": neverPut["upload_id"]}) // never uploaded
	if code, _ := put(t, neverPut, []byte("other bytes!")); code < 400 {  // same size, other hash
		t.Errorf("the store accepted bytes with another SHA-256: %d", code)
	}
	send(alice, "a5", map[string]any{"upload_id": neverPut["upload_id"]})
	dave.wantProblem(http.StatusForbidden, "not_member", "POST", "/v1/conversations/"+conv+"/uploads", uploadsDoc, fileRequest("x.txt", "text/plain", fresh))
	alice.wantProblem(http.StatusUnsupportedMediaType, "file_type_refused", "POST", "/v1/conversations/"+conv+"/uploads", uploadsDoc, fileRequest("setup.exe", "application/octet-stream", fresh))
	alice.wantProblem(http.StatusUnsupportedMediaType, "file_type_refused", "POST", "/v1/conversations/"+conv+"/uploads", uploadsDoc, fileRequest("run", "application/x-msdownload", fresh))
	alice.wantProblem(http.StatusRequestEntityTooLarge, "too_large", "POST", "/v1/conversations/"+conv+"/uploads", uploadsDoc,
		map[string]any{"name": "big.bin", "size": 1048577, "content_type": "application/octet-stream", "sha256": sum(fresh)})
	alice.wantProblem(http.StatusBadRequest, "invalid_request", "POST", "/v1/conversations/"+conv+"/uploads", uploadsDoc,
		map[string]any{"name": "../etc/passwd", "size": 1, "content_type": "text/plain", "sha256": sum(fresh)})
	alice.wantProblem(http.StatusBadRequest, "invalid_request", "POST", "/v1/conversations/"+conv+"/uploads", uploadsDoc,
		map[string]any{"name": "empty.txt", "size": 0, "content_type": "text/plain", "sha256": sum(nil)})
	if got := alice.lastSeq(conv); got != last {
		t.Errorf("refused requests appended: last seq %v, was %v", got, last)
	}

	// Downloads: members only; a former member is not one.
	dave.wantProblem(http.StatusForbidden, "not_member", "GET", path, attachmentDoc, nil)
	carol.want(http.StatusFound, "GET", path, attachmentDoc, nil)
	carol.want(http.StatusOK, "POST", "/v1/conversations/"+conv+"/leave", "/v1/conversations/{id}/leave", map[string]any{"command_id": "bye"})
	carol.wantProblem(http.StatusForbidden, "not_member", "GET", path, attachmentDoc, nil)
	bob.wantProblem(http.StatusNotFound, "not_found", "GET", fmt.Sprintf("/v1/conversations/%s/messages/%d/attachments/1", conv, seq), attachmentDoc, nil)

	// Deleting the message: no download through Parley, and the file
	// leaves the store, so even the URL presigned before stops working.
	alice.want(http.StatusOK, "DELETE", fmt.Sprintf("/v1/conversations/%s/messages/%d?command_id=del1", conv, seq), "/v1/conversations/{id}/messages/{seq}", nil)
	eventually(t, "the deleted message's file to be unreachable", func() bool {
		resp, _ := bob.do("GET", path, attachmentDoc, nil)
		return resp.StatusCode == http.StatusNotFound
	})
	eventually(t, "the deleted message's file to leave the store", func() bool {
		code, _, _ := get(t, link)
		return code == http.StatusNotFound
	})
}

func dialWS(t *testing.T, sys *app.System, token string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+sys.HTTPAddr()+"/v1/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeFrame(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	checker, err := newContract()
	if err != nil {
		t.Fatal(err)
	}
	if err := checker.ClientFrame(b); err != nil {
		t.Errorf("frame %s breaks the AsyncAPI document: %v", b, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// readFrame reads frames until the one answering request id.
func readFrame(t *testing.T, c *websocket.Conn, id string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checker, err := newContract()
		if err != nil {
			t.Fatal(err)
		}
		if err := checker.ServerFrame(b); err != nil {
			t.Errorf("frame %s breaks the AsyncAPI document: %v", b, err)
		}
		var f map[string]any
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		if f["id"] == id {
			return f
		}
	}
}

// TestFileSurvivesRestart: a file sent before a restart downloads after
// it, byte for byte, from the embedded store's files under the data dir;
// and the per-user upload rate holds.
func TestFileSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	sys := startSystem(t, dir, "-uploads-per-hour", "2")
	alice := newClient(t, sys, "alice")
	conv := alice.createGroup("bob")
	data := []byte("the report, final version")
	id := alice.upload(conv, "report.pdf", "application/pdf", data)
	out := alice.want(http.StatusCreated, "POST", "/v1/conversations/"+conv+"/messages", messagesDoc,
		map[string]any{"command_id": "r1", "body": "the report", "attachments": []map[string]any{{"upload_id": id}}})
	seq := int(out["seq"].(float64))
	alice.want(http.StatusCreated, "POST", "/v1/conversations/"+conv+"/uploads", uploadsDoc, fileRequest("b.txt", "text/plain", data))
	alice.wantProblem(http.StatusTooManyRequests, "rate_limited", "POST", "/v1/conversations/"+conv+"/uploads", uploadsDoc, fileRequest("c.txt", "text/plain", data))
	stopSystem(t, sys)
	if _, err := os.Stat(dir + "/files"); err != nil {
		t.Fatalf("no files under the data dir: %v", err)
	}

	sys = startSystem(t, dir)
	defer stopSystem(t, sys)
	bob := newClient(t, sys, "bob")
	path := fmt.Sprintf("/v1/conversations/%s/messages/%d/attachments/0", conv, seq)
	var link string
	last := 0
	defer func() {
		if t.Failed() {
			t.Logf("the attachment's last answer after the restart: %d", last)
		}
	}()
	eventually(t, "the message in history after the restart", func() bool {
		resp, _ := bob.do("GET", path, attachmentDoc, nil)
		link, last = resp.Header.Get("Location"), resp.StatusCode
		return resp.StatusCode == http.StatusFound
	})
	code, h, got := get(t, link)
	if code != http.StatusOK || !bytes.Equal(got, data) || !strings.Contains(h.Get("Content-Disposition"), "report.pdf") {
		t.Errorf("after the restart: %d %q %q", code, got, h.Get("Content-Disposition"))
	}
}

// TestThumbnailOfAPhoto: the thumbnail projection makes a JPEG of at most
// 320×320 of a PNG a message carries, announced by its own event in the
// conversation's history, downloadable by members; a text file gets
// none; deleting the message deletes the thumbnail too.
func TestThumbnailOfAPhoto(t *testing.T) {
	sys := startSystem(t, t.TempDir())
	defer stopSystem(t, sys)
	alice, bob := newClient(t, sys, "alice"), newClient(t, sys, "bob")
	conv := alice.createGroup("bob")
	img := image.NewRGBA(image.Rect(0, 0, 800, 600))
	for y := range 600 {
		for x := range 800 {
			img.Set(x, y, color.RGBA{uint8(x / 4), uint8(y / 3), 90, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	photo := alice.upload(conv, "sunset.png", "image/png", b.Bytes())
	notes := alice.upload(conv, "notes.txt", "text/plain", []byte("no picture here"))
	out := alice.want(http.StatusCreated, "POST", "/v1/conversations/"+conv+"/messages", messagesDoc,
		map[string]any{"command_id": "t1", "body": "look", "attachments": []map[string]any{{"upload_id": photo}, {"upload_id": notes}}})
	seq := out["seq"].(float64)

	var added map[string]any
	eventually(t, "chat.thumbnail.added.v1 in history", func() bool {
		hist, ok := bob.history(conv)
		if !ok {
			return false
		}
		for _, e := range hist["events"].([]any) {
			if ev := e.(map[string]any); ev["event_type"] == "chat.thumbnail.added.v1" {
				added = ev["data"].(map[string]any)
			}
		}
		return added != nil
	})
	if added["message_seq"] != seq || added["upload_id"] != photo || added["width"] != 320.0 || added["height"] != 240.0 || added["user_id"] != "alice" {
		t.Errorf("thumbnail event %v", added)
	}
	path := fmt.Sprintf("/v1/conversations/%s/messages/%d/attachments/0/thumbnail", conv, int(seq))
	resp, _ := bob.do("GET", path, attachmentDoc+"/thumbnail", nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("thumbnail: %d", resp.StatusCode)
	}
	link := resp.Header.Get("Location")
	code, _, jpg := get(t, link)
	if code != http.StatusOK {
		t.Fatalf("GET the thumbnail: %d", code)
	}
	thumb, err := jpeg.Decode(bytes.NewReader(jpg))
	if err != nil {
		t.Fatalf("the thumbnail is no JPEG: %v", err)
	}
	if bnd := thumb.Bounds(); bnd.Dx() != 320 || bnd.Dy() != 240 || float64(len(jpg)) != added["size"] {
		t.Errorf("thumbnail %v, %d bytes; the event says %v×%v, %v bytes", bnd, len(jpg), added["width"], added["height"], added["size"])
	}
	bob.wantProblem(http.StatusNotFound, "not_found", "GET", fmt.Sprintf("/v1/conversations/%s/messages/%d/attachments/1/thumbnail", conv, int(seq)), attachmentDoc+"/thumbnail", nil)

	alice.want(http.StatusOK, "DELETE", fmt.Sprintf("/v1/conversations/%s/messages/%d?command_id=del", conv, int(seq)), "/v1/conversations/{id}/messages/{seq}", nil)
	eventually(t, "the thumbnail to leave the store", func() bool {
		code, _, _ := get(t, link)
		return code == http.StatusNotFound
	})
	checkLog(t, sys)
}

// checkLog reads chat.commands and chat.events whole and checks every
// record against its JSON Schema, and that the log holds the record
// types of file sharing (which internal/systemtest, without a file
// store, cannot produce).
func checkLog(t *testing.T, sys *app.System) {
	t.Helper()
	v, err := schemacheck.New()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, topic := range []string{schemas.TopicCommands, schemas.TopicEvents} {
		for _, m := range kafkatest.ReadAll(t, sys.Kafka(), topic) {
			attrs, err := kafkalog.Decode(m)
			if err != nil {
				t.Fatalf("%s offset %d: %v", topic, m.Offset, err)
			}
			if err := v.Validate(attrs.Type, m.Value); err != nil {
				t.Errorf("%s offset %d (%s): %v\n%s", topic, m.Offset, attrs.Type, err, m.Value)
			}
			counts[attrs.Type]++
		}
	}
	for _, typ := range []string{schemas.TypeSendMessageV3, schemas.TypeMessageSentV3, schemas.TypeAddThumbnail, schemas.TypeThumbnailAdded} {
		if counts[typ] == 0 {
			t.Errorf("the log has no %s record", typ)
		}
	}
}

// TestRebuildFiles: after a file is sent, `parley rebuild files` over the
// stopped system's data dir finds the files projection's records in the
// embedded store what the log says; with the message's marker removed
// from the store behind the log's back, it names the conversation.
func TestRebuildFiles(t *testing.T) {
	dir := t.TempDir()
	sys := startSystem(t, dir)
	alice := newClient(t, sys, "alice")
	conv := alice.createGroup("bob")
	data := []byte("the minutes")
	id := alice.upload(conv, "minutes.txt", "text/plain", data)
	out := alice.want(http.StatusCreated, "POST", "/v1/conversations/"+conv+"/messages", messagesDoc,
		map[string]any{"command_id": "m1", "body": "the minutes", "attachments": []map[string]any{{"upload_id": id}}})
	// The embedded store keeps each object as a file under the data dir:
	// the files projection is done with the message when its upload's
	// marker and its list (written last) are there.
	var marker, list string
	eventually(t, "the upload marked attached and the message's list", func() bool {
		marker, list = "", ""
		_ = filepath.WalkDir(filepath.Join(dir, "files"), func(p string, d fs.DirEntry, err error) error {
			switch {
			case err != nil || d.IsDir():
			case strings.HasSuffix(p, "/attached/"+conv+"/"+id):
				marker = p
			case strings.HasSuffix(p, fmt.Sprintf("/messages/%s/%d", conv, int(out["seq"].(float64)))):
				list = p
			}
			return nil
		})
		return marker != "" && list != ""
	})
	stopSystem(t, sys)

	rebuildFiles := func() (string, error) {
		cfg, err := app.Load("rebuild", []string{"-data-dir", dir, "-kafka-listen", "127.0.0.1:0", "-partitions", "2", "-log-level", "warn"}, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err = app.RebuildFiles(ctx, cfg, false, &out, cfg.Logger(io.Discard))
		return out.String(), err
	}
	printed, err := rebuildFiles()
	if err != nil || !strings.Contains(printed, "1 conversations compared, 0 differ") {
		t.Fatalf("rebuild files: %v\n%s", err, printed)
	}

	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	printed, err = rebuildFiles()
	if !errors.Is(err, app.ErrRebuildDiffers) || !strings.Contains(printed, "differs: conversation/"+conv+" ") {
		t.Errorf("rebuild files after the marker's removal: %v\n%s", err, printed)
	}
}
