// Tests of the record codec's buffers: the headers of a record share one
// allocation, the decoded attributes another.
package kafkalog_test

import (
	"bytes"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// TestEncodedHeadersDoNotOverlap: every header value of an encoded record
// is a slice of one buffer; appending to one (as a consumer adding a
// dead-letter header might) must not overwrite the next.
func TestEncodedHeadersDoNotOverlap(t *testing.T) {
	t.Parallel()
	for _, sealed := range []bool{false, true} {
		a := eventAttributes()
		a.Sealed = sealed
		m := kafkalog.Encode(a, []byte(`{}`))
		before := make([][]byte, len(m.Headers))
		for i, h := range m.Headers {
			before[i] = bytes.Clone(h.Value)
		}
		for i := range m.Headers {
			_ = append(m.Headers[i].Value, "XXXXXXXX"...)
		}
		for i, h := range m.Headers {
			if !bytes.Equal(h.Value, before[i]) {
				t.Errorf("sealed %v: %s is %q after appending to the headers, was %q", sealed, h.Key, h.Value, before[i])
			}
		}
		got, err := kafkalog.Decode(m)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != a.ID || got.Subject != a.Subject || got.Seq != a.Seq || !got.Time.Equal(a.Time) ||
			got.CommandOffset != a.CommandOffset || got.TraceParent != a.TraceParent || got.OriginNode != a.OriginNode || got.Sealed != sealed {
			t.Errorf("round trip: got %+v, want %+v", got, a)
		}
	}
}

// TestDecodedAttributesDoNotShareTheHeaders: the decoded attributes are
// copies; a reader that reuses or changes the header bytes afterwards
// does not change them.
func TestDecodedAttributesDoNotShareTheHeaders(t *testing.T) {
	t.Parallel()
	a := eventAttributes()
	m := kafkalog.Encode(a, []byte(`{}`))
	m.Headers = slices.Insert(m.Headers, 3, kafka.Header{Key: "unrelated", Value: []byte("zzz")})
	got, err := kafkalog.Decode(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range m.Headers {
		clear(h.Value)
	}
	if got.ID != a.ID || got.Type != a.Type || got.Source != a.Source || got.Subject != a.Subject ||
		got.TraceParent != a.TraceParent || got.OriginNode != a.OriginNode {
		t.Errorf("after the headers were cleared: got %+v, want %+v", got, a)
	}
}

// TestEncodedHeaderListIsFull: two appends to an encoded record's header
// list (two dead-letter copies, say) do not share one backing array.
func TestEncodedHeaderListIsFull(t *testing.T) {
	t.Parallel()
	m := kafkalog.Encode(kafkalog.NewAttributes(schemas.TypeSendMessage, "conv-1", time.Now()), []byte(`{}`)) // 7 headers of up to 11
	a := append(m.Headers, kafka.Header{Key: "a"})
	b := append(m.Headers, kafka.Header{Key: "b"})
	if a[len(a)-1].Key != "a" || b[len(b)-1].Key != "b" {
		t.Errorf("appends to the header list overwrote each other: %q, %q", a[len(a)-1].Key, b[len(b)-1].Key)
	}
}

// TestDecodedKeysHaveTheirOwnMemory: ce_id and ce_subject, which caches
// keep as map keys, do not lie in the memory the other attributes share
// (from the first of them to the end of the last), which each key would
// keep alive.
func TestDecodedKeysHaveTheirOwnMemory(t *testing.T) {
	t.Parallel()
	got, err := kafkalog.Decode(kafkalog.Encode(eventAttributes(), []byte(`{}`)))
	if err != nil {
		t.Fatal(err)
	}
	addr := func(s string) uintptr { return uintptr(unsafe.Pointer(unsafe.StringData(s))) }
	lo, hi := ^uintptr(0), uintptr(0)
	for _, s := range []string{got.Type, got.Source, got.TraceParent, got.OriginNode} {
		lo, hi = min(lo, addr(s)), max(hi, addr(s)+uintptr(len(s)))
	}
	for name, s := range map[string]string{"ce_id": got.ID, "ce_subject": got.Subject} {
		if p := addr(s); p+uintptr(len(s)) > lo && p < hi {
			t.Errorf("%s %q lies in the memory of the other attributes", name, s)
		}
	}
	if a, b := addr(got.ID), addr(got.Subject); a < b+uintptr(len(got.Subject)) && b < a+uintptr(len(got.ID)) {
		t.Error("ce_id and ce_subject overlap")
	}
}
