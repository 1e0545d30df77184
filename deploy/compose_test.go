package deploy

import (
	"context"
	"encoding/json"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"
)

// parleyRoles is every Parley process in docker-compose.yml and the command
// (arguments to the /parley entrypoint) it must run.
var parleyRoles = map[string][]string{
	"decider":  {"decider"},
	"history":  {"project", "history"},
	"search":   {"project", "search"},
	"files":    {"project", "files"},
	"push":     {"project", "push"},
	"router":   {"router"},
	"gateway1": {"gateway"},
	"gateway2": {"gateway"},
}

// infraServices are the non-Parley services the stack must have.
var infraServices = []string{"kafka", "scylla", "elasticsearch", "s3", "lb", "prometheus", "grafana"}

// backends are the services every Parley role needs before it can start.
var backends = []string{"kafka", "scylla", "elasticsearch"}

// productionRoles is every Parley process once the production overlay is
// merged in: the base file's and a second decider and router.
func productionRoles() map[string][]string {
	roles := maps.Clone(parleyRoles)
	roles["decider2"] = []string{"decider"}
	roles["router2"] = []string{"router"}
	return roles
}

// productionFile is the production overlay, relative to the repo root.
const productionFile = "deploy/docker-compose.production.yml"

// stack is one way of running the compose files: the files in order and
// the Parley roles they define.
type stack struct {
	name  string
	files []string
	roles map[string][]string
}

func stacks() []stack {
	return []stack{
		{"dev", []string{"docker-compose.yml"}, parleyRoles},
		{"production", []string{"docker-compose.yml", productionFile}, productionRoles()},
	}
}

// productionEnv is what the production overlay changes in every role's
// environment: three brokers and ScyllaDB nodes, and replication.
var productionEnv = map[string]string{
	"PARLEY_KAFKA_BROKERS":       "kafka:9092,kafka2:9092,kafka3:9092",
	"PARLEY_SCYLLA_HOSTS":        "scylla,scylla2,scylla3",
	"PARLEY_REPLICATION_FACTOR":  "3",
	"PARLEY_MIN_INSYNC_REPLICAS": "2",
	"PARLEY_SCYLLA_REPLICATION":  "class=NetworkTopologyStrategy,datacenter1=3",
	"PARLEY_SCYLLA_LOCAL_DC":     "datacenter1",
}

// roleEnv is the environment every role of st must have.
func (st stack) roleEnv() map[string]string {
	e := maps.Clone(roleEnv)
	e["PARLEY_JWT_SECRET"] = dotEnv["PARLEY_JWT_SECRET"]
	if st.name == "production" {
		maps.Copy(e, productionEnv)
	}
	return e
}

// backends are the engine services every role of st waits for.
func (st stack) backends() []string {
	if st.name == "production" {
		return append(slices.Clone(backends), "kafka2", "kafka3", "scylla2", "scylla3")
	}
	return backends
}

// dotEnv is what an operator's .env provides (see .env.example): the
// compose files refuse to load without the two secrets.
var dotEnv = map[string]string{
	"PARLEY_JWT_SECRET":      "4f1c2a9e8b7d6c5f4e3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e",
	"GRAFANA_ADMIN_PASSWORD": "test-grafana-password",
	"PARLEY_S3_ACCESS_KEY":   "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
	"PARLEY_S3_SECRET_KEY":   "8e7d6c5b4a3928170f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978",
}

// roleEnv is the environment every Parley role must have, with the values
// that point it at the compose network's engines.
var roleEnv = map[string]string{
	"PARLEY_KAFKA_BROKERS":     "kafka:9092",
	"PARLEY_SCYLLA_HOSTS":      "scylla",
	"PARLEY_ELASTICSEARCH_URL": "http://elasticsearch:9200",
	"PARLEY_HTTP_ADDR":         ":8080",
	"PARLEY_PARTITIONS":        "12",
	"PARLEY_LOG_FORMAT":        "json",
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// loadFiles loads the compose files (relative to the repo root, merged in
// order) the way `docker compose -f … -f …` does: interpolation, schema
// validation, normalization and the consistency check (depends_on, volumes
// and networks refer to things that exist) all on. env is the whole
// environment: nothing comes from the process or from a .env file, so
// ${VAR:-default} takes the defaults unless env sets VAR.
func loadFiles(t *testing.T, env map[string]string, files ...string) (*types.Project, error) {
	t.Helper()
	root := repoRoot(t)
	var paths, environ []string
	for _, f := range files {
		paths = append(paths, filepath.Join(root, f))
	}
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	opts, err := cli.NewProjectOptions(
		paths,
		cli.WithEnv(environ),
		cli.WithWorkingDirectory(root),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
		cli.WithLoadOptions(func(o *loader.Options) {
			o.SkipValidation = false
			o.SkipConsistencyCheck = false
		}),
	)
	if err != nil {
		t.Fatalf("project options: %v", err)
	}
	return opts.LoadProject(context.Background())
}

// loadStack loads st's files with the environment of dotEnv plus extra.
func loadStack(t *testing.T, st stack, extra ...string) *types.Project {
	t.Helper()
	env := maps.Clone(dotEnv)
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	p, err := loadFiles(t, env, st.files...)
	if err != nil {
		t.Fatalf("%s does not load: %v", strings.Join(st.files, " + "), err)
	}
	return p
}

// loadProject loads docker-compose.yml with an operator's .env.
func loadProject(t *testing.T) *types.Project {
	t.Helper()
	return loadStack(t, stacks()[0])
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("service %q missing from docker-compose.yml", name)
	}
	return s
}

