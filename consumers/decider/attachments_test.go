package decider

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/schemas"
)

func photo(n int) schemas.Attachment {
	return schemas.Attachment{
		UploadID: fmt.Sprintf("u_%032x", n), Name: fmt.Sprintf("photo%d.jpg", n), Size: 48213,
		ContentType: "image/jpeg", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	}
}

func sendFiles(user, conv, id, body string, files ...schemas.Attachment) cmd {
	return command(schemas.TypeSendMessageV3, conv, &schemas.SendMessageV3{CommandID: id, UserID: user, ConversationID: conv, Body: body, Attachments: files})
}

// TestAttachments: a message with files becomes chat.message.sent.v3
// with their metadata exactly, may have no body, carries at most
// MaxAttachments, and is sent only by members; a v3 send without files
// is an ordinary v2 message.
func TestAttachments(t *testing.T) {
	t.Parallel()
	grp := schemas.GroupConversationID("olga", "g")
	d := newDecider(t, Limits{Limits: conversation.Limits{MaxAttachments: 2}})
	d.mustEvent(createGroup("olga", "g", "Group", "mia"))

	out := d.mustEvent(sendFiles("mia", grp, "f1", "", photo(1), photo(2)))
	if out.Attrs.Type != schemas.TypeMessageSentV3 {
		t.Fatalf("type %s, want %s", out.Attrs.Type, schemas.TypeMessageSentV3)
	}
	var e schemas.MessageSentV3
	if err := json.Unmarshal(out.Value, &e); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(e.Attachments, []schemas.Attachment{photo(1), photo(2)}) || e.Body != "" || e.SenderID != "mia" || e.Seq != 1 {
		t.Errorf("event = %+v", e)
	}
	if _, err := schemas.Decode(out.Attrs.Type, out.Value); err != nil {
		t.Errorf("the event does not decode: %v", err)
	}

	steps := []struct {
		c    cmd
		want outcome
	}{
		{sendFiles("mia", grp, "f2", "three", photo(1), photo(2), photo(3)), rejected(schemas.CodeLimitExceeded)},
		{sendFiles("zoe", grp, "f3", "", photo(4)), rejected(schemas.CodeNotMember)},
		{sendFiles("mia", grp, "f4", ""), rejected(schemas.CodeInvalidCommand)},
		{sendFiles("mia", grp, "f1", "", photo(1), photo(2)), dup(1)},
		{sendFiles("mia", grp, "f5", "plain"), outcome{event: schemas.TypeMessageSentV2, seq: 2}},
		{sendFiles("mia", grp, "f6", "twice", photo(5), photo(5)), deadLtr},
	}
	for i, s := range steps {
		dec, err := d.st.Decide(s.c.attrs, s.c.value, int64(100+i), testNow)
		if got := outcomeOf(t, dec, err); got != s.want {
			t.Errorf("step %d: got %+v, want %+v (err %v)", i, got, s.want, err)
		}
	}
}

func thumbCmd(user, conv string, seq uint64, uploadID string) cmd {
	return command(schemas.TypeAddThumbnail, conv, &schemas.AddThumbnailV1{CommandID: "thumb-" + uploadID, UserID: user, ConversationID: conv,
		MessageSeq: seq, UploadID: uploadID, Width: 320, Height: 240, Size: 1000})
}

// TestThumbnails: a thumbnail is recorded once per upload of a live
// message, on behalf of its sender only; and a state rebuilt from the
// events refuses the same thumbnail again.
func TestThumbnails(t *testing.T) {
	t.Parallel()
	grp := schemas.GroupConversationID("olga", "g")
	d := newDecider(t, Limits{})
	events := []*Output{
		d.mustEvent(createGroup("olga", "g", "Group", "mia")),
		d.mustEvent(sendFiles("mia", grp, "f1", "", photo(1), photo(2))),
		d.mustEvent(send("mia", grp, "m2", "plain")),
	}
	out := d.mustEvent(thumbCmd("mia", grp, 1, photo(1).UploadID))
	events = append(events, out)
	var e schemas.ThumbnailAddedV1
	if err := json.Unmarshal(out.Value, &e); err != nil {
		t.Fatal(err)
	}
	if out.Attrs.Type != schemas.TypeThumbnailAdded || e.Seq != 3 || e.MessageSeq != 1 || e.UploadID != photo(1).UploadID || e.Width != 320 {
		t.Errorf("event %s %+v", out.Attrs.Type, e)
	}
	other := thumbCmd("mia", grp, 1, photo(1).UploadID)
	other.value = []byte(strings.Replace(string(other.value), `"thumb-`, `"again-`, 1))
	steps := []struct {
		c    cmd
		want outcome
	}{
		{thumbCmd("mia", grp, 1, photo(1).UploadID), dup(3)},
		{other, rejected(schemas.CodeNoChange)},
		{thumbCmd("olga", grp, 1, photo(2).UploadID), rejected(schemas.CodeForbidden)},
		{thumbCmd("mia", grp, 2, photo(2).UploadID), rejected(schemas.CodeInvalidCommand)},
		{thumbCmd("mia", grp, 9, photo(2).UploadID), rejected(schemas.CodeMessageNotFound)},
		{thumbCmd("zoe", grp, 1, photo(2).UploadID), rejected(schemas.CodeNotMember)},
		{thumbCmd("mia", grp, 1, photo(2).UploadID), outcome{event: schemas.TypeThumbnailAdded, seq: 4}},
	}
	for i, s := range steps {
		dec, err := d.st.Decide(s.c.attrs, s.c.value, int64(100+i), testNow)
		if got := outcomeOf(t, dec, err); got != s.want {
			t.Errorf("step %d: got %+v, want %+v (err %v)", i, got, s.want, err)
		}
	}

	fresh := newTestState(t, Limits{}, 1)
	applyAll(t, fresh, events)
	r := &decider{t: t, st: fresh, offset: 200}
	if got := r.outcome(other); got != rejected(schemas.CodeNoChange) {
		t.Errorf("after a rebuild, the same thumbnail again: %+v, want no_change", got)
	}
	if got := r.outcome(thumbCmd("mia", grp, 1, photo(2).UploadID)); got != (outcome{event: schemas.TypeThumbnailAdded, seq: 4}) {
		t.Errorf("after a rebuild, the other upload's thumbnail: %+v", got)
	}
}
