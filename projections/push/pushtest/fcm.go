// The FCM stand-in.

package pushtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// FCMMessage is a message FCM accepted: the "message" object of the
// messages:send request.
type FCMMessage struct {
	Token        string            `json:"token"`
	Data         map[string]string `json:"data"`
	Notification *struct {
		Title string `json:"title"`
		Body  string `json:"body"`
	} `json:"notification"`
	Android *struct {
		CollapseKey string `json:"collapse_key"`
		Priority    string `json:"priority"`
		TTL         string `json:"ttl"`
	} `json:"android"`
}

// FCM is an FCM HTTP v1 endpoint for one project.
type FCM struct {
	script
	accepted[FCMMessage]
	srv *httptest.Server
	// Project is the project id, AccessToken the OAuth 2 access token it
	// accepts.
	Project, AccessToken string
}

// StartFCM starts an FCM endpoint.
func StartFCM(t testing.TB) *FCM {
	t.Helper()
	f := &FCM{script: newScript(), Project: "parley-test", AccessToken: "ya29.test-access-token"}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// Endpoint is what option.WithEndpoint takes: the server's origin and
// the API version.
func (f *FCM) Endpoint() string { return f.srv.URL + "/v1" }

// Fail queues failures for the next messages to token.
func (f *FCM) Fail(token string, fs ...Failure) { f.fail(token, fs...) }

// fcmError answers with the error shape of the v1 API: a google.rpc
// status with an FcmError detail.
func fcmError(rw http.ResponseWriter, status int, rpc, code, msg string) {
	rw.Header().Set("Content-Type", "application/json; charset=UTF-8")
	rw.WriteHeader(status)
	body := map[string]any{"error": map[string]any{"code": status, "message": msg, "status": rpc}}
	if code != "" {
		body["error"].(map[string]any)["details"] = []any{map[string]any{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}}
	}
	_ = json.NewEncoder(rw).Encode(body)
}

var rpcOf = map[int]string{400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}

func (f *FCM) serve(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/projects/"+f.Project+"/messages:send" {
		fcmError(rw, http.StatusNotFound, "NOT_FOUND", "", "no such method "+r.URL.Path)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.AccessToken {
		fcmError(rw, http.StatusUnauthorized, "UNAUTHENTICATED", "", "Request had invalid authentication credentials.")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		fcmError(rw, http.StatusBadRequest, "INVALID_ARGUMENT", "", "want application/json")
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		fcmError(rw, http.StatusBadRequest, "INVALID_ARGUMENT", "", err.Error())
		return
	}
	var req struct {
		ValidateOnly bool            `json:"validate_only"`
		Message      json.RawMessage `json:"message"`
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || len(req.Message) == 0 {
		fcmError(rw, http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", fmt.Sprintf("bad request body: %v", err))
		return
	}
	var m FCMMessage
	var targets map[string]any
	if err := json.Unmarshal(req.Message, &m); err != nil || json.Unmarshal(req.Message, &targets) != nil {
		fcmError(rw, http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "bad message")
		return
	}
	n := 0
	for _, k := range []string{"token", "topic", "condition"} {
		if _, ok := targets[k]; ok {
			n++
		}
	}
	if n != 1 || m.Token == "" {
		fcmError(rw, http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "exactly one of token, topic, condition")
		return
	}
	if m.Android != nil && m.Android.TTL != "" && !strings.HasSuffix(m.Android.TTL, "s") {
		fcmError(rw, http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "android.ttl must be a duration in seconds")
		return
	}
	if ft, failing := f.next(m.Token); failing {
		retryAfter(rw, ft)
		fcmError(rw, ft.Status, rpcOf[ft.Status], ft.Reason, "scripted failure")
		return
	}
	n, ok := f.accept(m.Token, m)
	if !ok {
		fcmError(rw, http.StatusNotFound, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.")
		return
	}
	rw.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(rw).Encode(map[string]string{"name": "projects/" + f.Project + "/messages/" + strconv.Itoa(n)})
}
