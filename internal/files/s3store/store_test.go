package s3store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/parley-chat/parley/internal/files"
	"github.com/parley-chat/parley/internal/files/s3store"
	"github.com/parley-chat/parley/internal/files/versitys3"
)

// server is the one embedded S3 server of this test binary (versitygw
// allows one per process); every test uses a bucket of its own.
var server *versitys3.Server

// serverDir is where server keeps its buckets' files.
var serverDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "s3store-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	serverDir = dir
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

func newStore(t testing.TB, bucket string) *s3store.Store {
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

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// put sends body to an upload's URL with its headers, changed by edit.
func put(t *testing.T, u files.Upload, body []byte, edit func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, u.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range u.Headers {
		req.Header.Set(k, v)
	}
	req.ContentLength = int64(len(body))
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func get(t *testing.T, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func presignPut(t *testing.T, s *s3store.Store, key string, body []byte, contentType string) files.Upload {
	t.Helper()
	u, err := s.PresignPut(t.Context(), files.PutRequest{Key: key, Owner: "alice", Name: "Grüße/ photo.jpg", Size: uint64(len(body)), ContentType: contentType, SHA256: sum(body), TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestPresignedUploadAndDownload: a file goes up through a presigned PUT
// and down through a presigned GET, with real SigV4 and real HTTP, and
// HEAD reports its size, type, SHA-256 and owner.
func TestPresignedUploadAndDownload(t *testing.T) {
	t.Parallel()
	s := newStore(t, "updown")
	body := bytes.Repeat([]byte("parley "), 1000)
	u := presignPut(t, s, "uploads/g_a/u_1", body, "image/jpeg")
	if !strings.Contains(u.URL, "X-Amz-Signature=") {
		t.Fatalf("URL %s is not presigned", u.URL)
	}
	if code, msg := put(t, u, body, nil); code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, msg)
	}
	o, err := s.Head(t.Context(), "uploads/g_a/u_1")
	if err != nil {
		t.Fatal(err)
	}
	if o.Size != uint64(len(body)) || o.ContentType != "image/jpeg" || o.SHA256 != sum(body) || o.Owner != "alice" || o.Name != "Grüße/ photo.jpg" || o.LastModified.IsZero() {
		t.Errorf("HEAD = %+v", o)
	}
	link, err := s.PresignGet(t.Context(), "uploads/g_a/u_1", "Grüße photo.jpg", "image/jpeg", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, got := get(t, link)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET: %d, %d bytes", resp.StatusCode, len(got))
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || !strings.Contains(cd, "photo.jpg") {
		t.Errorf("Content-Disposition %q", cd)
	}
	if _, err := s.Head(t.Context(), "uploads/g_a/none"); !errors.Is(err, files.ErrNotFound) {
		t.Errorf("HEAD of a missing key: %v, want ErrNotFound", err)
	}
}

// TestStoreRefuses: the store itself refuses a PUT whose size, hash,
// type or signature is not the presigned one, and a GET through an
// expired URL, a tampered one or one for another key; nothing refused
// is stored.
func TestStoreRefuses(t *testing.T) {
	t.Parallel()
	s := newStore(t, "refusals")
	body := []byte("the real bytes of a photo")
	other := []byte("other bytes, same length!")
	if len(other) != len(body) {
		t.Fatal("other must have body's length")
	}
	puts := []struct {
		name string
		body []byte
		edit func(*http.Request)
	}{
		{"a body of another size", append(body, '!'), nil},
		{"a body with another SHA-256", other, nil},
		{"another content type", body, func(r *http.Request) { r.Header.Set("Content-Type", "text/html") }},
		{"a tampered signature", body, func(r *http.Request) { r.URL.RawQuery = tamper(r.URL.Query()).Encode() }},
		{"another key", body, func(r *http.Request) { r.URL.Path = strings.Replace(r.URL.Path, "/u_put", "/u_else", 1) }},
	}
	for i, tt := range puts {
		t.Run("PUT with "+tt.name, func(t *testing.T) {
			key := fmt.Sprintf("uploads/g_a/u_put%d", i)
			u := presignPut(t, s, key, body, "image/png")
			code, msg := put(t, u, tt.body, tt.edit)
			if code < 400 {
				t.Fatalf("PUT accepted: %d %s", code, msg)
			}
			t.Logf("refused: %d %.200s", code, msg)
			for _, k := range []string{key, strings.Replace(key, "/u_put", "/u_else", 1)} {
				if _, err := s.Head(t.Context(), k); !errors.Is(err, files.ErrNotFound) {
					t.Errorf("%s stored after a refused PUT (%v)", k, err)
				}
			}
		})
	}

	u := presignPut(t, s, "uploads/g_a/u_get", body, "image/png")
	if code, msg := put(t, u, body, nil); code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, msg)
	}
	if code, msg := put(t, presignPut(t, s, "uploads/g_a/u_else", body, "image/png"), body, nil); code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, msg)
	}
	link, err := s.PresignGet(t.Context(), "uploads/g_a/u_get", "a.png", "image/png", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, link); resp.StatusCode != http.StatusOK {
		t.Fatalf("the untampered link: %d", resp.StatusCode)
	}
	parsed, _ := url.Parse(link)
	// The same signing, now: what makes the expired URL fail is its time.
	if resp, _ := get(t, signedAt(t, parsed, time.Now())); resp.StatusCode != http.StatusOK {
		t.Fatalf("a URL signed now the way expired signs: %d", resp.StatusCode)
	}
	tampered := *parsed
	tampered.RawQuery = tamper(parsed.Query()).Encode()
	elsewhere := *parsed
	elsewhere.Path = strings.Replace(parsed.Path, "/u_get", "/u_else", 1)
	gets := map[string]string{
		"an expired URL":        expired(t, parsed),
		"a tampered signature":  tampered.String(),
		"a URL for another key": elsewhere.String(),
	}
	for name, link := range gets {
		t.Run("GET with "+name, func(t *testing.T) {
			resp, b := get(t, link)
			if resp.StatusCode != http.StatusForbidden || bytes.Equal(b, body) {
				t.Errorf("GET: %d %s, want 403", resp.StatusCode, b)
			}
		})
	}
}

func tamper(q url.Values) url.Values {
	sig := []byte(q.Get("X-Amz-Signature"))
	if sig[0] == '0' {
		sig[0] = '1'
	} else {
		sig[0] = '0'
	}
	q.Set("X-Amz-Signature", string(sig))
	return q
}

// expired presigns link's GET again, correctly signed with the store's
// credentials but at a signing time ten minutes ago with a one-minute
// expiry: a URL whose signature is valid and whose time is up.
func expired(t *testing.T, link *url.URL) string {
	t.Helper()
	return signedAt(t, link, time.Now().Add(-10*time.Minute))
}

func signedAt(t *testing.T, link *url.URL, at time.Time) string {
	t.Helper()
	u := *link
	q := url.Values{"X-Amz-Expires": {"60"}}
	for k, v := range link.Query() {
		if !strings.HasPrefix(k, "X-Amz-") {
			q[k] = v
		}
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequest(http.MethodGet, u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ak, sk := server.Credentials()
	signed, _, err := v4.NewSigner().PresignHTTP(t.Context(), aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk},
		req, "UNSIGNED-PAYLOAD", "s3", server.Region(), at)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// TestBrowsersMayUpload: with AllowBrowsers, the store answers a
// browser's preflight for a presigned PUT with the signed headers, and
// the PUT itself with the origin allowed and the ETag exposed, as a page
// on another origin needs; without it, the preflight grants nothing.
func TestBrowsersMayUpload(t *testing.T) {
	t.Parallel()
	s := newStore(t, "browsers")
	body := []byte("a file from a web page")
	u := presignPut(t, s, "uploads/g_a/u_cors", body, "application/pdf")
	const origin = "http://127.0.0.1:8080"
	var names []string
	for k := range u.Headers {
		if k != "Content-Length" {
			names = append(names, strings.ToLower(k))
		}
	}
	preflight := func() *http.Response {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodOptions, u.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", http.MethodPut)
		req.Header.Set("Access-Control-Request-Headers", strings.Join(names, ","))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if got := preflight().Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Fatalf("preflight without a CORS rule allows origin %q", got)
	}
	if err := s.AllowBrowsers(t.Context(), []string{"*"}); err != nil {
		t.Fatal(err)
	}
	resp := preflight()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("preflight: %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" && got != origin {
		t.Errorf("preflight Access-Control-Allow-Origin %q", got)
	}
	if got := resp.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(got, http.MethodPut) {
		t.Errorf("preflight Access-Control-Allow-Methods %q", got)
	}
	// The PUT itself, as the page sends it.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, u.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range u.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Origin", origin)
	req.ContentLength = int64(len(body))
	presp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	presp.Body.Close()
	if presp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %d", presp.StatusCode)
	}
	putHeaders := presp.Header
	if got := putHeaders.Get("Access-Control-Allow-Origin"); got != "*" && got != origin {
		t.Errorf("PUT Access-Control-Allow-Origin %q", got)
	}
	if got := putHeaders.Get("Access-Control-Expose-Headers"); !strings.Contains(strings.ToLower(got), "etag") {
		t.Errorf("PUT Access-Control-Expose-Headers %q", got)
	}
}