func env(s types.ServiceConfig, key string) (string, bool) {
	v, ok := s.Environment[key]
	if !ok || v == nil {
		return "", false
	}
	return *v, true
}

// httpPort is the port every Parley role serves /healthz, /readyz and
// /metrics on.
func httpPort(t *testing.T) string {
	t.Helper()
	_, port, err := net.SplitHostPort(roleEnv["PARLEY_HTTP_ADDR"])
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// publishedPort returns the host IP and port that service publishes for
// container port target.
func publishedPort(t *testing.T, s types.ServiceConfig, target uint32) (hostIP, published string) {
	t.Helper()
	for _, p := range s.Ports {
		if p.Target == target {
			return p.HostIP, p.Published
		}
	}
	t.Fatalf("service %s does not publish container port %d", s.Name, target)
	return "", ""
}

// readConfig returns the file with # comments removed, so a commented-out
// directive does not satisfy an assertion.
func readConfig(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if j := strings.Index(l, "#"); j >= 0 {
			lines[i] = l[:j]
		}
	}
	return strings.Join(lines, "\n")
}

func TestComposeFileIsCurrentSpec(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["version"]; ok {
		t.Error("docker-compose.yml has a top-level version: key; the Compose spec has none")
	}
}

func TestServicesExist(t *testing.T) {
	p := loadProject(t)
	for _, name := range infraServices {
		service(t, p, name)
	}
	for name := range parleyRoles {
		service(t, p, name)
	}
	// A new service built from the repo is a new Parley role: it needs an
	// entry in parleyRoles (and so the env/depends_on checks), a scrape
	// target and, for a gateway, a place in the load balancer.
	for name, s := range p.Services {
		if s.Build != nil {
			if _, ok := parleyRoles[name]; !ok {
				t.Errorf("service %s builds the Parley image but is not a known role; add it to parleyRoles", name)
			}
		}
	}
}

func TestParleyRoles(t *testing.T) {
	for _, st := range stacks() {
		t.Run(st.name, func(t *testing.T) { checkParleyRoles(t, st) })
	}
}

func checkParleyRoles(t *testing.T, st stack) {
	p := loadStack(t, st)
	root := repoRoot(t)
	images := map[string]bool{}
	nodeIDs := map[string]string{}
	wantEnv := st.roleEnv()
	for name, want := range st.roles {
		s := service(t, p, name)

		if s.Build == nil {
			t.Errorf("%s: no build section; every role is built from the repo's Dockerfile", name)
		} else {
			if s.Build.Context != root {
				t.Errorf("%s: build context %q, want the repo root %q", name, s.Build.Context, root)
			}
			df := s.Build.Dockerfile
			if !filepath.IsAbs(df) {
				df = filepath.Join(s.Build.Context, df)
			}
			if df != filepath.Join(root, "Dockerfile") {
				t.Errorf("%s: dockerfile %q, want %q", name, df, filepath.Join(root, "Dockerfile"))
			}
			if _, err := os.Stat(df); err != nil {
				t.Errorf("%s: dockerfile: %v", name, err)
			}
		}
		images[s.Image] = true

		if !slices.Equal(s.Command, want) {
			t.Errorf("%s: command %q, want %q", name, s.Command, want)
		}
		if s.Entrypoint != nil {
			t.Errorf("%s: overrides the image entrypoint (%q); the role is the command", name, s.Entrypoint)
		}
		if s.Restart != types.RestartPolicyUnlessStopped {
			t.Errorf("%s: restart %q, want %q", name, s.Restart, types.RestartPolicyUnlessStopped)
		}

		for key, wantVal := range wantEnv {
			got, ok := env(s, key)
			switch {
			case !ok:
				t.Errorf("%s: environment lacks %s", name, key)
			case got != wantVal:
				t.Errorf("%s: %s=%q, want %q", name, key, got, wantVal)
			}
		}
		if id, _ := env(s, "PARLEY_NODE_ID"); id != name {
			t.Errorf("%s: PARLEY_NODE_ID=%q, want the service name", name, id)
		} else if other, dup := nodeIDs[id]; dup {
			t.Errorf("%s and %s share PARLEY_NODE_ID %q", name, other, id)
		} else {
			nodeIDs[id] = name
		}

		for _, b := range st.backends() {
			dep, ok := s.DependsOn[b]
			if !ok {
				t.Errorf("%s: does not depend on %s", name, b)
				continue
			}
			if dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s: depends_on %s condition %q, want %q", name, b, dep.Condition, types.ServiceConditionHealthy)
			}
		}

		checkRoleHealthcheck(t, name, s.HealthCheck)
	}
	if len(images) != 1 {
		t.Errorf("roles use %d different image names %v; one name lets Compose build the image once", len(images), images)
	}
	// A new service built from the repo is a new Parley role: it needs an
	// entry in the stack's roles (and so the env/depends_on checks).
	for name, s := range p.Services {
		if _, ok := st.roles[name]; s.Build != nil && !ok {
			t.Errorf("service %s builds the Parley image but is not a known role", name)
		}
	}
}

