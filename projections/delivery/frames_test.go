// Tests of the frame encoding: EncodeEvent against encoding/json.

package delivery

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/schemas"
)

// eventFrame is the "event" frame as a struct, for json.Marshal to give
// the reference encoding.
type eventFrame struct {
	Type           string          `json:"type"`
	ConversationID string          `json:"conversation_id"`
	Seq            uint64          `json:"seq"`
	EventType      string          `json:"event_type"`
	EventID        string          `json:"event_id"`
	Time           time.Time       `json:"time"`
	Data           json.RawMessage `json:"data"`
}

// checkEncodeEvent checks EncodeEvent against json.Marshal of the
// equivalent struct: both decode to the same value, and where the
// reference's HTML escaping (of <, > and &) cannot differ, to the same
// bytes.
func checkEncodeEvent(t *testing.T, conv string, seq uint64, typ, id string, at time.Time, data []byte) {
	t.Helper()
	got := EncodeEvent(conv, seq, typ, id, at, data)
	if !json.Valid(got) {
		t.Fatalf("EncodeEvent(%q, %d, %q, %q, %v, %s) is not valid JSON: %s", conv, seq, typ, id, at, data, got)
	}
	ref := eventFrame{"event", conv, seq, typ, id, at.UTC(), data}
	want, err := json.Marshal(ref)
	if err != nil {
		t.Fatal(err)
	}
	var g, w eventFrame
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("decoding %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	gd, err := decodeValue(g.Data)
	if err != nil {
		t.Fatalf("data %s: %v", g.Data, err)
	}
	wd, _ := decodeValue(w.Data)
	if !reflect.DeepEqual(gd, wd) {
		t.Errorf("data decodes to %v, want %v", gd, wd)
	}
	g.Data, w.Data = nil, nil // json.Marshal escapes <, > and & inside raw values too
	if !g.Time.Equal(w.Time) || g.Time.Location() != time.UTC {
		t.Errorf("time %v, want %v in UTC", g.Time, w.Time)
	}
	g.Time, w.Time = time.Time{}, time.Time{}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("EncodeEvent decodes to %+v, json.Marshal to %+v", g, w)
	}
	gm, err := decodeValue(got)
	if err != nil {
		t.Fatalf("decoding %s: %v", got, err)
	}
	wm, _ := decodeValue(want)
	if !reflect.DeepEqual(gm, wm) {
		t.Errorf("EncodeEvent has fields %v, json.Marshal %v", gm, wm)
	}
	if !strings.ContainsAny(conv+typ+id+string(data), "<>&") && bytes.Equal(data, compact(t, data)) && !bytes.Equal(got, want) {
		t.Errorf("EncodeEvent:\n got %s\nwant %s", got, want)
	}
}

// decodeValue decodes a JSON value keeping its numbers as written, so
// that a number outside float64's range (1E700 is valid JSON) compares
// rather than fails.
func decodeValue(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

func compact(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("compacting %q: %v", b, err)
	}
	return buf.Bytes()
}

func TestEncodeEvent(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("CET", 3600))
	data := []byte(`{"conversation_id":"c1","seq":7,"body":"say \"hi\" \u2028 é"}`)
	for _, tc := range []struct{ name, s string }{
		{"plain ascii", "d_0123abc"},
		{"empty", ""},
		{"quotes", `say "hi"`},
		{"backslashes", `C:\path\to\"x"`},
		{"unicode", "héllo 世界 🎉"},
		{"control characters", "a\x00b\x01c\nd\te\x1ff\x7f"},
		{"line and paragraph separators", "a\u2028b\u2029c"},
		{"html", "</script><b>&amp;"},
		{"html and unicode", "<é>"},
		{"invalid utf-8", "a\xffb\xc3(c\xed\xa0\x80"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkEncodeEvent(t, tc.s, 7, tc.s, tc.s, at, data)
		})
	}
	t.Run("extreme seqs and a zero time", func(t *testing.T) {
		t.Parallel()
		checkEncodeEvent(t, "c", 0, "t", "i", time.Time{}, []byte(`null`))
		checkEncodeEvent(t, "c", 1<<64-1, "t", "i", time.Unix(0, 1).UTC(), []byte(`[1,2,3]`))
	})
	t.Run("data is embedded as it is", func(t *testing.T) {
		t.Parallel()
		d := []byte(`{ "a" : [ 1, 2 ] }`)
		if got := EncodeEvent("c", 1, "t", "i", at, d); !bytes.HasSuffix(got, append([]byte(`"data":`), append(d, '}')...)) {
			t.Errorf("frame %s does not end with the data as given", got)
		}
	})
}

func FuzzEncodeEvent(f *testing.F) {
	f.Add("d_1", uint64(1), schemas.TypeMessageSent, "id", int64(1741964966535897932), []byte(`{"body":"x"}`))
	f.Add(`q"\`, uint64(0), "\x00\n\u2028", "\xff", int64(0), []byte(`"s"`))
	f.Add("世界<&>", uint64(1<<63), "", "🎉", int64(-1), []byte(`not json`))
	f.Fuzz(func(t *testing.T, conv string, seq uint64, typ, id string, nanos int64, data []byte) {
		if !json.Valid(data) {
			data = []byte(`{}`) // EncodeEvent embeds values that chat.events holds: JSON
		}
		checkEncodeEvent(t, conv, seq, typ, id, time.Unix(0, nanos), data)
		if utf8.ValidString(conv) {
			var fr eventFrame
			_ = json.Unmarshal(EncodeEvent(conv, seq, typ, id, time.Unix(0, nanos), data), &fr)
			if fr.ConversationID != conv {
				t.Errorf("conversation id %q came back as %q", conv, fr.ConversationID)
			}
		}
	})
}
