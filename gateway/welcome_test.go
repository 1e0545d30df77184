package gateway

import (
	"bytes"
	"encoding/json"
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
