package embeddedkafka_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/embeddedkafka"
	"github.com/parley-chat/parley/internal/kafkalog"
)

// TestRetentionIsApplied: records older than their topic's retention.ms
// go (and with them the broker's index of them), on the broker's own
// schedule, while a topic without retention keeps everything.
func TestRetentionIsApplied(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster := startBroker(t, embeddedkafka.Config{Cleaner: 100 * time.Millisecond})
	client := kafkalog.NewClient(cluster)
	topic := func(name, retention string) kafka.TopicConfig {
		return kafka.TopicConfig{Topic: name, NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: []kafka.ConfigEntry{
			{ConfigName: "cleanup.policy", ConfigValue: "delete"},
			{ConfigName: "retention.ms", ConfigValue: retention},
		}}
	}
	createTopics(ctx, t, cluster, topic("short", "200"), topic("forever", "-1"))
	for _, name := range []string{"short", "forever"} {
		w := kafkalog.NewWriter(cluster, name)
		for i := range 10 {
			if err := w.WriteMessages(ctx, kafka.Message{Value: fmt.Appendf(nil, "record %d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	first := func(name string) int64 {
		t.Helper()
		resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{name: {kafka.FirstOffsetOf(0)}}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[name][0].FirstOffset
	}
	deadline := time.Now().Add(20 * time.Second)
	for first("short") < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("the records of a topic with 200 ms retention are still there 20 s later (first offset %d)", first("short"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := first("forever"); got != 0 {
		t.Errorf("a topic without retention starts at offset %d, want 0", got)
	}
}

// TestGroupStateLogStaysSmall: every offset commit appends to the broker's
// log of group state, which the broker rewrites in the loop that serves
// every request once it reaches a threshold. Committing several times that
// threshold, the file is rewritten well before it grows to kfake's default
// of 10 MiB (whose rewrite stalled the broker under load), and the last
// commit is still what a reader of the group finds after a restart.
func TestGroupStateLogStaysSmall(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, err := embeddedkafka.Start(embeddedkafka.Config{Dir: dir, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { b.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cluster := kafkalog.NewCluster([]string{b.Addr()})
	defer cluster.Close() // and before the restart
	client := kafkalog.NewClient(cluster)
	if _, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: "t", NumPartitions: 1, ReplicationFactor: 1}}}); err != nil {
		t.Fatal(err)
	}
	// Each commit carries 4 KiB of metadata: 1,024 of them append 4 MiB.
	metadata := strings.Repeat("m", 4<<10)
	logFile := filepath.Join(dir, "groups.log")
	largest := int64(0)
	const commits = 1024
	for i := range commits {
		resp, err := client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
			GroupID: "g", GenerationID: -1,
			Topics: map[string][]kafka.OffsetCommit{"t": {{Partition: 0, Offset: int64(i), Metadata: metadata}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := resp.Topics["t"][0].Error; err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		info, err := os.Stat(logFile)
		if err != nil {
			t.Fatal(err)
		}
		largest = max(largest, info.Size())
	}
	if largest > 2<<20 {
		t.Errorf("groups.log grew to %d bytes over %d commits of 4 KiB; want it rewritten at about 1 MiB", largest, commits)
	}
	cluster.Close()
	b.Close()
	b, err = embeddedkafka.Start(embeddedkafka.Config{Dir: dir, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	restarted := kafkalog.NewCluster([]string{b.Addr()})
	defer restarted.Close()
	client = kafkalog.NewClient(restarted)
	resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: "g", Topics: map[string][]int{"t": {0}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Topics["t"][0].CommittedOffset; got != commits-1 {
		t.Errorf("after a restart the group's offset is %d, want %d", got, commits-1)
	}
}

// TestRequestsOfEverySizeAreReadWhole: the broker reads its connections
// through a buffer. Requests smaller than it, as large, and several times
// larger (one produce of many records, records larger than the buffer
// each) all arrive whole, byte for byte, and in order.
func TestRequestsOfEverySizeAreReadWhole(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster := startBroker(t, embeddedkafka.Config{})
	createTopics(ctx, t, cluster, kafka.TopicConfig{Topic: "sizes", NumPartitions: 1, ReplicationFactor: 1})
	var want [][]byte
	record := func(size int) kafka.Message {
		v := make([]byte, size)
		for i := range v {
			v[i] = byte(len(want) + i*7)
		}
		want = append(want, v)
		return kafka.Message{Value: v}
	}
	w := kafkalog.NewWriter(cluster, "sizes")
	for _, size := range []int{1, 200, 16<<10 - 100, 16 << 10, 40 << 10, 300 << 10} {
		if err := w.WriteMessages(ctx, record(size)); err != nil {
			t.Fatalf("a record of %d bytes: %v", size, err)
		}
	}
	var many []kafka.Message
	for i := range 64 {
		many = append(many, record(500+i*100))
	}
	if err := w.WriteMessages(ctx, many...); err != nil {
		t.Fatalf("64 records in one call: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r := kafkalog.NewPartitionReader(cluster, "sizes", 0)
	defer r.Close()
	for i, v := range want {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading record %d of %d: %v", i+1, len(want), err)
		}
		if !bytes.Equal(m.Value, v) {
			t.Fatalf("record %d: %d bytes read back, want the %d written", i+1, len(m.Value), len(v))
		}
	}
}

// startBroker starts an embedded broker with cfg in a directory of the
// test's, on a free port, and returns a cluster of it; both are closed
// when the test ends.
func startBroker(t *testing.T, cfg embeddedkafka.Config) *kafkalog.Cluster {
	t.Helper()
	cfg.Dir, cfg.Addr = t.TempDir(), "127.0.0.1:0"
	b, err := embeddedkafka.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cluster := kafkalog.NewCluster([]string{b.Addr()})
	t.Cleanup(cluster.Close)
	return cluster
}

// createTopics creates topics and fails the test if any was not created.
func createTopics(ctx context.Context, t testing.TB, cluster *kafkalog.Cluster, topics ...kafka.TopicConfig) {
	t.Helper()
	resp, err := kafkalog.NewClient(cluster).CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range resp.Errors {
		if err != nil {
			t.Fatalf("creating %s: %v", name, err)
		}
	}
}

// TestOneBrokerPerDirectory: a second broker on a directory another one
// uses is refused, saying so, and the first goes on serving what it has;
// once the first is closed the directory can be taken again, with
// everything in it.
func TestOneBrokerPerDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := embeddedkafka.Start(embeddedkafka.Config{Dir: dir, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { first.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cluster := kafkalog.NewCluster([]string{first.Addr()})
	defer cluster.Close()
	createTopics(ctx, t, cluster, kafka.TopicConfig{Topic: "t", NumPartitions: 1, ReplicationFactor: 1})
	w := kafkalog.NewWriter(cluster, "t", kafkalog.FlushAtOnce())
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("one")}); err != nil {
		t.Fatal(err)
	}

	second, err := embeddedkafka.Start(embeddedkafka.Config{Dir: dir, Addr: "127.0.0.1:0"})
	if err == nil {
		second.Close()
		t.Fatal("a second broker started on a directory the first one uses")
	}
	if !strings.Contains(err.Error(), "in use by another") {
		t.Errorf("the refusal does not say the directory is in use: %v", err)
	}
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("two")}); err != nil {
		t.Fatalf("the first broker, after the second was refused: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	cluster.Close()
	first.Close()

	again, err := embeddedkafka.Start(embeddedkafka.Config{Dir: dir, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("the directory, once its broker closed: %v", err)
	}
	first = again
	restarted := kafkalog.NewCluster([]string{again.Addr()})
	defer restarted.Close()
	r := kafkalog.NewPartitionReader(restarted, "t", 0)
	defer r.Close()
	var got []string
	for len(got) < 2 {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading back after the restart, having %q: %v", got, err)
		}
		got = append(got, string(m.Value))
	}
	if got[0] != "one" || got[1] != "two" {
		t.Errorf("read back %q, want one and two", got)
	}
}

// The helper broker of TestSyncWritesSyncsEveryBatch: TestHelperBroker
// runs one when helperDir names its directory.
const (
	helperDir  = "PARLEY_TEST_HELPER_BROKER_DIR"
	helperSync = "PARLEY_TEST_HELPER_BROKER_SYNC"
)

// TestHelperBroker is not a test: run with helperDir set (by
// TestSyncWritesSyncsEveryBatch), it starts a broker over that directory,
// prints its address, and exits when its standard input closes, without
// closing the broker, as a process that is killed.
func TestHelperBroker(t *testing.T) {
	dir := os.Getenv(helperDir)
	if dir == "" {
		return
	}
	b, err := embeddedkafka.Start(embeddedkafka.Config{Dir: dir, Addr: "127.0.0.1:0", SyncWrites: os.Getenv(helperSync) == "true"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(b.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// TestSyncWritesSyncsEveryBatch: with SyncWrites the broker syncs a
// partition's log to disk for every batch it acknowledges; without, it
// syncs none of them, leaving them to the operating system. The broker
// runs in a child process under strace, which records every fsync and
// fdatasync with the path of the file it syncs.
func TestSyncWritesSyncsEveryBatch(t *testing.T) {
	t.Parallel()
	const batches = 5
	for _, sync := range []bool{true, false} {
		t.Run(fmt.Sprint("SyncWrites=", sync), func(t *testing.T) {
			dir, trace := t.TempDir(), filepath.Join(t.TempDir(), "trace")
			cmd := exec.Command("strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o", trace, os.Args[0], "-test.run=^TestHelperBroker$")
			cmd.Env = append(os.Environ(), helperDir+"="+dir, helperSync+"="+strconv.FormatBool(sync))
			cmd.Stderr = os.Stderr
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatalf("running the broker under strace (the test needs strace): %v", err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			addr, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil {
				t.Fatalf("the helper broker printed no address: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cluster := kafkalog.NewCluster([]string{strings.TrimSpace(addr)})
			defer cluster.Close()
			createTopics(ctx, t, cluster, kafka.TopicConfig{Topic: "t", NumPartitions: 1, ReplicationFactor: 1})
			w := kafkalog.NewWriter(cluster, "t", kafkalog.FlushAtOnce())
			for i := range batches {
				if err := w.WriteMessages(ctx, kafka.Message{Value: fmt.Appendf(nil, "record %d", i)}); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := stdin.Close(); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("the helper broker: %v", err)
			}
			raw, err := os.ReadFile(trace)
			if err != nil {
				t.Fatal(err)
			}
			segment := 0
			for _, line := range strings.Split(string(raw), "\n") {
				if strings.Contains(line, filepath.Join(dir, "partitions", "t-0")) && strings.Contains(line, ".dat>") {
					segment++
				}
			}
			if sync && segment < batches {
				t.Errorf("%d syncs of the partition's segment for %d batches acknowledged, want one each at least; the trace:\n%s", segment, batches, raw)
			}
			if !sync && segment != 0 {
				t.Errorf("%d syncs of the partition's segment without SyncWrites, want none; the trace:\n%s", segment, raw)
			}
		})
	}
}

// TestClientsOfTheProcessDialItsLocalSocket: the clients of the process
// that runs the broker — writers, group readers, partition readers,
// admin clients — reach it through Broker.Dial, every connection over
// the broker's local socket (on Linux), while a client of another
// process reaches the same broker, and reads the same records, over the
// TCP address it advertises. Once the broker is closed its local socket
// is gone.
func TestClientsOfTheProcessDialItsLocalSocket(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := embeddedkafka.Start(embeddedkafka.Config{Dir: t.TempDir(), Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	closeBroker := sync.OnceFunc(b.Close)
	defer closeBroker()
	var (
		mu       sync.Mutex
		networks = map[string]int{}
	)
	local := kafkalog.NewCluster([]string{b.Addr()}, kafkalog.DialWith(func(ctx context.Context, network, address string) (net.Conn, error) {
		c, err := b.Dial(ctx, network, address)
		if err == nil {
			mu.Lock()
			networks[c.RemoteAddr().Network()]++
			mu.Unlock()
		}
		return c, err
	}))
	defer local.Close()
	createTopics(ctx, t, local, kafka.TopicConfig{Topic: "t", NumPartitions: 2, ReplicationFactor: 1})
	w := kafkalog.NewWriter(local, "t")
	for i := range 10 {
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte{byte(i)}, Value: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	g := kafkalog.NewGroupReader(local, kafkalog.Membership{Group: "g", Topics: []string{"t"}, StartOffset: kafka.FirstOffset})
	read := map[string]bool{}
	for len(read) < 10 {
		m, err := g.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("the group read %d of 10 records: %v", len(read), err)
		}
		read[string(m.Value)] = true
		if err := g.CommitMessages(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	want := "unix"
	if runtime.GOOS != "linux" {
		want = "tcp"
	}
	mu.Lock()
	if networks[want] < 3 || len(networks) != 1 {
		t.Errorf("the process's clients connected %v; want every connection (a writer, an admin client, a group's, at least 3) over %s", networks, want)
	}
	mu.Unlock()

	// Another process's client: TCP, the address the broker advertises.
	remote := kafkalog.NewCluster([]string{b.Addr()})
	defer remote.Close()
	ends, err := kafkalog.NewClient(remote).ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{"t": {kafka.LastOffsetOf(0), kafka.LastOffsetOf(1)}},
	})
	if err != nil {
		t.Fatalf("the partitions' ends over TCP: %v", err)
	}
	for _, end := range ends.Topics["t"] {
		if end.Error != nil {
			t.Fatalf("partition %d's end over TCP: %v", end.Partition, end.Error)
		}
		r := kafkalog.NewPartitionReader(remote, "t", end.Partition)
		for range end.LastOffset {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("partition %d over TCP: %v", end.Partition, err)
			}
			delete(read, string(m.Value))
		}
		_ = r.Close()
	}
	if len(read) != 0 {
		t.Errorf("records %v were read in the process and not over TCP", read)
	}

	closeBroker()
	if c, err := b.Dial(ctx, "tcp", b.Addr()); err == nil {
		_ = c.Close()
		t.Error("the closed broker's local socket still accepts")
	}
}
