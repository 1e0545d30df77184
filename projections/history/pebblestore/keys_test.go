package pebblestore

import (
	"bytes"
	"cmp"
	"testing"
	"time"
)

func TestStringEncodingRoundTrips(t *testing.T) {
	for _, s := range []string{"", "a", "\x00", "a\x00b", "\x00\x01", "\xff\x00\xff", "conv-1"} {
		enc := appendString(nil, s)
		got, rest, err := readString(append(enc, 'x'))
		if err != nil || got != s || string(rest) != "x" {
			t.Errorf("readString(appendString(%q)) = %q, %q, %v", s, got, rest, err)
		}
	}
	for _, bad := range []string{"", "a", "a\x00", "a\x00\x02"} {
		if _, _, err := readString([]byte(bad)); err == nil {
			t.Errorf("readString(%q) succeeded", bad)
		}
	}
}

func TestActivityOrdersNewestFirst(t *testing.T) {
	times := []time.Time{
		time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2025, 3, 14, 15, 9, 26, 535897933, time.UTC),
		time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC),
		time.Date(2025, 3, 14, 15, 9, 25, 999999999, time.UTC),
		time.Unix(0, 0),
		time.Unix(-1, 999999999),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i := 1; i < len(times); i++ {
		if bytes.Compare(activity(times[i-1]), activity(times[i])) >= 0 {
			t.Errorf("activity(%v) does not sort before activity(%v)", times[i-1], times[i])
		}
	}
}

// FuzzKeyOrder checks that Pebble's bytewise order of the keys is the
// order the store relies on: a conversation's messages by seq, never
// mixed with another conversation's; a user's inbox by activity, newest
// first, never mixed with another user's.
func FuzzKeyOrder(f *testing.F) {
	f.Add("c1", "c10", uint64(999), uint64(1000), "alice", int64(1), int64(2), uint32(0), uint32(1))
	f.Add("a\x00", "a", uint64(1999), uint64(2000), "a\x00b", int64(-5), int64(7), uint32(999999999), uint32(0))
	f.Add("", "\x00", uint64(0), uint64(1<<63), "", int64(0), int64(0), uint32(5), uint32(5))
	f.Fuzz(func(t *testing.T, c1, c2 string, s1, s2 uint64, user string, sec1, sec2 int64, ns1, ns2 uint32) {
		ns1, ns2 = ns1%1e9, ns2%1e9
		// Messages of one conversation: seq order.
		k1, k2 := messageKey(c1, s1), messageKey(c1, s2)
		if got, want := bytes.Compare(k1, k2), cmp.Compare(s1, s2); got != want {
			t.Fatalf("messages %q %d vs %d: compare %d, want %d", c1, s1, s2, got, want)
		}
		if seq, err := seqOfMessageKey(k1); err != nil || seq != s1 {
			t.Fatalf("seqOfMessageKey = %d, %v, want %d", seq, err, s1)
		}
		// Another conversation's messages are outside the prefix range,
		// and conversations sort by id.
		p := messagePrefix(c1)
		if !bytes.HasPrefix(k1, p) || bytes.Compare(k1, prefixEnd(p)) >= 0 {
			t.Fatalf("message key %x outside its prefix range", k1)
		}
		if c1 != c2 {
			o := messageKey(c2, s2)
			if bytes.Compare(o, p) >= 0 && bytes.Compare(o, prefixEnd(p)) < 0 {
				t.Fatalf("message of %q inside the prefix range of %q", c2, c1)
			}
			if got, want := bytes.Compare(k1, o), cmp.Compare(c1, c2); got != want {
				t.Fatalf("messages of %q and %q: compare %d, want %d", c1, c2, got, want)
			}
		}
		// A user's inbox: newest first, then by conversation.
		t1, t2 := time.Unix(sec1, int64(ns1)), time.Unix(sec2, int64(ns2))
		i1, i2 := inboxKey(user, activity(t1), c1), inboxKey(user, activity(t2), c2)
		want := -t1.Compare(t2) // the later time first
		if want == 0 {
			want = cmp.Compare(c1, c2)
		}
		if got := bytes.Compare(i1, i2); got != want {
			t.Fatalf("inbox %v/%q vs %v/%q: compare %d, want %d", t1, c1, t2, c2, got, want)
		}
		if got, err := conversationOfInboxKey(user, i1); err != nil || got != c1 {
			t.Fatalf("conversationOfInboxKey = %q, %v, want %q", got, err, c1)
		}
		ip := inboxPrefix(user)
		other := inboxKey(user+"\x00", activity(t1), c1)
		if bytes.Compare(other, ip) >= 0 && bytes.Compare(other, prefixEnd(ip)) < 0 {
			t.Fatalf("inbox key of %q inside the prefix range of %q", user+"\x00", user)
		}
	})
}

