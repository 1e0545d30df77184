// The Web Push service stand-in.

package pushtest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/schemas"
)

// WebPushMessage is a push the service accepted, decrypted.
type WebPushMessage struct {
	// Subscription is the id of the subscription it was for.
	Subscription string
	// Payload is the decrypted body.
	Payload []byte
	TTL     int
	Topic   string
	Urgency string
	// Subject is the VAPID JWT's sub claim.
	Subject string
}

// WebPush is a Web Push service.
type WebPush struct {
	script
	srv   *httptest.Server
	vapid *ecdsa.PublicKey

	mu       sync.Mutex
	subs     map[string]*subscriber
	held     map[string]chan struct{}
	received []WebPushMessage
}

type subscriber struct {
	priv *ecdh.PrivateKey
	auth []byte
}

// StartWebPush starts a Web Push service that accepts pushes signed by
// the VAPID key pair whose public key is vapidPublic (base64url,
// uncompressed P-256 point).
func StartWebPush(t testing.TB, vapidPublic string) *WebPush {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(vapidPublic)
	if err != nil {
		t.Fatalf("VAPID public key: %v", err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		t.Fatalf("VAPID public key: %v", err)
	}
	w := &WebPush{script: newScript(), vapid: pub, subs: make(map[string]*subscriber), held: make(map[string]chan struct{})}
	w.srv = httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.srv.Close)
	return w
}

// URL is the service's origin.
func (w *WebPush) URL() string { return w.srv.URL }

// Subscribe makes a subscription with id (its endpoint is
// URL()/push/<id>), with a fresh key pair and auth secret, as a browser
// would get one.
func (w *WebPush) Subscribe(t testing.TB, id string) schemas.WebPushSubscriptionV1 {
	t.Helper()
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	w.mu.Lock()
	w.subs[id] = &subscriber{priv: priv, auth: auth}
	w.mu.Unlock()
	var s schemas.WebPushSubscriptionV1
	s.Endpoint = w.srv.URL + "/push/" + id
	s.Keys.P256DH = base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes())
	s.Keys.Auth = base64.RawURLEncoding.EncodeToString(auth)
	return s
}

// Hold makes pushes to subscription id wait, unanswered, until release
// is called (or the request is cancelled): a push service that hangs.
func (w *WebPush) Hold(id string) (release func()) {
	ch := make(chan struct{})
	w.mu.Lock()
	w.held[id] = ch
	w.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			delete(w.held, id)
			w.mu.Unlock()
			close(ch)
		})
	}
}

// Fail queues failures for the next pushes to subscription id.
func (w *WebPush) Fail(id string, fs ...Failure) { w.fail(id, fs...) }

// Received returns the pushes accepted so far, in order.
func (w *WebPush) Received() []WebPushMessage {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]WebPushMessage(nil), w.received...)
}

