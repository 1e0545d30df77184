package app_test

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/app"
)

func TestTheDevSecretListensOnLoopbackOnly(t *testing.T) {
	secret := strings.Repeat("s", 32)
	for _, c := range []struct {
		name    string
		env     map[string]string
		wantErr string // empty: accepted
	}{
		{"the defaults", nil, ""},
		{"localhost", map[string]string{"PARLEY_HTTP_ADDR": "localhost:8080"}, ""},
		{"IPv6 loopback", map[string]string{"PARLEY_HTTP_ADDR": "[::1]:8080"}, ""},
		{"every interface", map[string]string{"PARLEY_HTTP_ADDR": ":8080"}, `PARLEY_HTTP_ADDR ":8080" is reachable from other machines`},
		{"every IPv4 interface", map[string]string{"PARLEY_HTTP_ADDR": "0.0.0.0:8080"}, "PARLEY_HTTP_ADDR"},
		{"a host name", map[string]string{"PARLEY_HTTP_ADDR": "chat.example.com:8080"}, "PARLEY_HTTP_ADDR"},
		{"the broker on every interface", map[string]string{"PARLEY_KAFKA_LISTEN": ":9092"}, `PARLEY_KAFKA_LISTEN ":9092" is reachable`},
		{"every interface with a secret", map[string]string{"PARLEY_HTTP_ADDR": ":8080", "PARLEY_KAFKA_LISTEN": ":9092", "PARLEY_JWT_SECRET": secret}, ""},
		{"a cluster with a secret", map[string]string{"PARLEY_HTTP_ADDR": ":8080", "PARLEY_KAFKA_BROKERS": "kafka:9092", "PARLEY_JWT_SECRET": secret}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := app.Load("run", nil, func(k string) string { return c.env[k] }, io.Discard)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("got %v, want an error containing %q", err, c.wantErr)
			case c.wantErr != "" && !strings.Contains(err.Error(), "PARLEY_JWT_SECRET"):
				t.Fatalf("%v: the error does not say how to fix it (PARLEY_JWT_SECRET)", err)
			}
			if c.env == nil && cfg.HTTPAddr != "127.0.0.1:8080" {
				t.Errorf("default HTTP address %q, want 127.0.0.1:8080", cfg.HTTPAddr)
			}
		})
	}
}

// TestREADMEListsEverySetting holds the README's configuration table to
// Settings: every setting once, with its flag and default, and nothing else.
func TestREADMEListsEverySetting(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "| `PARLEY_") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 5 {
			t.Fatalf("a short row: %s", line)
		}
		env := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if _, dup := rows[env]; dup {
			t.Errorf("%s is listed twice", env)
		}
		rows[env] = []string{strings.Trim(strings.TrimSpace(cells[2]), "`"), strings.Trim(strings.TrimSpace(cells[3]), "`")}
	}
	for _, s := range app.Settings() {
		row, ok := rows[s.Env]
		if !ok {
			t.Errorf("README's configuration table has no row for %s", s.Env)
			continue
		}
		delete(rows, s.Env)
		want := s.Default
		switch {
		case s.Flag == "node-id":
			want = "host name"
		case want == "":
			want = "(empty)"
		}
		if row[0] != "-"+s.Flag || row[1] != want {
			t.Errorf("README lists %s as %s, default %s; want -%s, default %s", s.Env, row[0], row[1], s.Flag, want)
		}
	}
	for env := range rows {
		t.Errorf("README lists %s, which is not a setting", env)
	}
}

