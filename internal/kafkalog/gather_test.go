package kafkalog_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
)

// TestGatherFetchesFewerTimes: two groups read the same trickle of
// records, appended one at a time once both follow the topic; the one
// that lets the broker gather them gets every record in far fewer
// fetches than the one that asks for each as soon as it is there, and
// neither reader times out.
func TestGatherFetchesFewerTimes(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 1}))
	topic := k.Names.Topic("chat.events")
	const n = 150
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	type result struct {
		fetches int64
		errs    int64
	}
	var following sync.WaitGroup
	following.Add(2)
	read := func(group string, g kafkalog.Gather) result {
		var errs counter
		r := kafkalog.NewGroupReader(k.Cluster, kafkalog.Membership{Group: k.Names.Group(group), Topics: []string{topic},
			SessionTimeout: 6 * time.Second, Logger: slog.New(slog.DiscardHandler), Errors: &errs, Gather: g})
		defer r.Close()
		joined := sync.OnceFunc(following.Done)
		defer joined() // also when the reader fails first
		for i := range n + 1 {
			if i == 1 {
				r.Stats() // counts from here on: the trickle
				joined()
			}
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Errorf("%s: record %d: %v", group, i, err)
				return result{}
			}
			if want := fmt.Sprint(i); string(m.Value) != want {
				t.Errorf("%s: record %d is %q", group, i, m.Value)
			}
		}
		return result{r.Stats().Fetches, errs.n.Load()}
	}
	var wg sync.WaitGroup
	var plain, gathered result
	wg.Go(func() { plain = read("plain", kafkalog.Gather{}) })
	wg.Go(func() { gathered = read("gathered", kafkalog.Gather{Bytes: 64 << 10, Wait: 250 * time.Millisecond}) })

	w := kafkalog.NewWriter(k.Cluster, topic)
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("c"), Value: []byte("0")}); err != nil {
		t.Fatal(err)
	}
	following.Wait() // both readers have joined and read the first record
	for i := 1; i <= n; i++ {
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("c"), Value: fmt.Append(nil, i)}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	t.Logf("fetches: %d asking for each record, %d gathering", plain.fetches, gathered.fetches)
	if gathered.fetches*3 > plain.fetches {
		t.Errorf("gathering took %d fetches, asking for each record %d: want far fewer", gathered.fetches, plain.fetches)
	}
	if plain.errs != 0 || gathered.errs != 0 {
		t.Errorf("reader errors: %d plain, %d gathering; want none", plain.errs, gathered.errs)
	}
}