// healthcheckTimeout is `parley healthcheck`'s own default -timeout: the
// compose timeout must leave it room to report why.
const healthcheckTimeout = 3 * time.Second

// checkRoleHealthcheck checks a role asks its own /readyz with the binary
// (the image is distroless: no shell for CMD-SHELL, no curl) on a
// schedule that can tell a slow start from a dead role.
func checkRoleHealthcheck(t *testing.T, name string, hc *types.HealthCheckConfig) {
	t.Helper()
	if hc == nil || hc.Disable {
		t.Errorf("%s: no healthcheck", name)
		return
	}
	if want := []string{"CMD", "/parley", "healthcheck"}; !slices.Equal(hc.Test, want) {
		t.Errorf("%s: healthcheck test %q, want %q", name, hc.Test, want)
	}
	dur := func(d *types.Duration) time.Duration {
		if d == nil {
			return 0
		}
		return time.Duration(*d)
	}
	interval, timeout, start := dur(hc.Interval), dur(hc.Timeout), dur(hc.StartPeriod)
	if interval < 5*time.Second || interval > time.Minute {
		t.Errorf("%s: healthcheck interval %v, want 5s..1m", name, interval)
	}
	if timeout <= healthcheckTimeout || timeout >= interval {
		t.Errorf("%s: healthcheck timeout %v, want above the command's %v and below the interval %v", name, timeout, healthcheckTimeout, interval)
	}
	if hc.Retries == nil || *hc.Retries < 2 || *hc.Retries > 10 {
		t.Errorf("%s: healthcheck retries %v, want 2..10", name, hc.Retries)
	}
	if start < 30*time.Second {
		t.Errorf("%s: healthcheck start_period %v, want at least 30s for topic creation and store start-up", name, start)
	}
}

// service_healthy on a service without a healthcheck never becomes true, so
// `docker compose up` fails; check every such dependency has one.
func TestHealthyDependenciesHaveHealthchecks(t *testing.T) {
	for _, st := range stacks() {
		t.Run(st.name, func(t *testing.T) { checkHealthyDependencies(t, st) })
	}
}

func checkHealthyDependencies(t *testing.T, st stack) {
	p := loadStack(t, st)
	for name, s := range p.Services {
		for dep, cfg := range s.DependsOn {
			if cfg.Condition != types.ServiceConditionHealthy {
				continue
			}
			target := service(t, p, dep)
			hc := target.HealthCheck
			if hc == nil || hc.Disable || len(hc.Test) == 0 || hc.Test[0] == "NONE" {
				t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			}
		}
	}
	for _, b := range st.backends() {
		if hc := service(t, p, b).HealthCheck; hc == nil || len(hc.Test) < 2 {
			t.Errorf("%s: no usable healthcheck", b)
		}
	}
}

// Compose creates a missing bind-mount source as an empty directory, so a
// typo in a path starts HAProxy or Prometheus with a directory where a config
// file should be. Every bind mount must name a path inside the repo that
// exists.
func TestBindMountsExist(t *testing.T) {
	for _, st := range stacks() {
		t.Run(st.name, func(t *testing.T) { checkBindMounts(t, st) })
	}
}

func checkBindMounts(t *testing.T, st stack) {
	p := loadStack(t, st)
	root := repoRoot(t)
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			rel, err := filepath.Rel(root, v.Source)
			if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				t.Errorf("%s: bind mount %s is outside the repo", name, v.Source)
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s: bind mount source %s: %v", name, rel, err)
			}
			if !v.ReadOnly {
				t.Errorf("%s: bind mount %s is writable; config mounts should be :ro", name, rel)
			}
		}
	}

	lb := service(t, p, "lb")
	want := filepath.Join(root, "deploy", "haproxy.cfg")
	found := false
	for _, v := range lb.Volumes {
		if v.Type == types.VolumeTypeBind && v.Source == want {
			found = true
			if v.Target != haproxyConfigTarget {
				t.Errorf("lb: haproxy.cfg mounted at %s, want %s", v.Target, haproxyConfigTarget)
			}
			if fi, err := os.Stat(v.Source); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("lb: %s is not a regular file (%v)", v.Source, err)
			}
		}
	}
	if !found {
		t.Errorf("lb does not mount %s", want)
	}
}

