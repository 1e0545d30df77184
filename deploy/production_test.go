package deploy

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

// Every service of the production stack has CPU and memory limits, and a
// Go role's GOMEMLIMIT, when set, is below its container's memory limit.
func TestProductionLimitsEverywhere(t *testing.T) {
	st := stacks()[1]
	p := loadStack(t, st)
	for name, s := range p.Services {
		var lim *types.Resource
		if s.Deploy != nil {
			lim = s.Deploy.Resources.Limits
		}
		if lim == nil || lim.NanoCPUs <= 0 || lim.MemoryBytes <= 0 {
			t.Errorf("%s: no cpus and memory limits (deploy.resources.limits)", name)
			continue
		}
		if v, ok := env(s, "GOMEMLIMIT"); ok {
			n, err := goMemLimit(v)
			if err != nil {
				t.Errorf("%s: GOMEMLIMIT: %v", name, err)
			} else if n >= int64(lim.MemoryBytes) {
				t.Errorf("%s: GOMEMLIMIT %s is not below the memory limit of %d bytes", name, v, lim.MemoryBytes)
			}
		}
	}
	for name := range st.roles {
		if _, ok := env(service(t, p, name), "GOMEMLIMIT"); !ok {
			t.Errorf("%s: no GOMEMLIMIT; the Go runtime does not read the container's memory limit", name)
		}
	}
}

// goMemLimit parses the GOMEMLIMIT forms the compose files use.
func goMemLimit(v string) (int64, error) {
	for suffix, mult := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if n, ok := strings.CutSuffix(v, suffix); ok {
			i, err := strconv.ParseInt(n, 10, 64)
			return i * mult, err
		}
	}
	return strconv.ParseInt(v, 10, 64)
}

// A consumer group that must survive a crash has two members.
func TestProductionRunsTwoOfEachGroup(t *testing.T) {
	st := stacks()[1]
	loadStack(t, st) // every role in st.roles exists: TestParleyRoles
	count := map[string]int{}
	for _, cmd := range st.roles {
		count[strings.Join(cmd, " ")]++
	}
	for _, role := range []string{"decider", "router", "gateway"} {
		if count[role] < 2 {
			t.Errorf("%d %s services, want at least 2", count[role], role)
		}
	}
}