func TestParseRoles(t *testing.T) {
	for in, want := range map[string]app.Roles{
		"all":                     app.All,
		"gateway":                 {Gateway: true},
		"gateway, decider,router": {Gateway: true, Decider: true, Router: true},
		"gateway,decider,history,search,router,files,push": app.All,
		"gateway,decider,history,search,router,files":      {Gateway: true, Decider: true, History: true, Search: true, Router: true, Files: true},
		"files": {Files: true},
		"push":  {Push: true},
	} {
		got, err := app.ParseRoles(in)
		if err != nil || got != want {
			t.Errorf("ParseRoles(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "oracle", "gateway,", "all,gateway"} {
		if _, err := app.ParseRoles(bad); err == nil {
			t.Errorf("ParseRoles(%q) accepted", bad)
		}
	}
}

func TestAutoRoutingIsBroadcastForTheOneNodeOfParleyRun(t *testing.T) {
	cfg, err := app.Load("run", nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.ForRoles(app.All).Routing; got != app.RoutingBroadcast {
		t.Errorf("parley run on the embedded broker routes %s, want broadcast", got)
	}
	if got := cfg.ForRoles(app.Roles{Gateway: true}).Routing; got != app.RoutingTargeted {
		t.Errorf("a gateway alone routes %s, want targeted", got)
	}
	cfg.KafkaBrokers, cfg.JWTSecret = []string{"kafka:9092"}, strings.Repeat("s", 32)
	if got := cfg.ForRoles(app.All).Routing; got != app.RoutingTargeted {
		t.Errorf("every role against a Kafka cluster routes %s, want targeted", got)
	}
	cfg.Routing = app.RoutingBroadcast
	if got := cfg.ForRoles(app.Roles{Gateway: true}).Routing; got != app.RoutingBroadcast {
		t.Errorf("an explicit broadcast became %s", got)
	}
}

func TestOIDCSettings(t *testing.T) {
	secret := strings.Repeat("s", 32)
	for _, c := range []struct {
		name    string
		env     map[string]string
		wantErr []string // empty: accepted
	}{
		{"an issuer and an audience on every interface and a cluster", map[string]string{
			"PARLEY_OIDC_ISSUER": "https://idp.example.org/realms/acme, https://dex.example.org", "PARLEY_OIDC_AUDIENCE": "parley",
			"PARLEY_HTTP_ADDR": ":8080", "PARLEY_KAFKA_BROKERS": "kafka:9092",
		}, nil},
		{"everything wrong at once", map[string]string{
			"PARLEY_OIDC_ISSUER": "idp.example.org", "PARLEY_OIDC_USER_CLAIM": "name", "PARLEY_JWT_SECRET": secret,
		}, []string{
			`PARLEY_OIDC_ISSUER "idp.example.org" is not an http(s) URL`, "PARLEY_OIDC_AUDIENCE is required",
			`PARLEY_OIDC_USER_CLAIM "name"`, "PARLEY_JWT_SECRET and PARLEY_OIDC_ISSUER exclude each other",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := app.Load("run", nil, func(k string) string { return c.env[k] }, io.Discard)
			if len(c.wantErr) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !cfg.OIDC() || len(cfg.OIDCIssuers) != 2 || cfg.OIDCUserClaim != "sub" {
					t.Errorf("loaded %v %q, want two issuers and the sub claim", cfg.OIDCIssuers, cfg.OIDCUserClaim)
				}
				return
			}
			for _, want := range c.wantErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("got %v, want an error containing %q", err, want)
				}
			}
		})
	}
}

// TestCommandLinger: the command writer's linger defaults to 1ms, 0 is
// accepted (commands leave at once), a negative one is refused.
func TestCommandLinger(t *testing.T) {
	t.Parallel()
	load := func(v string) (app.Config, error) {
		return app.Load("run", nil, func(k string) string {
			if k == "PARLEY_COMMAND_LINGER" {
				return v
			}
			return ""
		}, io.Discard)
	}
	for v, want := range map[string]time.Duration{"": time.Millisecond, "0": 0, "250us": 250 * time.Microsecond} {
		cfg, err := load(v)
		if err != nil {
			t.Fatalf("PARLEY_COMMAND_LINGER=%q refused: %v", v, err)
		}
		if cfg.CommandLinger != want {
			t.Errorf("PARLEY_COMMAND_LINGER=%q gives %v, want %v", v, cfg.CommandLinger, want)
		}
	}
	if _, err := load("-1ms"); err == nil || !strings.Contains(err.Error(), "PARLEY_COMMAND_LINGER") {
		t.Errorf("PARLEY_COMMAND_LINGER=-1ms: %v, want it refused", err)
	}
}
