package search_test

import (
	"context"
	"testing"

	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/projections/search/blevestore"
	"github.com/parley-chat/parley/schemas"
)

// TestFileNamesAreSearchable: a message with files is found in a real
// Bleve index by a file's whole name and by a word of it, and a message
// with files and no body is indexed; after an edit (whose event carries
// the new body only) it is still found by its files, and by its new body.
func TestFileNamesAreSearchable(t *testing.T) {
	t.Parallel()
	p := search.Projection{}
	msg := schemas.MessageSentV3{ConversationID: "g_1", Seq: 3, SenderID: "ann", CommandID: "c3", SentAt: t0,
		Attachments: []schemas.Attachment{{UploadID: "u_00000000000000000000000000000001", Name: "whiteboard_2025-03.jpg", Size: 10,
			ContentType: "image/jpeg", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}}}
	d, err := p.Decode(record(t, event(schemas.TypeMessageSentV3, "g_1", 3, t0, msg)))
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != search.KindIndex || d.Seq != 3 {
		t.Fatalf("Decode = %+v, want the message indexed", d)
	}
	idx, err := blevestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := (search.Projection{Index: idx}).Apply(context.Background(), []search.Doc{d}); err != nil {
		t.Fatal(err)
	}
	found := func(when string, queries ...string) {
		t.Helper()
		for _, q := range queries {
			res, err := idx.Search(t.Context(), search.Query{Text: q, Conversations: []string{"g_1"}, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Hits) != 1 || res.Hits[0].Seq != 3 {
				t.Errorf("search %q %s: hits %+v, want seq 3", q, when, res.Hits)
			}
		}
	}
	found("", "whiteboard_2025-03.jpg", "whiteboard", "jpg")

	edit := schemas.MessageEditedV1{ConversationID: "g_1", Seq: 4, UserID: "ann", MessageSeq: 3, Body: "the plan",
		MessageSentAt: t0, CommandID: "c4", EditedAt: t0}
	d, err = p.Decode(record(t, event(schemas.TypeMessageEdited, "g_1", 4, t0, edit)))
	if err != nil {
		t.Fatal(err)
	}
	if err := (search.Projection{Index: idx}).Apply(context.Background(), []search.Doc{d}); err != nil {
		t.Fatal(err)
	}
	found("after an edit", "whiteboard_2025-03.jpg", "whiteboard", "plan")
}