func TestReceiptKeysRoundTrip(t *testing.T) {
	for _, c := range [][2]string{{"c", "alice"}, {"c\x00", ""}, {"", "a\x00b"}} {
		k := receiptKey(c[0], c[1])
		if !bytes.HasPrefix(k, receiptPrefix(c[0])) {
			t.Errorf("receipt key %x of %q lacks its prefix", k, c)
		}
		if u, err := userOfReceiptKey(c[0], k); err != nil || u != c[1] {
			t.Errorf("userOfReceiptKey(%q) = %q, %v", c, u, err)
		}
		if _, err := userOfReceiptKey(c[0], append(k, 'x')); err == nil {
			t.Errorf("a receipt key with trailing bytes decoded")
		}
	}
	if _, err := decodeSeqs([]byte{1, 2, 3}, 1); err == nil {
		t.Error("decodeSeqs accepted 3 bytes")
	}
}

// TestKeyBytesAreTheLayouts: every key builder gives exactly the bytes
// of its layout (the tag, then each part as appendString encodes it,
// escaping 0x00 byte by byte): a key built differently would not find
// what a store already holds. Each key without 0x00 is one allocation.
func TestKeyBytesAreTheLayouts(t *testing.T) {
	str := func(s string) []byte { // the encoding, one byte at a time
		var b []byte
		for i := range len(s) {
			if s[i] == 0 {
				b = append(b, 0, 0xFF)
			} else {
				b = append(b, s[i])
			}
		}
		return append(b, 0, 1)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	act := activity(time.Date(2025, 3, 14, 15, 9, 26, 535897933, time.UTC))
	for _, c := range [][2]string{{"alice", "d_alice_bob"}, {"", ""}, {"a\x00b", "\x00c\x00"}, {"\x00", "x\x00\x00y"}} {
		u, v := c[0], c[1]
		for _, k := range []struct {
			name      string
			got, want []byte
		}{
			{"seqPrefix", seqPrefix(tagMessage, u), cat([]byte{tagMessage}, str(u))},
			{"messageKey", messageKey(u, 1234567), cat([]byte{tagMessage}, str(u), []byte{0, 0, 0, 0, 0, 0, 0x04, 0xd2, 0, 0, 0, 0, 0, 0x12, 0xd6, 0x87})},
			{"conversationKey", conversationKey(u), cat([]byte{tagConversation}, str(u))},
			{"authorPrefix", authorPrefix(u), cat([]byte{tagAuthor}, str(u))},
			{"authorKey", authorKey(u, v), cat([]byte{tagAuthor}, str(u), str(v))},
			{"inboxPrefix", inboxPrefix(u), cat([]byte{tagInbox}, str(u))},
			{"inboxKey", inboxKey(u, act, v), cat([]byte{tagInbox}, str(u), act, str(v))},
			{"inboxPointerKey", inboxPointerKey(u, v), cat([]byte{tagInboxPointer}, str(u), str(v))},
			{"readSeqKey", readSeqKey(u, v), cat([]byte{tagReadSeq}, str(u), str(v))},
			{"receiptPrefix", receiptPrefix(u), cat([]byte{tagReceipt}, str(u))},
			{"receiptKey", receiptKey(u, v), cat([]byte{tagReceipt}, str(u), str(v))},
		} {
			if !bytes.Equal(k.got, k.want) {
				t.Errorf("%s(%q, %q) = %q, want %q", k.name, u, v, k.got, k.want)
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = inboxKey("alice", act, "d_alice_bob") }); n != 1 {
		t.Errorf("inboxKey allocates %v times, want 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = authorKey("0123456789abcdef0123456789abcdef", "d_alice_bob") }); n != 1 {
		t.Errorf("authorKey allocates %v times, want 1", n)
	}
}
