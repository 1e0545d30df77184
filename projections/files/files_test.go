package files_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	ifiles "github.com/parley-chat/parley/internal/files"
	"github.com/parley-chat/parley/internal/files/s3store"
	"github.com/parley-chat/parley/internal/files/versitys3"
	"github.com/parley-chat/parley/projections/files"
	"github.com/parley-chat/parley/schemas"
)

// server is the one embedded S3 server of this test binary (versitygw
// allows one per process).
var server *versitys3.Server

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "files-projection-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	server, err = versitys3.Start(ctx, versitys3.Config{Dir: dir})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = server.Close()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func newStore(t *testing.T, bucket string) *s3store.Store {
	t.Helper()
	ak, sk := server.Credentials()
	s, err := s3store.New(s3store.Config{Endpoint: server.Endpoint(), Region: server.Region(), Bucket: bucket, AccessKey: ak, SecretKey: sk})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func uploadID(n int) string { return fmt.Sprintf("u_%032x", n) }

func record(t *testing.T, typ string, v any) consumers.Record {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return consumers.Record{Message: kafka.Message{Value: b}, Attrs: schemas.Attributes{Type: typ}}
}

func exists(t *testing.T, s *s3store.Store, key string) bool {
	t.Helper()
	_, err := s.Head(t.Context(), key)
	if err != nil && !errors.Is(err, ifiles.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestAttachDeleteAndSweep: against the embedded S3 server, uploads a
// message attaches survive the sweep, the one no message attached is
// swept once older than the TTL (and not before), and deleting a message
// deletes its files and only its files, as often as it is replayed.
func TestAttachDeleteAndSweep(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, "sweep")
	const conv = "g_files"
	for i := 1; i <= 3; i++ {
		if err := s.Put(ctx, ifiles.Key(conv, uploadID(i)), "image/jpeg", []byte("photo")); err != nil {
			t.Fatal(err)
		}
	}
	p := files.Projection{Store: s}
	att := func(n int) schemas.Attachment {
		return schemas.Attachment{UploadID: uploadID(n), Name: "p.jpg", Size: 5, ContentType: "image/jpeg", SHA256: fmt.Sprintf("%064x", n)}
	}
	now := time.Now()
	var ops []files.Op
	for _, r := range []consumers.Record{
		record(t, schemas.TypeMessageSentV3, schemas.MessageSentV3{ConversationID: conv, Seq: 1, SenderID: "ann", Attachments: []schemas.Attachment{att(1)}, CommandID: "c1", SentAt: now}),
		record(t, schemas.TypeMessageSentV2, schemas.MessageSentV2{ConversationID: conv, Seq: 2, SenderID: "ann", Body: "no files", CommandID: "c2", SentAt: now}),
		record(t, schemas.TypeMessageSentV3, schemas.MessageSentV3{ConversationID: conv, Seq: 3, SenderID: "ann", Attachments: []schemas.Attachment{att(2)}, CommandID: "c3", SentAt: now}),
	} {
		op, err := p.Decode(r)
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, op)
	}
	if ops[0].Kind != files.OpAttach || ops[1].Kind != files.OpNone || ops[2].Kind != files.OpAttach {
		t.Fatalf("ops %+v", ops)
	}
	if err := p.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}

	sw := files.Sweeper{Store: s, TTL: 24 * time.Hour}
	if n, err := sw.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("a sweep before the TTL deleted %d (%v), want 0", n, err)
	}
	sw.Now = func() time.Time { return now.Add(25 * time.Hour) }
	if n, err := sw.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("a sweep after the TTL deleted %d (%v), want 1", n, err)
	}
	for i, want := range map[int]bool{1: true, 2: true, 3: false} {
		if got := exists(t, s, ifiles.Key(conv, uploadID(i))); got != want {
			t.Errorf("after the sweep, upload %d exists: %v, want %v", i, got, want)
		}
	}

	del, err := p.Decode(record(t, schemas.TypeMessageDeleted, schemas.MessageDeletedV1{ConversationID: conv, Seq: 4, UserID: "ann", MessageSeq: 1, CommandID: "d1", DeletedAt: now}))
	if err != nil || del.Kind != files.OpDelete || del.Seq != 1 {
		t.Fatalf("deletion decoded as %+v, %v", del, err)
	}
	for range 2 { // a replay deletes nothing more and fails nothing
		if err := p.Apply(ctx, []files.Op{del}); err != nil {
			t.Fatal(err)
		}
		if exists(t, s, ifiles.Key(conv, uploadID(1))) || !exists(t, s, ifiles.Key(conv, uploadID(2))) {
			t.Errorf("after deleting message 1: upload 1 exists %v (want false), upload 2 exists %v (want true)",
				exists(t, s, ifiles.Key(conv, uploadID(1))), exists(t, s, ifiles.Key(conv, uploadID(2))))
		}
	}
	if n, err := sw.Sweep(ctx); err != nil || n != 0 {
		t.Errorf("sweeping again deleted %d (%v), want 0: message 3's upload is attached", n, err)
	}
	if _, err := p.Decode(consumers.Record{Message: kafka.Message{Value: []byte("{")}, Attrs: schemas.Attributes{Type: schemas.TypeMessageSentV3}}); !errors.Is(err, schemas.ErrInvalid) {
		t.Errorf("a broken record: %v, want ErrInvalid", err)
	}
}
