package filestest_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/parley-chat/parley/internal/disktest"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/schemas"
)

// With content sealed (PARLEY_CONTENT_KEK), a group created with a title,
// a message with a file, its edit and a rename all work end to end —
// history shows them in clear — while neither chat.commands nor
// chat.events holds any of their words in clear: the gateway seals the
// commands as it appends them, the decider opens them and seals the
// events; nor does any file of the file store, where the upload's name
// is sealed.
func TestSealedCommandsAndEvents(t *testing.T) {
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	dataDir := t.TempDir()
	sys := startSystem(t, dataDir, "-content-kek", base64.StdEncoding.EncodeToString(kek))
	defer stopSystem(t, sys)
	alice, bob := newClient(t, sys, "alice"), newClient(t, sys, "bob")
	const title, file, body, edited, renamed = "Orchard Plans", "harvest-schedule.pdf", "apples at dawn", "pears at dusk", "Pear Committee"
	conv := alice.want(http.StatusCreated, "POST", "/v1/conversations", "/v1/conversations",
		map[string]any{"kind": "group", "title": title, "members": []string{"bob"}})["conversation_id"].(string)
	doc := []byte("%PDF-1.4 a schedule")
	id := alice.upload(conv, file, "application/pdf", doc)
	out := alice.want(http.StatusCreated, "POST", "/v1/conversations/"+conv+"/messages", messagesDoc,
		map[string]any{"command_id": "s1", "body": body, "attachments": []map[string]any{{"upload_id": id, "size": len(doc), "sha256": sum(doc)}}})
	seq := int(out["seq"].(float64))
	alice.want(http.StatusOK, "PATCH", fmt.Sprintf("/v1/conversations/%s/messages/%d", conv, seq), "/v1/conversations/{id}/messages/{seq}",
		map[string]any{"command_id": "e1", "body": edited})
	alice.want(http.StatusOK, "PATCH", "/v1/conversations/"+conv, "/v1/conversations/{id}", map[string]any{"command_id": "r1", "title": renamed})

	// End to end: history reads it all in clear.
	eventually(t, "the edit and the rename in history", func() bool {
		c := bob.want(http.StatusOK, "GET", "/v1/conversations/"+conv, "/v1/conversations/{id}", nil)
		h := bob.want(http.StatusOK, "GET", "/v1/conversations/"+conv+"/history", "/v1/conversations/{id}/history", nil)
		raw := fmt.Sprint(h)
		return c["title"] == renamed && bytes.Contains([]byte(raw), []byte(edited)) && bytes.Contains([]byte(raw), []byte(file))
	})

	words := []string{title, file, body, edited, renamed}
	// The upload's name, which the message took from the upload, is
	// sealed in the file store's metadata too.
	found, read, err := disktest.FilesHolding(filepath.Join(dataDir, "files"), "harvest-schedule")
	if err != nil || read == 0 {
		t.Fatalf("scanning the file store: %d files, %v", read, err)
	}
	for _, f := range found {
		t.Errorf("the file store holds the file name in clear: %s", f)
	}
	for _, topic := range []string{schemas.TopicCommands, schemas.TopicEvents} {
		recs := kafkatest.ReadAll(t, sys.Kafka(), sys.TopicNames().Topic(topic))
		sealed := 0
		for _, m := range recs {
			for _, w := range words {
				if bytes.Contains(m.Value, []byte(w)) {
					t.Errorf("%s %d/%d holds %q in clear", topic, m.Partition, m.Offset, w)
				}
			}
			for _, h := range m.Headers {
				if h.Key == schemas.HeaderContentType && string(h.Value) == schemas.ContentTypeSealed {
					sealed++
				}
			}
		}
		// The creation, the message, the edit and the rename.
		if sealed < 4 {
			t.Errorf("%s: %d sealed records of %d; want at least 4", topic, sealed, len(recs))
		}
	}
}
