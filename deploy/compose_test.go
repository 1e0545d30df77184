package deploy

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

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
	"router":   {"router"},
	"gateway1": {"gateway"},
	"gateway2": {"gateway"},
}

// infraServices are the non-Parley services the stack must have.
var infraServices = []string{"kafka", "scylla", "elasticsearch", "lb", "prometheus", "grafana"}

// backends are the services every Parley role needs before it can start.
var backends = []string{"kafka", "scylla", "elasticsearch"}

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

// loadProject loads docker-compose.yml the way `docker compose` does:
// interpolation, schema validation, normalization and the consistency check
// (depends_on, volumes and networks refer to things that exist) all on. The
// environment is empty so ${VAR:-default} takes the defaults.
func loadProject(t *testing.T) *types.Project {
	t.Helper()
	root := repoRoot(t)
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
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
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return project
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
	p := loadProject(t)
	root := repoRoot(t)
	images := map[string]bool{}
	nodeIDs := map[string]string{}
	for name, want := range parleyRoles {
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

		for key, wantVal := range roleEnv {
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
		if secret, ok := env(s, "PARLEY_JWT_SECRET"); !ok {
			t.Errorf("%s: environment lacks PARLEY_JWT_SECRET", name)
		} else if len(secret) < 32 {
			t.Errorf("%s: default PARLEY_JWT_SECRET is %d bytes; HS256 keys need at least 32", name, len(secret))
		}

		for _, b := range backends {
			dep, ok := s.DependsOn[b]
			if !ok {
				t.Errorf("%s: does not depend on %s", name, b)
				continue
			}
			if dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s: depends_on %s condition %q, want %q", name, b, dep.Condition, types.ServiceConditionHealthy)
			}
		}

		// The image is distroless: there is no shell for CMD-SHELL.
		if hc := s.HealthCheck; hc != nil && len(hc.Test) > 0 && hc.Test[0] == "CMD-SHELL" {
			t.Errorf("%s: CMD-SHELL healthcheck cannot run in the distroless image", name)
		}
	}
	if len(images) != 1 {
		t.Errorf("roles use %d different image names %v; one name lets Compose build the image once", len(images), images)
	}
}

// service_healthy on a service without a healthcheck never becomes true, so
// `docker compose up` fails; check every such dependency has one.
func TestHealthyDependenciesHaveHealthchecks(t *testing.T) {
	p := loadProject(t)
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
	for _, b := range backends {
		if hc := service(t, p, b).HealthCheck; hc == nil || len(hc.Test) < 2 {
			t.Errorf("%s: no usable healthcheck", b)
		}
	}
}

// Compose creates a missing bind-mount source as an empty directory, so a
// typo in a path starts nginx or Prometheus with a directory where a config
// file should be. Every bind mount must name a path inside the repo that
// exists.
func TestBindMountsExist(t *testing.T) {
	p := loadProject(t)
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
	want := filepath.Join(root, "deploy", "nginx.conf")
	found := false
	for _, v := range lb.Volumes {
		if v.Type == types.VolumeTypeBind && v.Source == want {
			found = true
			if v.Target != "/etc/nginx/nginx.conf" {
				t.Errorf("lb: nginx.conf mounted at %s, want /etc/nginx/nginx.conf", v.Target)
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
		"up -d --build --wait",
		"kafka scylla elasticsearch",
		"down -v",
		"trap cleanup EXIT",
		"go test -race -count=1",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("test-compose.sh lacks %q", want)
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

func TestNginxProxiesWebSocketsToEveryGateway(t *testing.T) {
	p := loadProject(t)
	conf := readConfig(t, filepath.Join(repoRoot(t), "deploy", "nginx.conf"))

	for _, re := range []string{
		`map\s+\$http_upgrade\s+\$connection_upgrade\s*\{`,
		`proxy_http_version\s+1\.1\s*;`,
		`proxy_set_header\s+Upgrade\s+\$http_upgrade\s*;`,
		`proxy_set_header\s+Connection\s+\$connection_upgrade\s*;`,
		`proxy_read_timeout\s+(\d+[hd]|[0-9]{4,}s?)\s*;`, // an hour-scale timeout, not the 60s default
		`least_conn\s*;`,
	} {
		if !regexp.MustCompile(re).MatchString(conf) {
			t.Errorf("nginx.conf lacks %s", re)
		}
	}

	up := regexp.MustCompile(`(?s)upstream\s+(\w+)\s*\{(.*?)\}`).FindStringSubmatch(conf)
	if up == nil {
		t.Fatal("nginx.conf has no upstream block")
	}
	if !regexp.MustCompile(`proxy_pass\s+http://` + up[1] + `\s*;`).MatchString(conf) {
		t.Errorf("nginx.conf does not proxy_pass to upstream %s", up[1])
	}
	port := httpPort(t)
	inUpstream := map[string]bool{}
	for _, m := range regexp.MustCompile(`server\s+([\w.-]+):(\d+)`).FindAllStringSubmatch(up[2], -1) {
		host, p2 := m[1], m[2]
		inUpstream[host] = true
		want, ok := parleyRoles[host]
		if !ok || !slices.Equal(want, []string{"gateway"}) {
			t.Errorf("nginx upstream server %s is not a gateway service", host)
		}
		if p2 != port {
			t.Errorf("nginx upstream %s:%s, gateways listen on %s", host, p2, port)
		}
	}
	for name, cmd := range parleyRoles {
		if slices.Equal(cmd, []string{"gateway"}) && !inUpstream[name] {
			t.Errorf("gateway %s is not in the nginx upstream", name)
		}
	}

	lb := service(t, p, "lb")
	listen := regexp.MustCompile(`listen\s+(\d+)`).FindStringSubmatch(conf)
	if listen == nil {
		t.Fatal("nginx.conf has no listen directive")
	}
	listenPort, err := strconv.ParseUint(listen[1], 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	if _, published := publishedPort(t, lb, uint32(listenPort)); published == "" {
		t.Errorf("lb does not publish nginx's listen port %s", listen[1])
	}
}

type promConfig struct {
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func TestPrometheusScrapesEveryRole(t *testing.T) {
	p := loadProject(t)
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg promConfig
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	if len(cfg.ScrapeConfigs) == 0 {
		t.Fatal("prometheus.yml has no scrape_configs")
	}
	port := httpPort(t)
	scraped := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, tport, err := net.SplitHostPort(target)
				if err != nil {
					t.Errorf("job %s: target %q: %v", sc.JobName, target, err)
					continue
				}
				if _, ok := p.Services[host]; !ok {
					t.Errorf("job %s: target %s names no compose service", sc.JobName, target)
					continue
				}
				if _, ok := parleyRoles[host]; ok {
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
	for name := range parleyRoles {
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
