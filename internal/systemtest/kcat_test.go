package systemtest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/schemas"
)

// TestKcatReadsTheLog checks what the README promises analytics teams: a
// standard Kafka client (kcat, on librdkafka) reads chat.events from the
// embedded broker with the CloudEvents headers, and its murmur2
// partitioner puts a conversation's key where Parley puts it.
func TestKcatReadsTheLog(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kcat is not installed; .ci/run installs it")
		}
		t.Skip("kcat not installed (apt-get install kcat); CI runs this test")
	}
	sys := startSystem(t, t.TempDir())
	defer stopSystem(t, sys)
	alice := api{t, sys.HTTPAddr(), token(t, "alice", time.Hour)}
	conv := alice.createDirect("bob")
	for i := range 5 {
		alice.send(conv, "k"+string(rune('a'+i)))
	}
	broker := sys.Kafka().Brokers()[0]

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcat, "-C", "-b", broker, "-t", schemas.TopicEvents, "-o", "beginning", "-e", "-J", "-q").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	type envelope struct {
		Partition int      `json:"partition"`
		Key       string   `json:"key"`
		Payload   string   `json:"payload"`
		Headers   []string `json:"headers"`
	}
	var seqs []int
	partition := -1
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e envelope
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("kcat line %q: %v", sc.Text(), err)
		}
		h := map[string]string{}
		for i := 0; i+1 < len(e.Headers); i += 2 {
			h[e.Headers[i]] = e.Headers[i+1]
		}
		if e.Key != conv || h[schemas.HeaderSubject] != conv || h[schemas.HeaderSpecVersion] != "1.0" || !strings.HasPrefix(h[schemas.HeaderType], "chat.") {
			t.Errorf("record key %q headers %v", e.Key, h)
		}
		var data struct{ Seq int }
		if err := json.Unmarshal([]byte(e.Payload), &data); err != nil {
			t.Errorf("payload %q: %v", e.Payload, err)
		}
		seqs = append(seqs, data.Seq)
		partition = e.Partition
	}
	if len(seqs) != 6 {
		t.Fatalf("kcat read %d events (%v), want 6", len(seqs), seqs)
	}
	for i, s := range seqs {
		if s != i {
			t.Errorf("kcat read seqs %v, want 0..5 in order", seqs)
			break
		}
	}

	// kcat's murmur2 partitioner (Kafka's Java default) agrees with ours.
	n, err := kafkalog.Partitions(ctx, kafkalog.NewClient(sys.Kafka()), schemas.TopicEvents)
	if err != nil {
		t.Fatal(err)
	}
	parts := make([]int, n)
	for i := range parts {
		parts[i] = i
	}
	if want := (kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(conv)}, parts...); partition != want {
		t.Errorf("events of %s are in partition %d, murmur2 says %d", conv, partition, want)
	}
	const probe = "analytics-probe"
	cmd := exec.CommandContext(ctx, kcat, "-P", "-b", broker, "-t", schemas.TopicDLQ, "-K", ":", "-X", "topic.partitioner=murmur2_random")
	cmd.Stdin = strings.NewReader(conv + ":" + probe + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v: %s", err, out)
	}
	found := false
	for _, m := range kafkatest.ReadAll(t, sys.Kafka(), schemas.TopicDLQ) {
		if string(m.Value) == probe {
			found = true
			if m.Partition != partition {
				t.Errorf("kcat put key %s in partition %d, Parley in %d", conv, m.Partition, partition)
			}
		}
	}
	if !found {
		t.Error("the record kcat produced was not found")
	}
}