// servicesOfImage returns the names of p's services whose image is repo.
func servicesOfImage(p *types.Project, repo string) []string {
	var names []string
	for name, s := range p.Services {
		if strings.HasPrefix(s.Image, repo+":") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Three KRaft brokers form one cluster; the internal topics are replicated
// like Parley's; every broker can be reached from the compose network at
// the address the roles bootstrap from, and from the host.
func TestProductionKafkaCluster(t *testing.T) {
	p := loadStack(t, stacks()[1])
	brokers := servicesOfImage(p, "apache/kafka")
	if len(brokers) != 3 {
		t.Fatalf("kafka services %v, want 3", brokers)
	}
	wantKafka := map[string]string{
		"KAFKA_PROCESS_ROLES":                            "broker,controller",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "3",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "3",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "2",
		"KAFKA_DEFAULT_REPLICATION_FACTOR":               "3",
		"KAFKA_MIN_INSYNC_REPLICAS":                      "2",
		"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                "false",
	}
	var voters []string
	internal, hostPorts, volumes, clusterIDs := map[string]bool{}, map[string]string{}, map[string]string{}, map[string]bool{}
	for _, name := range brokers {
		s := service(t, p, name)
		for k, want := range wantKafka {
			if got, _ := env(s, k); got != want {
				t.Errorf("%s: %s=%q, want %q", name, k, got, want)
			}
		}
		id, _ := env(s, "KAFKA_NODE_ID")
		voters = append(voters, id+"@"+name+":9093")
		cid, _ := env(s, "CLUSTER_ID")
		clusterIDs[cid] = true

		advertised, _ := env(s, "KAFKA_ADVERTISED_LISTENERS")
		listeners, _ := env(s, "KAFKA_LISTENERS")
		if !strings.Contains(advertised, "PLAINTEXT://"+name+":9092") {
			t.Errorf("%s advertises %q, want PLAINTEXT://%s:9092", name, advertised, name)
		}
		internal[name+":9092"] = true
		m := regexp.MustCompile(`EXTERNAL://localhost:(\d+)`).FindStringSubmatch(advertised)
		if m == nil {
			t.Errorf("%s advertises no EXTERNAL://localhost:PORT for host clients: %q", name, advertised)
			continue
		}
		if other, dup := hostPorts[m[1]]; dup {
			t.Errorf("%s and %s both advertise localhost:%s", name, other, m[1])
		}
		hostPorts[m[1]] = name
		if !strings.Contains(listeners, "EXTERNAL://:"+m[1]) {
			t.Errorf("%s: listeners %q do not bind the advertised EXTERNAL port %s", name, listeners, m[1])
		}
		target, err := strconv.ParseUint(m[1], 10, 32)
		if err != nil {
			t.Fatal(err)
		}
		if ip, published := publishedPort(t, s, uint32(target)); ip != "127.0.0.1" || published != m[1] {
			t.Errorf("%s publishes %s:%s for its EXTERNAL port %s, want 127.0.0.1:%s", name, ip, published, m[1], m[1])
		}
		for _, v := range s.Volumes {
			if v.Target == "/var/lib/kafka/data" {
				if other, dup := volumes[v.Source]; dup {
					t.Errorf("%s and %s share the data volume %s", name, other, v.Source)
				}
				volumes[v.Source] = name
			}
		}
	}
	if len(clusterIDs) != 1 {
		t.Errorf("brokers have CLUSTER_IDs %v, want one", slices.Collect(maps.Keys(clusterIDs)))
	}
	if len(volumes) != 3 {
		t.Errorf("brokers have %d data volumes, want one each", len(volumes))
	}
	slices.Sort(voters)
	for _, name := range brokers {
		got, _ := env(service(t, p, name), "KAFKA_CONTROLLER_QUORUM_VOTERS")
		parts := strings.Split(got, ",")
		slices.Sort(parts)
		if !slices.Equal(parts, voters) {
			t.Errorf("%s: KAFKA_CONTROLLER_QUORUM_VOTERS=%q, want the node id and host of every broker %v", name, got, voters)
		}
	}
	for _, b := range strings.Split(productionEnv["PARLEY_KAFKA_BROKERS"], ",") {
		if !internal[b] {
			t.Errorf("the roles bootstrap from %s, which no broker advertises", b)
		}
	}
	if len(internal) != len(strings.Split(productionEnv["PARLEY_KAFKA_BROKERS"], ",")) {
		t.Errorf("the roles bootstrap from %s, not from every broker", productionEnv["PARLEY_KAFKA_BROKERS"])
	}
}

// Three ScyllaDB nodes form one cluster through the seed, and the history
// keyspace is replicated to all three.
func TestProductionScyllaCluster(t *testing.T) {
	p := loadStack(t, stacks()[1])
	nodes := servicesOfImage(p, "scylladb/scylla")
	if len(nodes) != 3 {
		t.Fatalf("scylla services %v, want 3", nodes)
	}
	hosts := strings.Split(productionEnv["PARLEY_SCYLLA_HOSTS"], ",")
	slices.Sort(hosts)
	if !slices.Equal(hosts, nodes) {
		t.Errorf("PARLEY_SCYLLA_HOSTS lists %v, the nodes are %v", hosts, nodes)
	}
	if want := fmt.Sprintf("=%d", len(nodes)); !strings.HasSuffix(productionEnv["PARLEY_SCYLLA_REPLICATION"], want) {
		t.Errorf("PARLEY_SCYLLA_REPLICATION=%q, want a replica on each of %d nodes", productionEnv["PARLEY_SCYLLA_REPLICATION"], len(nodes))
	}
	volumes := map[string]bool{}
	for _, name := range nodes {
		s := service(t, p, name)
		cmd := strings.Join(s.Command, " ")
		m := regexp.MustCompile(`--seeds[ =](\S+)`).FindStringSubmatch(cmd)
		if m == nil {
			t.Errorf("%s: command %q names no --seeds", name, cmd)
		} else if !slices.Contains(nodes, m[1]) {
			t.Errorf("%s: seed %q is not a scylla service", name, m[1])
		}
		if !strings.Contains(cmd, "--memory") {
			t.Errorf("%s: command %q sets no --memory; Scylla would take the host's", name, cmd)
		}
		for _, v := range s.Volumes {
			if v.Target == "/var/lib/scylla" {
				volumes[v.Source] = true
			}
		}
	}
	if len(volumes) != 3 {
		t.Errorf("scylla nodes have %d data volumes, want one each", len(volumes))
	}
}
