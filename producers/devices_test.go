package producers_test

import (
	"slices"
	"testing"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/schemas"
	"github.com/parley-chat/parley/schemas/schemacheck"
)

// TestDeviceWriter: each change is one CloudEvents record of
// chat.devices, keyed by the user in the user's murmur2 partition, and
// valid against its type.
func TestDeviceWriter(t *testing.T) {
	t.Parallel()
	const partitions = 12
	k := kafkatest.Start(t)
	ctx := testContext(t)
	if err := kafkalog.Provision(ctx, k.Client(), k.Topology(kafkalog.Topology{Partitions: partitions})); err != nil {
		t.Fatal(err)
	}
	dw := producers.NewDeviceWriter(k.Cluster, k.Names, slogDiscard())
	defer dw.Close()
	for _, c := range []struct {
		user, device string
		version      uint64
		added        bool
	}{{"alice", "phone", 1, true}, {"alice", "laptop", 2, true}, {"bob", "tab", 1, true}, {"alice", "phone", 3, false}} {
		if err := dw.Append(ctx, c.user, c.device, c.version, c.added); err != nil {
			t.Fatal(err)
		}
	}
	check, err := schemacheck.New()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range readAll(t, k.Cluster, k.Names.Topic(schemas.TopicDevices), partitions) {
		a, err := kafkalog.Decode(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := check.Validate(a.Type, m.Value); err != nil {
			t.Errorf("%s: %v", a.Type, err)
		}
		v, err := schemas.Decode(a.Type, m.Value)
		if err != nil {
			t.Fatal(err)
		}
		e := v.(*schemas.DeviceChangedV1)
		if string(m.Key) != e.UserID || a.Subject != e.UserID || m.Partition != javaPartition(e.UserID, partitions) {
			t.Errorf("%s: key %s subject %s partition %d", e.UserID, m.Key, a.Subject, m.Partition)
		}
		got = append(got, a.Type+" "+e.UserID+"/"+e.DeviceID+" "+string(rune('0'+e.Version)))
	}
	slices.Sort(got)
	want := []string{
		"chat.device.added.v1 alice/laptop 2", "chat.device.added.v1 alice/phone 1", "chat.device.added.v1 bob/tab 1",
		"chat.device.removed.v1 alice/phone 3",
	}
	if !slices.Equal(got, want) {
		t.Errorf("records %v, want %v", got, want)
	}
}
