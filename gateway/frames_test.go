package gateway

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/projections/delivery"
	"github.com/parley-chat/parley/schemas"
)

func TestDecodeFrame(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("i", 100)
	tests := []struct {
		name string
		in   string
		want clientFrame
		bad  bool
	}{
		{name: "a send frame", in: `{"type":"send","id":"1","conversation_id":"d_1","command_id":"c1","body":"hi \"you\""}`,
			want: clientFrame{Type: "send", ID: "1", ConversationID: "d_1", CommandID: "c1", Body: `hi "you"`}},
		{name: "a resume frame", in: `{"type":"resume","id":"r","conversations":{"a":3,"b":0}}`,
			want: clientFrame{Type: "resume", ID: "r", Conversations: map[string]uint64{"a": 3, "b": 0}}},
		{name: "unknown fields are ignored", in: `{"type":"ping","id":"p","extra":[1,{"x":null}]}`,
			want: clientFrame{Type: "ping", ID: "p"}},
		{name: "an id longer than 64 bytes is cut", in: `{"type":"ping","id":"` + long + `"}`,
			want: clientFrame{Type: "ping", ID: long[:64]}},
		{name: "an empty object decodes to an empty frame", in: `{}`, want: clientFrame{}},
		{name: "malformed JSON is a bad frame", in: `{"type":`, bad: true},
		{name: "a number where a string belongs is a bad frame", in: `{"type":"send","id":1}`, bad: true},
		{name: "a negative seq is a bad frame", in: `{"type":"resume","conversations":{"a":-1}}`, bad: true},
		{name: "an array is a bad frame", in: `[]`, bad: true},
		{name: "nothing is a bad frame", in: ``, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, e := decodeFrame([]byte(tt.in))
			if tt.bad {
				if e == nil || e.Code != codeBadFrame || e.Status != http.StatusBadRequest || e.Retryable {
					t.Errorf("decodeFrame(%q) = %+v, %+v; want a bad_frame error", tt.in, f, e)
				}
				return
			}
			if e != nil || !reflect.DeepEqual(f, tt.want) {
				t.Errorf("decodeFrame(%q) = %+v, %v; want %+v", tt.in, f, e, tt.want)
			}
		})
	}
}

func FuzzClientFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"send","id":"1","conversation_id":"d_1","command_id":"c1","body":"hi"}`,
		`{"type":"resume","id":"r","conversations":{"a":3}}`,
		`{"type":"auth","token":"x.y.z"}`,
		`{"type":"ping","id":"` + strings.Repeat("é", 40) + `"}`,
		`{"type":"send","body":"\ud800"}`,
		`{"conversations":{"a":18446744073709551616}}`,
		`{"type":null,"id":{}}`,
		"\xff\xfe",
		`[`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, e := decodeFrame(data)
		if e != nil {
			if e.Code != codeBadFrame || fr.Type != "" {
				t.Fatalf("error %+v with frame %+v", e, fr)
			}
			// The error frame the socket answers with must encode.
			if _, err := json.Marshal(errorFrame{Type: "error", Code: e.Code, Message: e.Message}); err != nil {
				t.Fatal(err)
			}
			return
		}
		if len(fr.ID) > 64 {
			t.Fatalf("id of %d bytes", len(fr.ID))
		}
		var ref clientFrame
		if err := json.Unmarshal(data, &ref); err != nil {
			t.Fatalf("decodeFrame accepted what json.Unmarshal rejects: %v", err)
		}
		if len(ref.ID) > 64 {
			ref.ID = ref.ID[:64]
		}
		if !reflect.DeepEqual(fr, ref) {
			t.Fatalf("decodeFrame = %+v, want %+v", fr, ref)
		}
		// Replies echo the id: they must encode whatever it holds.
		if _, err := json.Marshal(ackFrame{Type: "ack", ID: fr.ID}); err != nil {
			t.Fatal(err)
		}
	})
}

func BenchmarkDecodeFrame_Send(b *testing.B) {
	frame := []byte(`{"type":"send","id":"42","conversation_id":"d_5f2c6a0e8b1d4c3a9e7f6b5a4d3c2b1a","command_id":"01J9ZK3W4X5Y6Z7A8B9C0D1E2F","body":"` +
		strings.Repeat("lorem ipsum ", 16) + `"}`)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, e := decodeFrame(frame); e != nil {
			b.Fatal(e)
		}
	}
}

func BenchmarkEncodeEvent_200B(b *testing.B) {
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	data, _ := json.Marshal(schemas.MessageSentV1{ConversationID: "d_5f2c6a0e8b1d4c3a9e7f6b5a4d3c2b1a", Seq: 12345, SenderID: "alice",
		Body: strings.Repeat("x", 200), CommandID: "01J9ZK3W4X5Y6Z7A8B9C0D1E2F", SentAt: at})
	b.ReportAllocs()
	for b.Loop() {
		_ = delivery.EncodeEvent("d_5f2c6a0e8b1d4c3a9e7f6b5a4d3c2b1a", 12345, schemas.TypeMessageSent, "3f6c2a9b8e7d4c1a0f9e8d7c6b5a4f3e", at, data)
	}
}
