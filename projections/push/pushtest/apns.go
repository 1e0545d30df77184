// The APNs stand-in.

package pushtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// APNsMessage is a push APNs accepted.
type APNsMessage struct {
	Token      string
	PushType   string
	Priority   string
	CollapseID string
	// Payload is the JSON body: aps and the custom keys.
	Payload map[string]any
}

// APNs is an APNs provider API endpoint: HTTP/2 over TLS.
type APNs struct {
	script
	accepted[APNsMessage]
	srv *httptest.Server
	// Key is the provider token signing key (a .p8 key) the server
	// accepts, with KeyID and TeamID; Topic is the app's bundle id.
	Key                  *ecdsa.PrivateKey
	KeyID, TeamID, Topic string
}

// StartAPNs starts an APNs endpoint with a fresh signing key.
func StartAPNs(t testing.TB) *APNs {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := &APNs{script: newScript(), Key: key, KeyID: "ABC123DEFG", TeamID: "DEF123GHIJ", Topic: "chat.parley.app"}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(a.serve))
	a.srv.EnableHTTP2 = true
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	return a
}

// URL is the server's origin (https).
func (a *APNs) URL() string { return a.srv.URL }

// Client is an HTTP/2 client that trusts the server's certificate.
func (a *APNs) Client() *http.Client { return a.srv.Client() }

// KeyPEM is the signing key as an Apple .p8 file holds it (a PKCS 8 private key in PEM).
func (a *APNs) KeyPEM(t testing.TB) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(a.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Fail queues failures for the next pushes to token.
func (a *APNs) Fail(token string, fs ...Failure) { a.fail(token, fs...) }

func reason(rw http.ResponseWriter, status int, why string) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	body := map[string]any{"reason": why}
	if status == http.StatusGone {
		body["timestamp"] = time.Now().UnixMilli()
	}
	_ = json.NewEncoder(rw).Encode(body)
}

func (a *APNs) serve(rw http.ResponseWriter, r *http.Request) {
	rw.Header().Set("apns-id", "7b5fc3e1-0d9b-4c3f-9a55-6c2c2d0f3e01")
	if r.ProtoMajor != 2 {
		reason(rw, http.StatusBadRequest, "BadRequest: HTTP/2 required")
		return
	}
	token, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	if r.Method != http.MethodPost || !ok {
		reason(rw, http.StatusNotFound, "BadPath")
		return
	}
	if token == "" {
		reason(rw, http.StatusBadRequest, "MissingDeviceToken")
		return
	}
	if err := a.checkToken(r.Header.Get("Authorization")); err != nil {
		reason(rw, http.StatusForbidden, "InvalidProviderToken: "+err.Error())
		return
	}
	switch {
	case r.Header.Get("apns-topic") == "":
		reason(rw, http.StatusBadRequest, "MissingTopic")
		return
	case r.Header.Get("apns-topic") != a.Topic:
		reason(rw, http.StatusBadRequest, "DeviceTokenNotForTopic")
		return
	}
	pushType := r.Header.Get("apns-push-type")
	if pushType != "alert" && pushType != "background" {
		reason(rw, http.StatusBadRequest, "InvalidPushType")
		return
	}
	prio := r.Header.Get("apns-priority")
	if pushType == "background" && prio != "5" {
		reason(rw, http.StatusBadRequest, "BadPriority")
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 4097))
	if err != nil || len(raw) > 4096 {
		reason(rw, http.StatusRequestEntityTooLarge, "PayloadTooLarge")
		return
	}
	var payload map[string]any
	if err := json.Unmarshal(raw, &payload); err != nil {
		reason(rw, http.StatusBadRequest, "PayloadEmpty")
		return
	}
	aps, _ := payload["aps"].(map[string]any)
	if aps == nil || pushType == "background" && aps["content-available"] != float64(1) || pushType == "alert" && aps["alert"] == nil {
		reason(rw, http.StatusBadRequest, "BadPayload: aps does not match apns-push-type")
		return
	}
	if f, failing := a.next(token); failing {
		retryAfter(rw, f)
		reason(rw, f.Status, f.Reason)
		return
	}
	if _, ok := a.accept(token, APNsMessage{Token: token, PushType: pushType, Priority: prio, CollapseID: r.Header.Get("apns-collapse-id"), Payload: payload}); !ok {
		reason(rw, http.StatusGone, "Unregistered")
		return
	}
	rw.WriteHeader(http.StatusOK)
}

// checkToken checks "bearer <JWT>": ES256 by the team's key, kid the
// key id, iss the team id, iat within the last hour.
func (a *APNs) checkToken(h string) error {
	tok, ok := strings.CutPrefix(h, "bearer ")
	if !ok {
		return errors.New("no bearer provider token")
	}
	header, claims, err := verifyES256(tok, &a.Key.PublicKey)
	if err != nil {
		return err
	}
	if header["kid"] != a.KeyID {
		return fmt.Errorf("kid %v", header["kid"])
	}
	if claims["iss"] != a.TeamID {
		return fmt.Errorf("iss %v", claims["iss"])
	}
	iat, ok := numericDate(claims, "iat")
	if !ok || iat.Before(time.Now().Add(-time.Hour)) || iat.After(time.Now().Add(time.Minute)) {
		return fmt.Errorf("iat %v not within the last hour", claims["iat"])
	}
	return nil
}
