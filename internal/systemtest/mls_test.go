package systemtest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/disktest"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/schemas"
	"github.com/parley-chat/parley/schemas/schemacheck"
)

// mlsClientDir holds the Node test client (package.json and its lock);
// `npm ci` there installs ts-mls and its peers (`make node-deps`, which
// `make test` runs).
const mlsClientDir = "mlsclient"

// TestMLSClients runs the end-to-end encryption scenarios of
// mlsclient/e2ee.test.mjs — six ts-mls devices of three users against
// this Parley over HTTP and WebSocket, with real MLS — and then checks
// what the server kept: no plaintext in chat.events or chat.commands,
// in the history the API pages, in the search index, or anywhere under
// the data directory; and that the same checks do find a plain
// conversation's message, so that they could fail.
func TestMLSClients(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (about a minute of MLS in Node against a whole system); make test runs it")
	}
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(mlsClientDir, "node_modules", "ts-mls", "package.json"))
	}
	if err != nil {
		t.Fatalf("the MLS test client cannot run (%v): install Node 20+ and npm; `make test` (make node-deps) runs npm ci in internal/systemtest/%s", err, mlsClientDir)
	}
	dir := t.TempDir()
	sys := startSystem(t, dir)
	defer stopSystem(t, sys)
	marker := "plaintext-" + kafkalog.NewID()
	tokens := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		tokens[u] = token(t, u, time.Hour)
	}
	tokJSON, err := json.Marshal(tokens)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Node 20 has the WebSocket client behind a flag; later ones have it
	// on.
	args := []string{"--test", "--test-reporter=spec", "e2ee.test.mjs"}
	if exec.CommandContext(ctx, node, "-e", "process.exit(typeof WebSocket === 'undefined' ? 1 : 0)").Run() != nil {
		args = append([]string{"--experimental-websocket"}, args...)
	}
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = mlsClientDir
	cmd.Env = append(os.Environ(), "PARLEY_URL=http://"+sys.HTTPAddr(), "PARLEY_TOKENS="+string(tokJSON), "PARLEY_MARKER="+marker, "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test e2ee.test.mjs: %v\n%s", err, out)
	}
	t.Logf("node --test e2ee.test.mjs:\n%s", out)
	conv := conversationOf(t, out)

	// A control: a plain conversation's message, which every check below
	// must find.
	alice := api{t, sys.HTTPAddr(), tokens["alice"]}
	plain := alice.createDirect("bob")
	control := "control-" + kafkalog.NewID()
	alice.send(plain, control)

	mlsMessages := 0
	for _, topic := range []string{schemas.TopicEvents, schemas.TopicCommands} {
		sawControl := false
		for _, m := range kafkatest.ReadAll(t, sys.Kafka(), topic) {
			if bytes.Contains(m.Value, []byte(marker)) {
				t.Errorf("%s offset %d: plaintext in the log: %.300s", topic, m.Offset, m.Value)
			}
			for _, h := range m.Headers {
				if bytes.Contains(h.Value, []byte(marker)) {
					t.Errorf("%s offset %d: plaintext in header %s", topic, m.Offset, h.Key)
				}
				if h.Key == schemas.HeaderType && string(h.Value) == schemas.TypeMLSMessageSent {
					mlsMessages++
				}
			}
			sawControl = sawControl || bytes.Contains(m.Value, []byte(control))
		}
		if !sawControl {
			t.Errorf("%s: the control message is not found: the scan could not fail", topic)
		}
	}
	// 6 greetings, 3 messages while bob/d2 was away, 1 after the race,
	// 1 after bob left.
	if mlsMessages != 11 {
		t.Errorf("%d chat.mls.message.sent.v1 events in chat.events, want 11", mlsMessages)
	}

	// Every record of the MLS types the clients made is valid against its
	// JSON Schema, and each type was made (TestChat leaves them to this
	// test).
	check, err := schemacheck.New()
	if err != nil {
		t.Fatal(err)
	}
	made := map[string]int{}
	for _, topic := range []string{schemas.TopicCommands, schemas.TopicEvents, schemas.TopicDevices} {
		for _, m := range kafkatest.ReadAll(t, sys.Kafka(), topic) {
			a, err := kafkalog.Decode(m)
			if err != nil {
				t.Fatalf("%s offset %d: %v", topic, m.Offset, err)
			}
			if err := check.Validate(a.Type, m.Value); err != nil {
				t.Errorf("%s offset %d: %s: %v", topic, m.Offset, a.Type, err)
			}
			made[a.Type]++
		}
	}
	for _, typ := range []string{schemas.TypeCreateConversationV2, schemas.TypeConversationCreatedV2, schemas.TypeMLSCommit,
		schemas.TypeMLSCommitted, schemas.TypeMLSPropose, schemas.TypeMLSProposed, schemas.TypeMLSSend, schemas.TypeMLSMessageSent,
		schemas.TypeDeviceAdded} {
		if made[typ] == 0 {
			t.Errorf("the clients made no %s record", typ)
		}
	}

	// Every device's first publication is a chat.devices record: two per
	// user, versions 1 and 2.
	versions := map[string][]uint64{}
	for _, m := range kafkatest.ReadAll(t, sys.Kafka(), schemas.TopicDevices) {
		a, err := kafkalog.Decode(m)
		if err != nil {
			t.Fatal(err)
		}
		v, err := schemas.Decode(a.Type, m.Value)
		if err != nil || a.Type != schemas.TypeDeviceAdded {
			t.Fatalf("%s: %v", a.Type, err)
		}
		e := v.(*schemas.DeviceChangedV1)
		versions[e.UserID] = append(versions[e.UserID], e.Version)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		if got := versions[u]; len(got) != 2 || got[0] != 1 || got[1] != 2 {
			t.Errorf("%s's device changes in chat.devices: versions %v, want [1 2]", u, got)
		}
	}

	for _, e := range alice.history(conv) {
		b, _ := json.Marshal(e)
		if bytes.Contains(b, []byte(marker)) {
			t.Errorf("plaintext in the history: %s", b)
		}
	}
	if !strings.Contains(jsonOf(t, alice.history(plain)), control) {
		t.Error("the control message is not in the history: the check could not fail")
	}

	found := func(q string) bool {
		status, body := alice.do("GET", "/v1/search?q="+url.QueryEscape(q), nil)
		return status == 200 && len(body["results"].([]any)) > 0
	}
	// The control was appended after every MLS event: once the index has
	// it, it has had its chance at them.
	if !within(30*time.Second, func() bool { return found(control) }) {
		t.Error("search does not find the control message: the check could not fail")
	}
	if found(marker) {
		t.Error("search finds the encrypted conversation's plaintext")
	}

	// Nothing under the data directory (the broker's log segments, the
	// history and decider stores, the search index, the key directory)
	// holds the plaintext.
	onDisk, read, err := disktest.FilesHolding(dir, marker)
	if err != nil || read == 0 {
		t.Fatalf("reading the data directory: %d files, %v", read, err)
	}
	for _, f := range onDisk {
		t.Errorf("plaintext on disk: %s", f)
	}
}

// conversationOf finds the conversation id the Node test printed.
func conversationOf(t *testing.T, out []byte) string {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		var v struct {
			Conversation string `json:"conversation"`
		}
		if strings.HasPrefix(line, `{"conversation"`) && json.Unmarshal([]byte(line), &v) == nil && v.Conversation != "" {
			return v.Conversation
		}
	}
	t.Fatalf("the Node test printed no conversation id:\n%s", out)
	return ""
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