// The host-side ports must be loopback-only (the dev engines run without
// authentication) and must agree with what Kafka advertises and with what
// test-compose.sh points the tests at.
func TestHostPortsMatchTestScript(t *testing.T) {
	p := loadProject(t)
	root := repoRoot(t)

	for name, s := range p.Services {
		for _, port := range s.Ports {
			if name == "lb" {
				continue
			}
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %d on %q; only the load balancer may listen beyond 127.0.0.1", name, port.Target, port.HostIP)
			}
		}
	}

	kafka := service(t, p, "kafka")
	listeners, _ := env(kafka, "KAFKA_LISTENERS")
	advertised, _ := env(kafka, "KAFKA_ADVERTISED_LISTENERS")
	protocols, _ := env(kafka, "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP")
	if !strings.Contains(advertised, "PLAINTEXT://"+roleEnv["PARLEY_KAFKA_BROKERS"]) {
		t.Errorf("kafka advertises %q; roles connect to %s", advertised, roleEnv["PARLEY_KAFKA_BROKERS"])
	}
	m := regexp.MustCompile(`EXTERNAL://localhost:(\d+)`).FindStringSubmatch(advertised)
	if m == nil {
		t.Fatalf("kafka advertises no EXTERNAL://localhost:PORT listener for host clients: %q", advertised)
	}
	extPort := m[1]
	if !strings.Contains(listeners, "EXTERNAL://:"+extPort) {
		t.Errorf("kafka listeners %q do not bind the advertised EXTERNAL port %s", listeners, extPort)
	}
	for _, l := range []string{"CONTROLLER", "PLAINTEXT", "EXTERNAL"} {
		if !strings.Contains(protocols, l+":") {
			t.Errorf("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP %q lacks %s", protocols, l)
		}
	}
	if v, _ := env(kafka, "KAFKA_AUTO_CREATE_TOPICS_ENABLE"); v != "false" {
		t.Errorf("KAFKA_AUTO_CREATE_TOPICS_ENABLE=%q, want \"false\"", v)
	}
	var target uint32
	for _, port := range kafka.Ports {
		if port.Published == extPort {
			target = port.Target
		}
	}
	if target == 0 || extPort != strconv.FormatUint(uint64(target), 10) {
		t.Errorf("kafka publishes host port %s to container port %d; the advertised port must be published 1:1", extPort, target)
	}

	_, scyllaPort := publishedPort(t, service(t, p, "scylla"), 9042)
	_, esPort := publishedPort(t, service(t, p, "elasticsearch"), 9200)

	script := readConfig(t, filepath.Join(root, "deploy", "test-compose.sh"))
	for _, want := range []string{
		"PARLEY_KAFKA_BROKERS=localhost:" + extPort,
		"PARLEY_SCYLLA_HOSTS=localhost:" + scyllaPort,
		"PARLEY_ELASTICSEARCH_URL=http://localhost:" + esPort,
		// It fails with a message when an engine does not answer.
		"answers localhost " + extPort + " || not_up",
		"answers localhost " + scyllaPort + " || not_up",
		"/_cluster/health",
		"go test -race -count=1",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("test-compose.sh lacks %q", want)
		}
	}
	// It runs against the stack the operator started, on its ports: it
	// must not start a project of its own (whose ports would collide with
	// the running stack's) nor stop or wipe the running one. Docker
	// appears only in the message telling how to start the stack.
	commands := regexp.MustCompile(`(?s)<<\s*'?MSG'?\n.*?\nMSG\n`).ReplaceAllString(script, "")
	if commands == script {
		t.Error("test-compose.sh has no <<MSG message saying how to start the stack")
	}
	for _, banned := range []string{"docker", "down", "--project-name"} {
		if strings.Contains(commands, banned) {
			t.Errorf("test-compose.sh runs %q; it must use the running stack as it is", banned)
		}
	}
	fi, err := os.Stat(filepath.Join(root, "deploy", "test-compose.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&0o111 == 0 {
		t.Error("deploy/test-compose.sh is not executable")
	}
}

// haproxyConfigTarget is where the haproxy image reads its config.
const haproxyConfigTarget = "/usr/local/etc/haproxy/haproxy.cfg"

