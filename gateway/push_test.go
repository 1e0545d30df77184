package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
	"github.com/parley-chat/parley/schemas/contractcheck"
)

type pushEnv struct {
	t     *testing.T
	k     kafkatest.Cluster
	s     *Server
	auth  *Authenticator
	check *contractcheck.Checker
}

func newPushEnv(t *testing.T, push func(kafkatest.Cluster) PushConfig) *pushEnv {
	t.Helper()
	k := kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 1}))
	auth, err := NewAuthenticator(AuthConfig{Secret: searchSecret})
	if err != nil {
		t.Fatal(err)
	}
	convs := map[string]history.Conversation{"g_ab": searchConv("g_ab", "alice", "bob"), "g_c": searchConv("g_c", "carol")}
	s, err := New(Config{Auth: auth, Commands: searchAppender{}, Hub: searchHub{convs: convs}, History: &searchHistory{convs: convs}, Push: push(k)})
	if err != nil {
		t.Fatal(err)
	}
	check, err := contractcheck.New()
	if err != nil {
		t.Fatal(err)
	}
	return &pushEnv{t: t, k: k, s: s, auth: auth, check: check}
}

// do runs a request as user and checks the answer against openapi.yaml.
func (e *pushEnv) do(user, method, path, body string) (int, map[string]any) {
	e.t.Helper()
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	} else {
		rd = strings.NewReader("")
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	tok, err := e.auth.Issue(user, time.Hour, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	e.s.ServeHTTP(rec, req)
	ct := rec.Header().Get("Content-Type")
	if rec.Code >= 400 && ct != "application/problem+json" {
		e.t.Errorf("%s %s: %d with Content-Type %q, want application/problem+json", method, path, rec.Code, ct)
	}
	if err := e.check.Response(method, path, rec.Code, ct, rec.Body.Bytes()); err != nil {
		e.t.Errorf("%s %s: %v", method, path, err)
	}
	var out map[string]any
	if len(bytes.TrimSpace(rec.Body.Bytes())) > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			e.t.Fatalf("%s %s: non-JSON answer %q", method, path, rec.Body.String())
		}
	}
	return rec.Code, out
}

// records returns what chat.push holds, decoded, by key.
func (e *pushEnv) records() map[string][]any {
	e.t.Helper()
	out := map[string][]any{}
	for _, m := range kafkatest.ReadAll(e.t, e.k.Cluster, e.k.Names.Topic(schemas.TopicPush)) {
		attrs, err := kafkalog.Decode(m)
		if err != nil {
			e.t.Fatal(err)
		}
		v, err := schemas.Decode(attrs.Type, m.Value)
		if err != nil {
			e.t.Fatal(err)
		}
		out[string(m.Key)] = append(out[string(m.Key)], v)
	}
	return out
}

const (
	p256dh = "BIPUL12DLfytvTajnryr2PRdAgXS3HGKiLqndGcJGabyhHheJYlNGCeXl1dn18gSJ1WAkAPIxr4gK0_dQds4yiI"
	auth16 = "FPssNDTKnInHVndSTdbKFw"
)

func webPushBody(endpoint string) string {
	return `{"provider":"webpush","subscription":{"endpoint":"` + endpoint + `","expirationTime":null,"keys":{"p256dh":"` + p256dh + `","auth":"` + auth16 + `"}},"locale":"en-GB"}`
}

