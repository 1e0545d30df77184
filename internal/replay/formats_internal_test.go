package replay

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/parley-chat/parley/schemas"
)

// marshal is what encoding/json makes of a CloudEvent, without HTML
// escaping: what appendCloudEvent must give.
func marshal(t testing.TB, ce CloudEvent) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ce); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAppendCloudEventIsJSONMarshal(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	for _, e := range []Event{
		{Topic: "chat.events", Partition: 3, Offset: 42, Key: "g_1", Data: json.RawMessage(`{"a":1}`),
			Attrs: schemas.Attributes{ID: "e1", Type: "chat.message.sent.v1", Source: "/parley", Subject: "g_1", Time: at, Seq: 7, HasSeq: true}},
		{Topic: "p.chat.presence", Key: "u\"\\\n\t\x01<>&\u2028é\xff", Data: json.RawMessage("{\n  \"b\": [1, 2],\r\n  \"c\": \"x y\"\n}"),
			Attrs: schemas.Attributes{ID: "e2", Type: "chat.presence.v1", Source: "/parley", Time: at, TraceParent: "00-abc-def-01", Sealed: true}},
	} {
		got := appendCloudEvent(nil, e)
		want := marshal(t, cloudEvent(e))
		var compacted bytes.Buffer
		if err := json.Compact(&compacted, want); err != nil {
			t.Fatal(err)
		}
		compacted.WriteByte('\n')
		if !bytes.Equal(got, compacted.Bytes()) {
			t.Errorf("appendCloudEvent\n%s\nwant\n%s", got, compacted.Bytes())
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\", "\x00\x1f\x7f", "é\xff\xfe", "\u2028\u2029", "<&>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		want := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendString(%q) = %s; want %s", s, got, want)
		}
	})
}
