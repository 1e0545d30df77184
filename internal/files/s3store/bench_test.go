package s3store_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/files"
)

// BenchmarkPresignPut is what the gateway spends presigning one upload
// (SigV4 over the signed headers; no network).
func BenchmarkPresignPut(b *testing.B) {
	s := newStore(b, "bench-presign")
	req := files.PutRequest{Key: "uploads/g_bench/u_0", Owner: "alice", Name: "photo.jpg", Size: 48213,
		ContentType: "image/jpeg", SHA256: sum([]byte("x")), TTL: 15 * time.Minute}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.PresignPut(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPresignGet is what the gateway spends presigning one download.
func BenchmarkPresignGet(b *testing.B) {
	s := newStore(b, "bench-presign")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.PresignGet(b.Context(), "uploads/g_bench/u_0", "photo.jpg", "image/jpeg", 5*time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpload_* is uploads through presigned PUTs to the embedded
// versitygw server over loopback HTTP, one at a time: presign, PUT, and
// the store's SHA-256 check of the bytes. MB/s is the throughput.
func BenchmarkUpload_64KiB(b *testing.B) { benchUpload(b, 64<<10) }
func BenchmarkUpload_1MiB(b *testing.B)  { benchUpload(b, 1<<20) }
func BenchmarkUpload_16MiB(b *testing.B) { benchUpload(b, 16<<20) }

func benchUpload(b *testing.B, size int) {
	s := newStore(b, "bench-upload")
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	digest := sum(data)
	b.SetBytes(int64(size))
	i := 0
	for b.Loop() {
		i++
		u, err := s.PresignPut(b.Context(), files.PutRequest{Key: fmt.Sprintf("uploads/g_bench/u_%d", i), Owner: "alice", Name: "f.bin",
			Size: uint64(size), ContentType: "application/octet-stream", SHA256: digest, TTL: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(b.Context(), http.MethodPut, u.URL, bytes.NewReader(data))
		for k, v := range u.Headers {
			req.Header.Set(k, v)
		}
		req.ContentLength = int64(size)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("PUT: %d", resp.StatusCode)
		}
	}
}
