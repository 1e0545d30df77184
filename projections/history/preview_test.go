package history_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/schemas"
)

func TestCutPreview(t *testing.T) {
	t.Parallel()
	const n = history.PreviewRunes
	for in, want := range map[string]string{
		"":                         "",
		"short":                    "short",
		strings.Repeat("a", n):     strings.Repeat("a", n),
		strings.Repeat("é", n+1):   strings.Repeat("é", n-1) + "…",
		strings.Repeat("👋", n+9):   strings.Repeat("👋", n-1) + "…",
		strings.Repeat("a", 3*n/2): strings.Repeat("a", n-1) + "…",
	} {
		got := history.CutPreview(in)
		if got != want {
			t.Errorf("CutPreview of %d runes: %d runes %q", utf8.RuneCountInString(in), utf8.RuneCountInString(got), got)
		}
		if utf8.RuneCountInString(got) > n {
			t.Errorf("preview longer than %d runes", n)
		}
	}
}

// TestPreviewOfFiles: the inbox shows a message's files after a paper
// clip, then its body; and a deleted message's tombstone keeps neither
// its body nor its file names.
func TestPreviewOfFiles(t *testing.T) {
	t.Parallel()
	photo := schemas.Attachment{UploadID: "u_00000000000000000000000000000001", Name: "photo.jpg", Size: 1, ContentType: "image/jpeg", SHA256: strings.Repeat("a", 64)}
	notes := photo
	notes.UploadID, notes.Name = "u_00000000000000000000000000000002", "notes.pdf"
	for _, tt := range []struct {
		m    schemas.Message
		want string
	}{
		{schemas.Message{Body: "hi"}, "hi"},
		{schemas.Message{Attachments: []schemas.Attachment{photo}}, "📎 photo.jpg"},
		{schemas.Message{Body: "look", Attachments: []schemas.Attachment{photo, notes}}, "📎 photo.jpg, notes.pdf look"},
	} {
		if got := history.PreviewText(&tt.m); got != tt.want {
			t.Errorf("PreviewText = %q, want %q", got, tt.want)
		}
	}
	data, _ := json.Marshal(schemas.MessageSentV3{ConversationID: "g_1", Seq: 1, SenderID: "ann", Body: "secret", Attachments: []schemas.Attachment{photo}, CommandID: "c", SentAt: time.Now()})
	red, err := history.Redact(schemas.TypeMessageSentV3, data)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(red), "photo.jpg") || strings.Contains(string(red), "secret") {
		t.Errorf("tombstone %s keeps content", red)
	}
	if _, err := schemas.Decode(schemas.TypeMessageSentV3, red); err != nil {
		t.Errorf("the tombstone breaks its schema: %v", err)
	}
}

// TestPreviewOfFilesAfterAnEdit: the summary fold (which the stores and
// the delivery of live updates share) previews an edited newest message
// with its files and its new body, the files kept however long the body;
// its deletion drops both.
func TestPreviewOfFilesAfterAnEdit(t *testing.T) {
	t.Parallel()
	at := historytest.MessageTime
	var c history.Conversation
	for _, ev := range []history.Event{
		historytest.Group("g", historytest.Base, historytest.Owner("ann")),
		historytest.MessageV3("g", 1, "ann", "look", at(1), "photo.jpg", "notes.pdf"),
		historytest.Edited("g", 2, "ann", 1, "have a look", at(2)),
	} {
		if _, err := history.ApplyToSummary(&c, ev); err != nil {
			t.Fatal(err)
		}
	}
	if p := c.LastMessage; p == nil || p.Body != "📎 photo.jpg, notes.pdf have a look" || !p.Edited {
		t.Fatalf("preview after an edit: %+v, want the files, the new body and edited", p)
	}
	long := strings.Repeat("é", history.PreviewRunes)
	if _, err := history.ApplyToSummary(&c, historytest.Edited("g", 3, "ann", 1, long, at(3))); err != nil {
		t.Fatal(err)
	}
	if p := c.LastMessage; !strings.HasPrefix(p.Body, "📎 photo.jpg, notes.pdf é") || utf8.RuneCountInString(p.Body) != history.PreviewRunes {
		t.Errorf("preview after a long edit: %q, want the files first, cut to %d runes", p.Body, history.PreviewRunes)
	}
	if _, err := history.ApplyToSummary(&c, historytest.Deleted("g", 4, "ann", 1, at(4))); err != nil {
		t.Fatal(err)
	}
	if p := c.LastMessage; p.Body != "" || len(p.Files) != 0 || !p.Deleted {
		t.Errorf("preview after the deletion: %+v, want no body and no files", p)
	}
}
