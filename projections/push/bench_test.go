package push_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/cputime"
	"github.com/parley-chat/parley/projections/push"
	"github.com/parley-chat/parley/schemas"
)

// BenchmarkApply_Group10 applies messages to 100 groups of 10, in
// batches of 20 as the consumer group hands them over at a few thousand
// messages a second: with no member's device registered (web clients,
// the load generator's users), and with one device per group.
func BenchmarkApply_Group10(b *testing.B) {
	for _, withDevice := range []bool{false, true} {
		b.Run(fmt.Sprintf("devices=%v", withDevice), func(b *testing.B) {
			store, err := push.OpenStore(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = store.Close() })
			at := time.Now().UTC()
			const groups, size, batch = 100, 10, 20
			var regs []*schemas.DeviceRegisteredV1
			var created []push.Item
			for g := range groups {
				members := make([]schemas.Member, size)
				for i := range members {
					members[i] = schemas.Member{UserID: fmt.Sprintf("u%d-%d", g, i), Role: schemas.RoleMember}
				}
				conv := fmt.Sprintf("g%d", g)
				created = append(created, push.Item{Type: schemas.TypeConversationCreated, Time: at, Value: &schemas.ConversationCreatedV1{
					ConversationID: conv, Kind: schemas.KindGroup, Title: "t", CreatedBy: members[0].UserID, Members: members, CommandID: "c-" + conv, CreatedAt: at}})
				if withDevice {
					regs = append(regs, &schemas.DeviceRegisteredV1{UserID: members[size-1].UserID, DeviceID: "phone", Provider: schemas.ProviderFCM, Token: "t", RegisteredAt: at})
				}
			}
			pr := push.ProjectionWithDevices(store, regs...)
			if err := pr.Apply(b.Context(), created); err != nil {
				b.Fatal(err)
			}
			seqs := make([]uint64, groups)
			items := make([]push.Item, batch)
			n := 0
			cpu0, err := cputime.Process()
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				for i := range items {
					g := n % groups
					seqs[g]++
					conv := fmt.Sprintf("g%d", g)
					items[i] = push.Item{Type: schemas.TypeMessageSentV3, Time: at, Value: &schemas.MessageSentV3{
						ConversationID: conv, Seq: seqs[g], SenderID: fmt.Sprintf("u%d-%d", g, n%(size-1)), Body: "hello there", CommandID: fmt.Sprint("m", n), SentAt: at}}
					n++
				}
				if err := pr.Apply(b.Context(), items); err != nil {
					b.Fatal(err)
				}
			}
			// The commits are synced: the wall time is mostly the disk's.
			cpu, err := cputime.Process()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64((cpu-cpu0).Nanoseconds())/float64(n), "cpu-ns/message")
		})
	}
}