func (w *WebPush) serve(rw http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/push/")
	if r.Method != http.MethodPost || !ok {
		http.Error(rw, "not a push endpoint", http.StatusNotFound)
		return
	}
	w.mu.Lock()
	sub, held := w.subs[id], w.held[id]
	w.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-r.Context().Done():
			return
		}
	}
	if f, failing := w.next(id); failing {
		retryAfter(rw, f)
		http.Error(rw, f.Reason, f.Status)
		return
	}
	if sub == nil {
		http.Error(rw, "no such subscription", http.StatusGone)
		return
	}
	subject, err := w.checkVAPID(r.Header.Get("Authorization"))
	if err != nil {
		http.Error(rw, err.Error(), http.StatusUnauthorized)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get("TTL"))
	if err != nil || ttl < 0 {
		http.Error(rw, "a TTL header is required", http.StatusBadRequest)
		return
	}
	if topic := r.Header.Get("Topic"); len(topic) > 32 || strings.Trim(topic, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		http.Error(rw, "bad Topic header", http.StatusBadRequest)
		return
	}
	if r.Header.Get("Content-Encoding") != "aes128gcm" {
		http.Error(rw, "Content-Encoding must be aes128gcm", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4097))
	if err != nil || len(body) > 4096 {
		http.Error(rw, "payload too large", http.StatusRequestEntityTooLarge)
		return
	}
	plain, err := Decrypt(body, sub.priv, sub.auth)
	if err != nil {
		http.Error(rw, "cannot decrypt: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	w.received = append(w.received, WebPushMessage{Subscription: id, Payload: plain, TTL: ttl, Topic: r.Header.Get("Topic"), Urgency: r.Header.Get("Urgency"), Subject: subject})
	w.mu.Unlock()
	rw.Header().Set("Location", w.srv.URL+"/message/"+strconv.Itoa(len(body)))
	rw.WriteHeader(http.StatusCreated)
}

// checkVAPID checks an Authorization header of the form "vapid t=<JWT>,
// k=<public key>" (RFC 8292) and returns the JWT's subject.
func (w *WebPush) checkVAPID(h string) (string, error) {
	rest, ok := strings.CutPrefix(h, "vapid ")
	if !ok {
		return "", errors.New("no vapid authorization")
	}
	params := map[string]string{}
	for _, p := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		params[k] = v
	}
	k, err := base64.RawURLEncoding.DecodeString(params["k"])
	if err != nil {
		return "", errors.New("bad k")
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), k)
	if err != nil || !pub.Equal(w.vapid) {
		return "", errors.New("k is not the application server key the subscription was made for")
	}
	_, claims, err := verifyES256(params["t"], pub)
	if err != nil {
		return "", err
	}
	if claims["aud"] != w.srv.URL {
		return "", fmt.Errorf("aud %v, want %s", claims["aud"], w.srv.URL)
	}
	exp, ok := numericDate(claims, "exp")
	if !ok || !exp.After(time.Now()) || exp.After(time.Now().Add(24*time.Hour)) {
		return "", fmt.Errorf("exp %v not within the next 24 hours", claims["exp"])
	}
	sub, _ := claims["sub"].(string)
	if !strings.HasPrefix(sub, "mailto:") && !strings.HasPrefix(sub, "https:") {
		return "", fmt.Errorf("sub %q is neither a mailto: nor an https: URI", sub)
	}
	return sub, nil
}

// Decrypt decrypts an aes128gcm body (RFC 8188) encrypted to a Web Push
// subscriber (RFC 8291) with the subscriber's private key and auth
// secret, and returns the plaintext without its padding.
func Decrypt(body []byte, priv *ecdh.PrivateKey, auth []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("shorter than the aes128gcm header")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if idlen != 65 || len(body) < 21+idlen {
		return nil, fmt.Errorf("keyid of %d bytes, want the sender's 65-byte public key", idlen)
	}
	asPublic, err := ecdh.P256().NewPublicKey(body[21 : 21+idlen])
	if err != nil {
		return nil, fmt.Errorf("keyid: %w", err)
	}
	record := body[21+idlen:]
	if rs < 18 || len(record) > int(rs) {
		return nil, fmt.Errorf("record of %d bytes with rs %d: want one record", len(record), rs)
	}
	secret, err := priv.ECDH(asPublic)
	if err != nil {
		return nil, err
	}
	// RFC 8291 section 3.4: IKM from the ECDH secret and the auth secret,
	// then the content encryption key and nonce (RFC 8188 section 2.2).
	info := append([]byte("WebPush: info\x00"), priv.PublicKey().Bytes()...)
	info = append(info, asPublic.Bytes()...)
	ikm, err := hkdf.Key(sha256.New, secret, auth, string(info), 32)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, record, nil)
	if err != nil {
		return nil, fmt.Errorf("AES-128-GCM: %w", err)
	}
	// The last record: data, the delimiter 0x02, then zero padding.
	end := len(plain) - 1
	for end >= 0 && plain[end] == 0 {
		end--
	}
	if end < 0 || plain[end] != 2 {
		return nil, errors.New("no last-record delimiter")
	}
	return plain[:end], nil
}
