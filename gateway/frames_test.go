package gateway

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/projections/delivery"
	"github.com/parley-chat/parley/schemas"
)

func TestDecodeFrame(t *testing.T) {
	t.Parallel()
	seq := func(n uint64) *uint64 { return &n }
	tests := []struct {
		name string
		in   string
		want clientFrame
	}{
		{name: "a send frame", in: `{"type":"send","id":"1","conversation_id":"d_1","command_id":"c1","body":"hi \"you\""}`,
			want: clientFrame{Type: "send", ID: "1", ConversationID: "d_1", CommandID: "c1", Body: `hi "you"`}},
		{name: "a reply", in: `{"type":"send","id":"1","conversation_id":"d_1","command_id":"c1","body":"hi","reply_to":17}`,
			want: clientFrame{Type: "send", ID: "1", ConversationID: "d_1", CommandID: "c1", Body: "hi", ReplyTo: 17}},
		{name: "a resume frame", in: `{"type":"resume","id":"r","conversations":{"a":3,"b":0}}`,
			want: clientFrame{Type: "resume", ID: "r", Conversations: map[string]uint64{"a": 3, "b": 0}}},
		{name: "an edit frame", in: `{"type":"edit","id":"e","conversation_id":"d_1","command_id":"c2","seq":17,"body":"x"}`,
			want: clientFrame{Type: "edit", ID: "e", ConversationID: "d_1", CommandID: "c2", Seq: seq(17), Body: "x"}},
		{name: "a whole number with a zero fraction is an integer", in: `{"type":"read","id":"r","conversation_id":"d_1","seq":1.7e1}`,
			want: clientFrame{Type: "read", ID: "r", ConversationID: "d_1", Seq: seq(17)}},
		{name: "a read without seq", in: `{"type":"read","id":"r","conversation_id":"d_1"}`,
			want: clientFrame{Type: "read", ID: "r", ConversationID: "d_1"}},
		{name: "an id of 64 characters", in: `{"type":"ping","id":"` + strings.Repeat("é", 64) + `"}`,
			want: clientFrame{Type: "ping", ID: strings.Repeat("é", 64)}},
		{name: "typing needs no id", in: `{"type":"typing","conversation_id":"d_1"}`,
			want: clientFrame{Type: "typing", ConversationID: "d_1"}},
		{name: "an escaped string", in: `{"type":"auth","id":"a","token":"t\u002e","device_id":"phone"}`,
			want: clientFrame{Type: "auth", ID: "a", Token: "t.", DeviceID: "phone"}},
		{name: "presence_watch", in: `{"type":"presence_watch","id":"w","user_ids":["bob","carol"]}`,
			want: clientFrame{Type: "presence_watch", ID: "w", UserIDs: []string{"bob", "carol"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, e := decodeFrame([]byte(tt.in))
			if e != nil || !reflect.DeepEqual(f, tt.want) {
				t.Errorf("decodeFrame(%s) = %+v, %v; want %+v", tt.in, f, e, tt.want)
			}
		})
	}
}

func TestParseJSONInteger(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in         string
		n          uint64
		whole, neg bool
		outOfRange bool
	}{
		{in: "0", whole: true}, {in: "-0", whole: true, neg: true}, {in: "17", n: 17, whole: true},
		{in: "17.0", n: 17, whole: true}, {in: "1.7e1", n: 17, whole: true}, {in: "170e-1", n: 17, whole: true},
		{in: "1.5"}, {in: "-1", n: 1, whole: true, neg: true}, {in: "0.0e5", whole: true}, {in: "1e-400"},
		{in: "0.5e1", n: 5, whole: true}, {in: "18446744073709551615", n: 18446744073709551615, whole: true},
		{in: "18446744073709551616", whole: true, outOfRange: true}, {in: "1e400", whole: true, outOfRange: true},
		{in: "1e99999999999999999999", whole: true, outOfRange: true}, {in: "1e-99999999999999999999"},
		{in: "00010E+1", n: 100, whole: true}, {in: `"1"`}, {in: "null"}, {in: "true"}, {in: ""}, {in: "[1]"},
	}
	for _, tt := range tests {
		n, whole, neg, err := parseJSONInteger(tt.in)
		if n != tt.n || whole != tt.whole || neg != tt.neg || (err != nil) != tt.outOfRange {
			t.Errorf("parseJSONInteger(%s) = %d, %v, %v, %v; want %d, %v, %v, out of range %v", tt.in, n, whole, neg, err, tt.n, tt.whole, tt.neg, tt.outOfRange)
		}
	}
}

func FuzzClientFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"send","id":"1","conversation_id":"d_1","command_id":"c1","body":"hi"}`,
		`{"type":"send","id":"1","conversation_id":"d_1","command_id":"c1","body":"","attachments":[{"upload_id":"u_1","size":3}]}`,
		`{"type":"resume","id":"r","conversations":{"a":3}}`,
		`{"type":"auth","id":"a","token":"x.y.z"}`,
		`{"type":"ping","id":"` + strings.Repeat("é", 40) + `"}`,
		`{"type":"send","body":"\ud800"}`,
		`{"conversations":{"a":18446744073709551616}}`,
		`{"type":"read","id":"r","conversation_id":"d","seq":1.0e1}`,
		`{"type":"edit","id":"e","conversation_id":"d","command_id":"c","seq":-0,"body":"x"}`,
		`{"type":"presence_watch","id":"w","user_ids":["a",null]}`,
		`{"type":null,"id":{}}`,
		`null`,
		"\xff\xfe",
		`[`,
	} {
		f.Add([]byte(s))
	}
	check := frameSchemas(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, e := decodeFrame(data)
		// Whatever happens, the answer must encode.
		if e != nil {
			if _, err := json.Marshal(errorFrame{Type: "error", ID: fr.ID, Code: e.Code, Message: e.Message}); err != nil {
				t.Fatal(err)
			}
		} else if _, err := json.Marshal(ackFrame{Type: "ack", ID: fr.ID}); err != nil {
			t.Fatal(err)
		}
		if utf8.RuneCountInString(fr.ID) > maxRequestID {
			t.Fatalf("id of %d characters", utf8.RuneCountInString(fr.ID))
		}
		// A frame its schema accepts is never refused.
		if err := check(data); err == nil && e != nil {
			t.Fatalf("decodeFrame(%q) refused a frame its schema accepts: %v", data, e)
		}
		if e != nil {
			if fr.Type != "" || !slices.Contains([]string{codeBadFrame, codeInvalidRequest, codeUnknownType}, e.Code) {
				t.Fatalf("error %+v with frame %+v", e, fr)
			}
			if e.Code == codeBadFrame && fr.ID != "" {
				t.Fatalf("bad_frame echoes id %q", fr.ID)
			}
			return
		}
		if _, ok := clientFrames[fr.Type]; !ok {
			t.Fatalf("accepted frame type %q", fr.Type)
		}
		// What decodes strictly, the lenient standard decoding agrees
		// with, when it decodes at all (it refuses 1.0 for an integer).
		var ref struct {
			Type           string              `json:"type"`
			ID             string              `json:"id"`
			Token          string              `json:"token"`
			ConversationID string              `json:"conversation_id"`
			CommandID      string              `json:"command_id"`
			Body           string              `json:"body"`
			Conversations  map[string]uint64   `json:"conversations"`
			DeviceID       string              `json:"device_id"`
			Status         string              `json:"status"`
			UserIDs        []string            `json:"user_ids"`
			ReplyTo        uint64              `json:"reply_to"`
			Seq            *uint64             `json:"seq"`
			Emoji          string              `json:"emoji"`
			Attachments    []attachmentRequest `json:"attachments"`
		}
		if err := json.Unmarshal(data, &ref); err == nil && !reflect.DeepEqual(fr, clientFrame(ref)) {
			t.Fatalf("decodeFrame = %+v, want %+v", fr, ref)
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
