package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
)

func noEnv(string) string { return "" }

// clusterEnv is the environment of a command run against the cluster k,
// its tokens signed with secret.
func clusterEnv(k kafkatest.Cluster, secret string) func(string) string {
	return func(key string) string {
		switch key {
		case "PARLEY_KAFKA_BROKERS":
			return strings.Join(k.Brokers(), ",")
		case "PARLEY_TOPIC_PREFIX":
			return k.Names.Prefix
		case "PARLEY_JWT_SECRET":
			return secret
		}
		return ""
	}
}

func TestTokenPrintsAVerifiableToken(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"token", "alice", "-ttl", "1h"}, noEnv, nil, &out, &errOut); err != nil {
		t.Fatalf("parley token: %v (%s)", err, errOut.String())
	}
	a, err := gateway.NewAuthenticator(gateway.AuthConfig{Secret: []byte(app.DevSecret)})
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.Verify(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("the printed token does not verify with the dev secret: %v", err)
	}
	if id.UserID != "alice" || time.Until(id.ExpiresAt) > time.Hour || time.Until(id.ExpiresAt) < 59*time.Minute {
		t.Errorf("token for %q expiring at %v, want alice in 1h", id.UserID, id.ExpiresAt)
	}
}

func TestTokenRefusesTheDevSecretAgainstAClusterWithoutASecret(t *testing.T) {
	env := func(k string) string {
		if k == "PARLEY_KAFKA_BROKERS" {
			return "kafka:9092"
		}
		return ""
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"token", "alice"}, env, nil, &out, &out); err == nil || !strings.Contains(err.Error(), "PARLEY_JWT_SECRET") {
		t.Errorf("token with a cluster and no secret: %v, want an error naming PARLEY_JWT_SECRET", err)
	}
}

func TestTokenAndWSUserRefuseToSignWithOIDC(t *testing.T) {
	env := map[string]string{"PARLEY_OIDC_ISSUER": "https://idp.example.org", "PARLEY_OIDC_AUDIENCE": "parley"}
	for _, args := range [][]string{{"token", "alice"}, {"ws", "-user", "alice"}} {
		var out bytes.Buffer
		err := run(context.Background(), args, func(k string) string { return env[k] }, nil, &out, &out)
		if !errors.Is(err, errDevTokensWithOIDC) {
			t.Errorf("%v with PARLEY_OIDC_ISSUER: %v, want %v", args, err, errDevTokensWithOIDC)
		}
		if out.Len() != 0 {
			t.Errorf("%v printed %q", args, out.String())
		}
	}
}

func TestCommandErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no command"},
		{[]string{"teleport"}, `unknown command "teleport"`},
		{[]string{"project"}, "usage: parley project"},
		{[]string{"project", "inbox"}, "usage: parley project"},
		{[]string{"token"}, "usage: parley token"},
		{[]string{"dlq"}, "usage: parley dlq"},
		{[]string{"rebuild"}, "usage: parley rebuild"},
		{[]string{"rebuild", "inbox"}, "usage: parley rebuild"},
		{[]string{"rebuild", "push", "-swap", "-data-dir", "/nonexistent"}, "rebuild push has no -swap"},
		{[]string{"rebuild", "files", "-swap", "-data-dir", "/nonexistent"}, "rebuild files has no -swap"},
		{[]string{"dlq", "drop"}, "usage: parley dlq"},
		{[]string{"dlq", "redrive"}, "usage: parley dlq"},
		{[]string{"token", "not a user!"}, "invalid user id"},
		{[]string{"run", "-partitions", "zero"}, "invalid value"},
		{[]string{"run", "-roles", "gateway,oracle"}, `PARLEY_ROLES: unknown role "oracle"`},
		{[]string{"run", "-log-format", "xml"}, "PARLEY_LOG_FORMAT"},
		{[]string{"router", "-routing", "sideways"}, "PARLEY_ROUTING must be targeted, broadcast or auto"},
		{[]string{"gateway", "-node-id", "gw/1"}, "names the node's delivery topic"},
		{[]string{"run", "-topic-prefix", "team a/"}, "PARLEY_TOPIC_PREFIX"},
		{[]string{"run", "-min-insync-replicas", "2"}, "PARLEY_MIN_INSYNC_REPLICAS"},
		{[]string{"run", "-replication-factor", "0"}, "PARLEY_REPLICATION_FACTOR"},
		{[]string{"broker", "-kafka-brokers", "kafka:9092", "-jwt-secret", strings.Repeat("s", 32)}, "nothing to run"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), c.args, noEnv, nil, &out, &out)
		if err == nil || !strings.Contains(err.Error()+out.String(), c.want) {
			t.Errorf("parley %v: error %v (output %q), want one mentioning %q", c.args, err, out.String(), c.want)
		}
		if strings.Contains(out.String(), "commands:") || strings.Contains(out.String(), "(env PARLEY_") {
			t.Errorf("parley %v printed the whole usage after an error: %q", c.args, out.String())
		}
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"help"}, noEnv, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, s := range app.Settings() {
		if !strings.Contains(out.String(), s.Env) || !strings.Contains(out.String(), "-"+s.Flag) {
			t.Errorf("help lacks %s / -%s", s.Env, s.Flag)
		}
	}
}

func TestHelpFlagIsNotAnError(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"run", "-h"}, {"gateway", "--help"}, {"token", "alice", "-h"}, {"bench", "-h"}, {"healthcheck", "-h"}, {"dlq", "list", "-h"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, noEnv, nil, &out, &out); err != nil && !errors.Is(err, flag.ErrHelp) {
			t.Errorf("parley %v: %v, want success or flag.ErrHelp (exit 0)", args, err)
		}
	}
}

func TestVersionPrintsTheStamp(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, noEnv, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "parley "+version) {
		t.Errorf("parley version printed %q, want it to start with %q", out.String(), "parley "+version)
	}
}

func TestHelpListsHealthcheck(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"help"}, noEnv, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"\n  healthcheck ", "\n  dlq list ", "\n  dlq redrive "} {
		if !strings.Contains(out.String(), cmd) {
			t.Errorf("help does not list %q:\n%s", strings.TrimSpace(cmd), out.String())
		}
	}
}

// An operator mints tokens for the compose stack with the secret of its
// .env file: `PARLEY_JWT_SECRET=... parley token alice`.
func TestTokenSignsWithTheSecretFromTheEnvironment(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef-operator"
	env := func(k string) string {
		switch k {
		case "PARLEY_JWT_SECRET":
			return secret
		case "PARLEY_KAFKA_BROKERS":
			return "kafka:9092"
		}
		return ""
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"token", "alice"}, env, nil, &out, &errOut); err != nil {
		t.Fatalf("parley token: %v (%s)", err, errOut.String())
	}
	tok := strings.TrimSpace(out.String())
	for _, c := range []struct {
		secret string
		ok     bool
	}{{secret, true}, {app.DevSecret, false}} {
		a, err := gateway.NewAuthenticator(gateway.AuthConfig{Secret: []byte(c.secret)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Verify(tok); (err == nil) != c.ok {
			t.Errorf("verifying with %q: %v, want ok=%v", c.secret, err, c.ok)
		}
	}
}