// haproxyEnv returns the variables deploy/haproxy.cfg sets with
// presetenv (the compose stack's values, which the environment may
// override) and their values.
func haproxyEnv(conf string) map[string]string {
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*presetenv\s+(\w+)\s+(\S+)\s*$`).FindAllStringSubmatch(conf, -1) {
		vars[m[1]] = m[2]
	}
	return vars
}

// The load balancer: HAProxy with deploy/haproxy.cfg, balancing open
// sockets over every gateway that answers /readyz, keeping idle
// WebSockets open, and retrying a failed connection on another gateway.
func TestHAProxyBalancesEveryGateway(t *testing.T) {
	p := loadProject(t)
	conf := readConfig(t, filepath.Join(repoRoot(t), "deploy", "haproxy.cfg"))

	for _, re := range []string{
		`(?m)^\s*mode\s+http\s*$`,
		`(?m)^\s*balance\s+(leastconn|roundrobin)\s*$`,
		`(?m)^\s*option\s+redispatch\b`,
		`(?m)^\s*retries\s+[1-9]\s*$`,
		// Hour-scale: an idle WebSocket must outlive the 60 s timeouts of
		// plain requests.
		`(?m)^\s*timeout\s+tunnel\s+(\d+[hd]|\d{4,}s?)\s*$`,
		`(?m)^\s*option\s+httpchk\s*$`,
		`(?m)^\s*http-check\s+send\s+meth\s+GET\s+uri\s+/readyz\s*$`,
		`(?m)^\s*http-check\s+expect\s+status\s+200\s*$`,
		`(?m)^\s*default-server\s+.*\bcheck\b`,
		`(?m)^\s*option\s+forwardfor\b`,
	} {
		if !regexp.MustCompile(re).MatchString(conf) {
			t.Errorf("haproxy.cfg lacks %s", re)
		}
	}

	vars := haproxyEnv(conf)
	port := httpPort(t)
	inBackend := map[string]bool{}
	servers := regexp.MustCompile(`(?m)^\s*server\s+(\S+)\s+(\S+)`).FindAllStringSubmatch(conf, -1)
	if len(servers) == 0 {
		t.Fatal("haproxy.cfg has no server lines")
	}
	for _, m := range servers {
		// Every address is a variable with the compose value as its
		// default, so the system test can run this very file.
		v := regexp.MustCompile(`^"\$\{(\w+)\}"$`).FindStringSubmatch(m[2])
		if v == nil {
			t.Errorf("haproxy server %s has address %s, want \"${VARIABLE}\" set by presetenv", m[1], m[2])
			continue
		}
		addr, ok := vars[v[1]]
		if !ok {
			t.Errorf("haproxy server %s uses ${%s}, which no presetenv sets", m[1], v[1])
			continue
		}
		host, p2, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("presetenv %s %s: %v", v[1], addr, err)
			continue
		}
		inBackend[host] = true
		if want, ok := parleyRoles[host]; !ok || !slices.Equal(want, []string{"gateway"}) {
			t.Errorf("haproxy server %s (%s) is not a gateway service", m[1], host)
		}
		if p2 != port {
			t.Errorf("haproxy server %s:%s, gateways listen on %s", host, p2, port)
		}
	}
	for name, cmd := range parleyRoles {
		if slices.Equal(cmd, []string{"gateway"}) && !inBackend[name] {
			t.Errorf("gateway %s is not a haproxy server", name)
		}
	}

	lb := service(t, p, "lb")
	if !strings.HasPrefix(lb.Image, "haproxy:") {
		t.Errorf("lb runs %s, want the haproxy image that reads deploy/haproxy.cfg", lb.Image)
	}
	bind := regexp.MustCompile(`(?m)^\s*bind\s+"\$\{(\w+)\}"\s*$`).FindStringSubmatch(conf)
	if bind == nil {
		t.Fatal(`haproxy.cfg has no bind "${VARIABLE}" line`)
	}
	_, listen, err := net.SplitHostPort(vars[bind[1]])
	if err != nil {
		t.Fatalf("presetenv %s %q: %v", bind[1], vars[bind[1]], err)
	}
	listenPort, err := strconv.ParseUint(listen, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	if _, published := publishedPort(t, lb, uint32(listenPort)); published == "" {
		t.Errorf("lb does not publish haproxy's listen port %s", listen)
	}
	monitor := regexp.MustCompile(`(?m)^\s*monitor-uri\s+(\S+)\s*$`).FindStringSubmatch(conf)
	if monitor == nil {
		t.Fatal("haproxy.cfg has no monitor-uri for the lb healthcheck")
	}
	if hc := lb.HealthCheck; hc == nil || !slices.Contains(hc.Test, "http://127.0.0.1:"+listen+monitor[1]) {
		t.Errorf("lb healthcheck %v does not ask http://127.0.0.1:%s%s", lb.HealthCheck, listen, monitor[1])
	}
}

// TestLoadBalancerSystemTestRunsTheComposeConfig: the system test that
// kills a gateway behind HAProxy (internal/systemtest) runs the file the
// lb service mounts, found through docker-compose.yml's mount, and
// overrides every address the file reads from the environment, and
// nothing else.
func TestLoadBalancerSystemTestRunsTheComposeConfig(t *testing.T) {
	root := repoRoot(t)
	src := readConfig(t, filepath.Join(root, "internal", "systemtest", "loadbalancer_test.go"))
	for _, want := range []string{
		`const haproxyConfigTarget = "` + haproxyConfigTarget + `"`,
		`os.ReadFile("../../docker-compose.yml")`,
		`exec.LookPath("haproxy")`,
	} {
		if !strings.Contains(src, want) {
			t.Errorf("internal/systemtest/loadbalancer_test.go lacks %s", want)
		}
	}
	vars := haproxyEnv(readConfig(t, filepath.Join(root, "deploy", "haproxy.cfg")))
	if len(vars) == 0 {
		t.Fatal("haproxy.cfg sets no presetenv variables")
	}
	for name := range vars {
		if !strings.Contains(src, `"`+name+`="`) {
			t.Errorf("the system test does not set %s, so it would run haproxy.cfg against the compose default %s", name, vars[name])
		}
	}
	set := regexp.MustCompile(`"(PARLEY_\w+)="`).FindAllStringSubmatch(src, -1)
	for _, m := range set {
		if _, ok := vars[m[1]]; !ok {
			t.Errorf("the system test sets %s, which haproxy.cfg does not read", m[1])
		}
	}
}

type promConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func TestPrometheusScrapesEveryRole(t *testing.T) {
	for _, st := range stacks() {
		t.Run(st.name, func(t *testing.T) { checkPrometheusScrapes(t, st) })
	}
}

// checkPrometheusScrapes reads the config file st's prometheus mounts and
// checks it scrapes every role of st, at the port they serve /metrics on.
func checkPrometheusScrapes(t *testing.T, st stack) {
	p := loadStack(t, st)
	config := ""
	mounted := map[string]string{} // target -> source
	for _, v := range service(t, p, "prometheus").Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if _, ok := mounted[v.Target]; ok {
			t.Errorf("prometheus mounts two files at %s", v.Target)
		}
		mounted[v.Target] = v.Source
		if v.Target == "/etc/prometheus/prometheus.yml" {
			config = v.Source
		}
	}
	if config == "" {
		t.Fatal("prometheus mounts no /etc/prometheus/prometheus.yml")
	}
	b, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	var cfg promConfig
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", config, err)
	}
	if len(cfg.ScrapeConfigs) == 0 {
		t.Fatalf("%s has no scrape_configs", config)
	}
	// The alerts are loaded: the config names them, relative to itself,
	// and the container has them there.
	alerts := filepath.Join(repoRoot(t), "deploy", "alerts.yml")
	if !slices.ContainsFunc(cfg.RuleFiles, func(f string) bool {
		return mounted[path.Join("/etc/prometheus", f)] == alerts
	}) {
		t.Errorf("%s loads rule_files %v; want deploy/alerts.yml, mounted where it names it (mounts: %v)", config, cfg.RuleFiles, mounted)
	}
	port := httpPort(t)
	scraped := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, sconf := range sc.StaticConfigs {
			for _, target := range sconf.Targets {
				host, tport, err := net.SplitHostPort(target)
				if err != nil {
					t.Errorf("job %s: target %q: %v", sc.JobName, target, err)
					continue
				}
				if _, ok := p.Services[host]; !ok {
					t.Errorf("job %s: target %s names no compose service", sc.JobName, target)
					continue
				}
				if _, ok := st.roles[host]; ok {
					scraped[host] = true
					if tport != port {
						t.Errorf("job %s: target %s, Parley roles serve /metrics on %s", sc.JobName, target, port)
					}
					if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
						t.Errorf("job %s: metrics_path %q, roles serve /metrics", sc.JobName, sc.MetricsPath)
					}
				}
			}
		}
	}
	for name := range st.roles {
		if !scraped[name] {
			t.Errorf("Parley role %s is not scraped by Prometheus", name)
		}
	}
}

func TestGrafanaProvisioning(t *testing.T) {
	p := loadProject(t)
	grafana := service(t, p, "grafana")

	// Container path -> host path of grafana's bind mounts.
	mounts := map[string]string{}
	for _, v := range grafana.Volumes {
		if v.Type == types.VolumeTypeBind {
			mounts[v.Target] = v.Source
		}
	}
	prov, ok := mounts["/etc/grafana/provisioning"]
	if !ok {
		t.Fatal("grafana does not mount a provisioning directory at /etc/grafana/provisioning")
	}

	var ds struct {
		Datasources []struct {
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(prov, "datasources", "prometheus.yml"), &ds)
	if len(ds.Datasources) == 0 {
		t.Fatal("no datasource provisioned")
	}
	for _, d := range ds.Datasources {
		u, err := url.Parse(d.URL)
		if err != nil {
			t.Errorf("datasource url %q: %v", d.URL, err)
			continue
		}
		if _, ok := p.Services[u.Hostname()]; !ok {
			t.Errorf("datasource %s points at %s, which is no compose service", d.Type, u.Hostname())
		}
	}

	var dash struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(prov, "dashboards", "parley.yml"), &dash)
	if len(dash.Providers) == 0 {
		t.Fatal("no dashboard provider provisioned")
	}
	for _, pr := range dash.Providers {
		host, ok := mounts[pr.Options.Path]
		if !ok {
			t.Errorf("dashboard provider reads %s, which grafana does not mount", pr.Options.Path)
			continue
		}
		files, err := filepath.Glob(filepath.Join(host, "*.json"))
		if err != nil || len(files) == 0 {
			t.Errorf("no dashboard JSON in %s", host)
		}
		for _, f := range files {
			var d struct {
				UID    string            `json:"uid"`
				Panels []json.RawMessage `json:"panels"`
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &d); err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			if d.UID == "" || len(d.Panels) == 0 {
				t.Errorf("%s: dashboard needs a uid and panels", f)
			}
			if !strings.Contains(string(b), "parley_") {
				t.Errorf("%s: no panel queries a parley_ metric", f)
			}
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// The compose files never fall back to a known secret: without the values
// of .env they refuse to load, with a message that says what to do.
func TestSecretsAreRequired(t *testing.T) {
	for _, st := range stacks() {
		for _, key := range []string{"PARLEY_JWT_SECRET", "GRAFANA_ADMIN_PASSWORD", "PARLEY_S3_ACCESS_KEY", "PARLEY_S3_SECRET_KEY"} {
			for _, c := range []struct {
				name string
				env  map[string]string
			}{
				{"unset", without(dotEnv, key)},
				{"empty", with(dotEnv, key, "")},
			} {
				t.Run(st.name+"/"+key+" "+c.name, func(t *testing.T) {
					_, err := loadFiles(t, c.env, st.files...)
					if err == nil {
						t.Fatalf("%s loads with %s %s", strings.Join(st.files, " + "), key, c.name)
					}
					for _, want := range []string{key, ".env.example"} {
						if !strings.Contains(err.Error(), want) {
							t.Errorf("error %q does not mention %s", err, want)
						}
					}
				})
			}
		}
	}
}

func without(m map[string]string, key string) map[string]string {
	m = maps.Clone(m)
	delete(m, key)
	return m
}

func with(m map[string]string, key, value string) map[string]string {
	m = maps.Clone(m)
	m[key] = value
	return m
}

// .env.example names every value the compose files require, empty, and
// .env (where the operator puts them) stays out of git and of the image.
func TestDotEnvExample(t *testing.T) {
	root := repoRoot(t)
	example := readConfig(t, filepath.Join(root, ".env.example"))
	lines := map[string]string{}
	for _, l := range strings.Split(example, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			lines[k] = v
		}
	}
	required := regexp.MustCompile(`\$\{(\w+):\?`)
	for _, f := range stacks()[1].files {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range required.FindAllStringSubmatch(string(b), -1) {
			v, ok := lines[m[1]]
			switch {
			case !ok:
				t.Errorf("%s requires %s, which .env.example does not list", f, m[1])
			case v != "":
				t.Errorf(".env.example sets %s=%q; a secret must be generated, not copied", m[1], v)
			}
		}
	}
	raw, err := os.ReadFile(filepath.Join(root, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "openssl rand -hex 32") {
		t.Error(".env.example does not say how to generate PARLEY_JWT_SECRET (openssl rand -hex 32)")
	}
	for _, f := range []string{".gitignore", ".dockerignore"} {
		ignore := readConfig(t, filepath.Join(root, f))
		if !slices.Contains(strings.Fields(ignore), ".env") {
			t.Errorf("%s does not list .env", f)
		}
	}
}

// The load balancer opens the entry point only once the gateways are
// ready, so the first requests do not meet a 502.
func TestLoadBalancerWaitsForHealthyGateways(t *testing.T) {
	for _, st := range stacks() {
		t.Run(st.name, func(t *testing.T) {
			p := loadStack(t, st)
			lb := service(t, p, "lb")
			n := 0
			for name, cmd := range st.roles {
				if !slices.Equal(cmd, []string{"gateway"}) {
					continue
				}
				n++
				if dep, ok := lb.DependsOn[name]; !ok || dep.Condition != types.ServiceConditionHealthy {
					t.Errorf("lb: depends_on %s %+v, want condition %s", name, dep, types.ServiceConditionHealthy)
				}
			}
			if n < 2 {
				t.Errorf("%d gateways, want at least 2 behind the load balancer", n)
			}
		})
	}
}

// exactImage is an image reference with an exact version tag (three
// numbers, an optional suffix such as -alpine) and optionally a digest.
var exactImage = regexp.MustCompile(`^[\w./-]+:v?\d+\.\d+\.\d+(-[\w.]+)?(@sha256:[0-9a-f]{64})?$`)

// Every image is pinned to an exact version: a floating tag (latest, 1.28,
// 6.2) changes what `docker compose pull` runs without a commit.
func TestImagesArePinned(t *testing.T) {
	for _, st := range stacks() {
		t.Run(st.name, func(t *testing.T) {
			p := loadStack(t, st)
			for name, s := range p.Services {
				if s.Build != nil {
					continue // the Parley image, built from the repo
				}
				if !exactImage.MatchString(s.Image) {
					t.Errorf("%s: image %q is not pinned to an exact version", name, s.Image)
				}
			}
		})
	}
	t.Run("Dockerfile", func(t *testing.T) {
		df := readConfig(t, filepath.Join(repoRoot(t), "Dockerfile"))
		args := map[string]string{}
		for _, m := range regexp.MustCompile(`(?m)^ARG\s+(\w+)=(\S+)`).FindAllStringSubmatch(df, -1) {
			args[m[1]] = m[2]
		}
		froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(df, -1)
		if len(froms) < 2 {
			t.Fatalf("Dockerfile has %d FROM lines, want a build and a runtime stage", len(froms))
		}
		for _, m := range froms {
			image := m[1]
			if a := regexp.MustCompile(`^\$\{(\w+)\}$`).FindStringSubmatch(image); a != nil {
				image = args[a[1]]
			}
			// Distroless publishes no version tags, only digests (which
			// cannot be resolved without a registry); the Dockerfile says
			// how to pin it by digest.
			if strings.HasPrefix(image, "gcr.io/distroless/") && !strings.Contains(image, ":latest") {
				continue
			}
			if !exactImage.MatchString(image) {
				t.Errorf("Dockerfile: FROM %s (%s) is not pinned to an exact version", m[1], image)
			}
		}
	})
}

// The load balancer listens on loopback unless the operator publishes it.
func TestLoadBalancerPublishAddress(t *testing.T) {
	for _, c := range []struct{ env, want string }{{"", "127.0.0.1"}, {"0.0.0.0", "0.0.0.0"}, {"192.0.2.10", "192.0.2.10"}} {
		var extra []string
		if c.env != "" {
			extra = []string{"PARLEY_PUBLISH_ADDR", c.env}
		}
		p := loadStack(t, stacks()[0], extra...)
		if ip, _ := publishedPort(t, service(t, p, "lb"), 8080); ip != c.want {
			t.Errorf("PARLEY_PUBLISH_ADDR=%q: lb publishes on %q, want %q", c.env, ip, c.want)
		}
	}
}

// The image carries the release `parley version` prints: compose passes
// PARLEY_VERSION as the VERSION build argument, which the Dockerfile
// stamps the way `make build` does.
func TestVersionIsStamped(t *testing.T) {
	for _, st := range stacks() {
		t.Run(st.name, func(t *testing.T) {
			p := loadStack(t, st, "PARLEY_VERSION", "v1.2.3")
			for name := range st.roles {
				s := service(t, p, name)
				if s.Build == nil {
					continue // reported by TestParleyRoles
				}
				if v := s.Build.Args["VERSION"]; v == nil || *v != "v1.2.3" {
					t.Errorf("%s: build arg VERSION %v, want PARLEY_VERSION (v1.2.3)", name, v)
				}
				if s.Image != "parley:v1.2.3" {
					t.Errorf("%s: image %q, want parley:v1.2.3", name, s.Image)
				}
			}
		})
	}
	root := repoRoot(t)
	df := readConfig(t, filepath.Join(root, "Dockerfile"))
	for _, re := range []string{`(?m)^ARG VERSION\b`, `-ldflags="[^"]*-X main\.version=\$\{VERSION\}`} {
		if !regexp.MustCompile(re).MatchString(df) {
			t.Errorf("Dockerfile lacks %s", re)
		}
	}
	if mk := readConfig(t, filepath.Join(root, "Makefile")); !strings.Contains(mk, "-X main.version=$(VERSION)") {
		t.Error("Makefile's build no longer stamps main.version; keep the Dockerfile's stamp the same")
	}
}

// TestFileStore: the stack has an S3 service (versitygw, pinned) with a
// volume and a healthcheck, whose root credentials are the ones the roles
// that use it (the gateways and the files projection) sign with; they
// reach it on the compose network, wait for it to be healthy, and
// presign URLs for the port it publishes on the host.
func TestFileStore(t *testing.T) {
	for _, st := range stacks() {
		t.Run(st.name, func(t *testing.T) {
			p := loadStack(t, st)
			s3 := service(t, p, "s3")
			if !strings.HasPrefix(s3.Image, "versity/versitygw:") {
				t.Errorf("s3 runs %s, want versitygw", s3.Image)
			}
			if hc := s3.HealthCheck; hc == nil || len(hc.Test) < 2 || !strings.Contains(strings.Join(hc.Test, " "), "/health") {
				t.Errorf("s3: healthcheck %v does not ask /health", hc)
			}
			if v, _ := env(s3, "VGW_HEALTH"); v != "/health" {
				t.Errorf("s3: VGW_HEALTH=%q, want /health", v)
			}
			// The web client PUTs from the browser: the store must answer
			// its CORS preflight.
			if v, _ := env(s3, "VGW_CORS_ALLOW_ORIGIN"); v == "" {
				t.Error("s3: no VGW_CORS_ALLOW_ORIGIN; browsers could not upload")
			}
			var persisted bool
			for _, v := range s3.Volumes {
				persisted = persisted || (v.Type == types.VolumeTypeVolume && v.Target == "/data")
			}
			if !persisted {
				t.Error("s3: no volume at /data; files would not survive the container")
			}
			_, published := publishedPort(t, s3, 7070)
			access, _ := env(s3, "ROOT_ACCESS_KEY")
			secret, _ := env(s3, "ROOT_SECRET_KEY")
			if access != dotEnv["PARLEY_S3_ACCESS_KEY"] || secret != dotEnv["PARLEY_S3_SECRET_KEY"] {
				t.Errorf("s3: root credentials %q/%q, want .env's", access, secret)
			}
			for _, name := range []string{"gateway1", "gateway2", "files"} {
				r := service(t, p, name)
				want := map[string]string{
					"PARLEY_S3_ENDPOINT":   "http://s3:7070",
					"PARLEY_S3_PUBLIC_URL": "http://localhost:" + published,
					"PARLEY_S3_ACCESS_KEY": access,
					"PARLEY_S3_SECRET_KEY": secret,
				}
				for k, v := range want {
					if got, _ := env(r, k); got != v {
						t.Errorf("%s: %s=%q, want %q", name, k, got, v)
					}
				}
				if dep, ok := r.DependsOn["s3"]; !ok || dep.Condition != types.ServiceConditionHealthy {
					t.Errorf("%s: does not wait for s3 to be healthy", name)
				}
			}
		})
	}
}

// TestEveryGatewayServesTheKeyDirectory: the key directory's routes
// (devices and KeyPackages) are balanced over every gateway like any
// other, which is right only because every gateway shares the directory
// in ScyllaDB: no backend or use_backend sets them apart, and every
// gateway service has PARLEY_SCYLLA_HOSTS.
func TestEveryGatewayServesTheKeyDirectory(t *testing.T) {
	conf := readConfig(t, filepath.Join(repoRoot(t), "deploy", "haproxy.cfg"))
	if m := regexp.MustCompile(`(?m)^\s*(use_backend\b.*|backend\s+\S+)$`).FindAllString(conf, -1); len(m) != 1 || !regexp.MustCompile(`^backend\s+gateways$`).MatchString(strings.TrimSpace(m[0])) {
		t.Errorf("haproxy.cfg: %q; want one backend, gateways, and no use_backend: every gateway serves every route", m)
	}
	if regexp.MustCompile(`/v1/devices/|/v1/users/`).MatchString(conf) {
		t.Error("haproxy.cfg routes the key directory's paths apart")
	}
	for _, st := range stacks() {
		p := loadStack(t, st)
		for name, roles := range st.roles {
			if !slices.Contains(roles, "gateway") {
				continue
			}
			if v, _ := env(service(t, p, name), "PARLEY_SCYLLA_HOSTS"); v == "" {
				t.Errorf("%s: %s has no PARLEY_SCYLLA_HOSTS: its key directory would be its own", st.name, name)
			}
		}
	}
}
