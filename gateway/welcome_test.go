package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/projections/delivery"
	"github.com/parley-chat/parley/schemas"
	"github.com/parley-chat/parley/schemas/contractcheck"
)

func TestWelcomeReachesOnlyTheDevicesItAdds(t *testing.T) {
	t.Parallel()
	check, err := contractcheck.New()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	data, err := json.Marshal(schemas.MLSCommittedV1{
		ConversationID: "g_e", Seq: 4, UserID: "alice", DeviceID: "phone", Epoch: 2, Commit: []byte("commit"), Welcome: []byte("welcome"),
		AddedDevices: []schemas.DeviceRef{{UserID: "bob", DeviceID: "laptop"}}, CommandID: "c", CommittedAt: at,
	})
	if err != nil {
		t.Fatal(err)
	}
	frame := delivery.EncodeEvent("g_e", 4, schemas.TypeMLSCommitted, "ev1", at, data)
	welcome := []byte(`"welcome":`)
	for _, c := range []struct {
		user, device string
		keeps        bool
	}{
		{"bob", "laptop", true},
		{"bob", "phone", false},
		{"carol", "laptop", false},
		{"alice", "phone", false},
		{"bob", "", false},
	} {
		got := withoutForeignWelcome(frame, c.user, c.device)
		if bytes.Contains(got, welcome) != c.keeps {
			t.Errorf("%s/%s: welcome kept %v, want %v: %s", c.user, c.device, !c.keeps, c.keeps, got)
		}
		if err := check.ServerFrame(got); err != nil {
			t.Errorf("%s/%s: %v", c.user, c.device, err)
		}
		if !c.keeps && !bytes.Contains(got, []byte(`"commit":"Y29tbWl0"`)) {
			t.Errorf("%s/%s: the commit itself was lost: %s", c.user, c.device, got)
		}
	}
	// Other frames pass untouched, unparsed.
	other := delivery.EncodeEvent("g_e", 5, schemas.TypeMLSMessageSent, "ev2", at, []byte(`{"welcome":"x"}`))
	if got := withoutForeignWelcome(other, "bob", "phone"); !bytes.Equal(got, other) {
		t.Errorf("a message frame changed: %s", got)
	}
}

// TestSSEStreamsRouteWelcomesToo: a Server-Sent Events stream is a
// device's, as a socket is.
func TestSSEStreamsRouteWelcomesToo(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	data, err := json.Marshal(schemas.MLSCommittedV1{
		ConversationID: "g_e", Seq: 4, UserID: "alice", DeviceID: "phone", Epoch: 2, Commit: []byte("commit"), Welcome: []byte("welcome"),
		AddedDevices: []schemas.DeviceRef{{UserID: "bob", DeviceID: "laptop"}}, CommandID: "c", CommittedAt: at,
	})
	if err != nil {
		t.Fatal(err)
	}
	frame := delivery.EncodeEvent("g_e", 4, schemas.TypeMLSCommitted, "ev1", at, data)
	for device, keeps := range map[string]bool{"laptop": true, "tablet": false} {
		rec := httptest.NewRecorder()
		st := &stream{s: &Server{cfg: Config{WriteTimeout: time.Second}}, w: rec, rc: http.NewResponseController(rec), cur: newCursor(8, nil), user: "bob", device: device}
		if err := st.Write(context.Background(), frame); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(rec.Body.String(), `"welcome":`); got != keeps {
			t.Errorf("device %s: welcome in the stream %v, want %v:\n%s", device, got, keeps, rec.Body.String())
		}
	}
}