// TestPushRegistrationAndSettings: a user registers and deletes their own
// devices and sets their notification settings, each one chat.push record
// keyed by the user; bad requests are problems that append nothing, and a
// non-member cannot set a conversation's notifications.
func TestPushRegistrationAndSettings(t *testing.T) {
	t.Parallel()
	e := newPushEnv(t, func(k kafkatest.Cluster) PushConfig {
		w := producers.NewPushWriter(k.Cluster, k.Names, nil)
		t.Cleanup(func() { w.Close() })
		return PushConfig{Appender: w, VAPIDPublicKey: p256dh, Providers: []string{schemas.ProviderWebPush, schemas.ProviderAPNs}, WebPushHosts: []string{"push.example.org", "googleapis.com"}}
	})

	if st, out := e.do("alice", http.MethodGet, "/v1/push/config", ""); st != 200 || out["vapid_public_key"] != p256dh || len(out["providers"].([]any)) != 2 {
		t.Errorf("push config: %d %v", st, out)
	}
	if st, out := e.do("alice", http.MethodPut, "/v1/devices/laptop-1/push", webPushBody("https://fcm.googleapis.com/fcm/send/abc")); st != 200 || out["device_id"] != "laptop-1" || out["provider"] != "webpush" {
		t.Errorf("web push registration: %d %v", st, out)
	}
	if st, out := e.do("alice", http.MethodPut, "/v1/devices/phone-1/push", `{"provider":"apns","token":"740f4707bebcf74f","locale":"de-DE"}`); st != 200 {
		t.Errorf("apns registration: %d %v", st, out)
	}
	if st, _ := e.do("alice", http.MethodDelete, "/v1/devices/phone-1/push", ""); st != http.StatusNoContent {
		t.Errorf("delete: %d", st)
	}
	if st, out := e.do("bob", http.MethodPut, "/v1/conversations/g_ab/notifications", `{"level":"mentions","muted_until":"2030-01-01T00:00:00Z"}`); st != 200 || out["level"] != "mentions" {
		t.Errorf("conversation notifications: %d %v", st, out)
	}
	if st, out := e.do("bob", http.MethodPut, "/v1/notifications", `{"hide_previews":true,"quiet_hours":{"start":"22:00","end":"07:00","time_zone":"Europe/Berlin"}}`); st != 200 || out["hide_previews"] != true {
		t.Errorf("user notifications: %d %v", st, out)
	}

	for _, c := range []struct {
		name, user, method, path, body string
		status                         int
		code                           string
	}{
		{"an unknown provider", "alice", "PUT", "/v1/devices/d1/push", `{"provider":"pigeon","token":"x"}`, 400, codeInvalidRequest},
		{"a provider not configured", "alice", "PUT", "/v1/devices/d1/push", `{"provider":"fcm","token":"x"}`, 400, codeInvalidRequest},
		{"an apns registration without a token", "alice", "PUT", "/v1/devices/d1/push", `{"provider":"apns"}`, 400, codeInvalidRequest},
		{"a web push endpoint at another host", "alice", "PUT", "/v1/devices/d1/push", webPushBody("https://169.254.169.254/latest/meta-data"), 400, codeInvalidRequest},
		{"a web push endpoint at a look-alike host", "alice", "PUT", "/v1/devices/d1/push", webPushBody("https://evilgoogleapis.com/x"), 400, codeInvalidRequest},
		{"a web push subscription with a short key", "alice", "PUT", "/v1/devices/d1/push", strings.Replace(webPushBody("https://push.example.org/x"), p256dh, "BIPUL12", 1), 400, codeInvalidRequest},
		{"a bad device id", "alice", "PUT", "/v1/devices/a%20b/push", `{"provider":"apns","token":"x"}`, 400, codeInvalidRequest},
		{"an unknown field", "alice", "PUT", "/v1/devices/d1/push", `{"provider":"apns","token":"x","user_id":"bob"}`, 400, codeBadRequest},
		{"a non-member's conversation setting", "alice", "PUT", "/v1/conversations/g_c/notifications", `{"level":"none"}`, 403, schemas.CodeNotMember},
		{"an unknown conversation", "alice", "PUT", "/v1/conversations/g_nope/notifications", `{"level":"none"}`, 404, schemas.CodeConversationNotFound},
		{"a bad level", "bob", "PUT", "/v1/conversations/g_ab/notifications", `{"level":"some"}`, 400, codeInvalidRequest},
		{"a bad time zone", "bob", "PUT", "/v1/notifications", `{"quiet_hours":{"start":"22:00","end":"07:00","time_zone":"Mars/Olympus"}}`, 400, codeInvalidRequest},
		{"a bad time of day", "bob", "PUT", "/v1/notifications", `{"quiet_hours":{"start":"25:00","end":"07:00","time_zone":"UTC"}}`, 400, codeInvalidRequest},
	} {
		if st, out := e.do(c.user, c.method, c.path, c.body); st != c.status || out["code"] != c.code {
			t.Errorf("%s: %d %v, want %d %s", c.name, st, out, c.status, c.code)
		}
	}

	recs := e.records()
	if len(recs) != 4 {
		t.Errorf("chat.push keys %v, want 4", recs)
	}
	laptop := recs["device/alice/laptop-1"]
	if len(laptop) != 1 || laptop[0].(*schemas.DeviceRegisteredV1).Subscription.Keys.Auth != auth16 {
		t.Errorf("laptop records %+v", laptop)
	}
	phone := recs["device/alice/phone-1"]
	if len(phone) != 2 || phone[0].(*schemas.DeviceRegisteredV1).Token != "740f4707bebcf74f" || phone[1].(*schemas.DeviceRemovedV1).Reason != schemas.RemovedByUser {
		t.Errorf("phone records %+v", phone)
	}
	if c := recs["conversation/bob/g_ab"]; len(c) != 1 || !c[0].(*schemas.ConversationNotificationsV1).MutedUntil.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("conversation setting records %+v", c)
	}
	if u := recs["user/bob"]; len(u) != 1 || u[0].(*schemas.UserNotificationsV1).QuietHours.TimeZone != "Europe/Berlin" {
		t.Errorf("user setting records %+v", u)
	}
}

// TestPushOff: without a writer of chat.push the endpoints answer 503
// and the config lists no provider.
func TestPushOff(t *testing.T) {
	t.Parallel()
	e := newPushEnv(t, func(kafkatest.Cluster) PushConfig { return PushConfig{} })
	if st, out := e.do("alice", http.MethodGet, "/v1/push/config", ""); st != 200 || len(out["providers"].([]any)) != 0 || out["vapid_public_key"] != nil {
		t.Errorf("push config: %d %v", st, out)
	}
	if st, out := e.do("alice", http.MethodPut, "/v1/devices/d1/push", `{"provider":"apns","token":"x"}`); st != 503 || out["code"] != codeUnavailable {
		t.Errorf("register: %d %v", st, out)
	}
}
