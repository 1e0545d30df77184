package decider

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/parley-chat/parley/schemas"
)

// BenchmarkStore_CommandLookup looks up command ids in a partition store
// on disk that holds a million answered commands, as a decider's store
// does once it has rebuilt a busy partition: every new command is a miss
// (its id was never answered), a retried one a hit. The block cache
// (storeCacheBytes) is shared by the partitions and smaller than such a
// store.
func BenchmarkStore_CommandLookup(b *testing.B) {
	const (
		conversations = 10_000
		answered      = 1_000_000
	)
	st, err := OpenStore(b.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ps, err := st.partition(0)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	conv := func(i int) string { return schemas.DirectConversationID(fmt.Sprint("u", i), fmt.Sprint("v", i)) }
	id := func() string { return fmt.Sprintf("%016x", r.Uint64()) }
	type answer struct{ conv, id string }
	sample := make([]answer, 0, 4096)
	for i := range answered {
		a := answer{conv(r.IntN(conversations)), id()}
		if err := ps.putCommand(a.conv, "u", a.id, uint64(i)); err != nil {
			b.Fatal(err)
		}
		if len(sample) < cap(sample) && r.IntN(answered/cap(sample)) == 0 {
			sample = append(sample, a)
		}
	}
	// Compacted to its bottom level, so that no compaction runs while
	// it is measured.
	if err := st.db.Compact(b.Context(), []byte{0}, []byte{0xff}, true); err != nil {
		b.Fatal(err)
	}
	b.Run("miss", func(b *testing.B) {
		misses := make([]answer, 4096)
		for i := range misses {
			misses[i] = answer{conv(r.IntN(conversations)), id()}
		}
		b.ResetTimer()
		for i := range b.N {
			a := misses[i%len(misses)]
			if _, ok, err := ps.command(a.conv, "u", a.id); err != nil || ok {
				b.Fatalf("%v: found %v, err %v", a, ok, err)
			}
		}
	})
	b.Run("hit", func(b *testing.B) {
		for i := range b.N {
			a := sample[i%len(sample)]
			if _, ok, err := ps.command(a.conv, "u", a.id); err != nil || !ok {
				b.Fatalf("%v: found %v, err %v", a, ok, err)
			}
		}
	})
}
