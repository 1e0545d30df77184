// Package pushtest runs, in-process, stand-ins of the three push services
// that speak their real wire formats and check what the real ones would:
//
//   - WebPush, a Web Push service (RFC 8030) that verifies the VAPID JWT
//     (RFC 8292: ES256 by the key in the Authorization header, audience
//     its own origin, not expired) and decrypts the aes128gcm body (RFC
//     8188, RFC 8291) with the subscriber's private key, which it made;
//   - APNs, an HTTP/2 server over TLS that checks the request path
//     /3/device/<token>, apns-topic, apns-push-type and the ES256
//     provider token (kid, iss, iat);
//   - FCM, an HTTP v1 endpoint that checks the OAuth bearer token and the
//     messages:send JSON.
//
// Each records what it accepted, and can be told to answer a device's
// next requests with failures (429 and 5xx with Retry-After, or "gone")
// to test retries and registration hygiene. Servers are safe for
// concurrent use and close with the test.
package pushtest

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Failure is a scripted answer to one request: an HTTP status, a
// Retry-After in seconds (0: none) and, for APNs and FCM, the reason or
// error code the service gives.
type Failure struct {
	Status     int
	RetryAfter int
	Reason     string
}

// script holds scripted failures per device (subscription id or token)
// and the requests each device saw.
type script struct {
	mu       sync.Mutex
	failures map[string][]Failure
	attempts map[string]int
}

func newScript() script {
	return script{failures: make(map[string][]Failure), attempts: make(map[string]int)}
}

// fail queues failures for device's next requests.
func (s *script) fail(device string, fs ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[device] = append(s.failures[device], fs...)
}

// next counts a request of device and returns the failure to answer it
// with, if one is queued.
func (s *script) next(device string) (Failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[device]++
	q := s.failures[device]
	if len(q) == 0 {
		return Failure{}, false
	}
	s.failures[device] = q[1:]
	return q[0], true
}

// Attempts returns how many requests device's notifications made,
// accepted or not.
func (s *script) Attempts(device string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[device]
}

// accepted holds what a stand-in accepted, in order, and the devices
// (tokens) it answers as gone.
type accepted[M any] struct {
	mu       sync.Mutex
	gone     map[string]bool
	received []M
}

// Unregister makes device answer as gone from now on: 410 Unregistered on
// APNs, UNREGISTERED on FCM.
func (a *accepted[M]) Unregister(device string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gone == nil {
		a.gone = make(map[string]bool)
	}
	a.gone[device] = true
}

// Received returns what was accepted so far, in order.
func (a *accepted[M]) Received() []M {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]M(nil), a.received...)
}

// accept records m, for device, unless device is gone; n is how many
// have been accepted since the start.
func (a *accepted[M]) accept(device string, m M) (n int, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gone[device] {
		return len(a.received), false
	}
	a.received = append(a.received, m)
	return len(a.received), true
}

// retryAfter sets the Retry-After header f asks for, if any.
func retryAfter(rw http.ResponseWriter, f Failure) {
	if f.RetryAfter > 0 {
		rw.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
	}
}

// verifyES256 verifies a compact JWS signed with ES256 by pub and
// returns its header and claims.
func verifyES256(token string, pub *ecdsa.PublicKey) (header, claims map[string]any, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, nil, errors.New("not a compact JWS")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, nil, errors.New("bad ES256 signature encoding")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil, nil, errors.New("ES256 signature does not verify")
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, nil, fmt.Errorf("bad JWS part %d: %w", i, err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return nil, nil, fmt.Errorf("bad JWS part %d: %w", i, err)
		}
	}
	if header["alg"] != "ES256" {
		return nil, nil, fmt.Errorf("alg %v, want ES256", header["alg"])
	}
	return header, claims, nil
}

// numericDate reads a JWT NumericDate claim.
func numericDate(claims map[string]any, name string) (time.Time, bool) {
	f, ok := claims[name].(float64)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}
