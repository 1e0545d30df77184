package app

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parley-chat/parley/schemas"
)

// TestPushSettings: which providers a configuration turns on, and what
// it refuses, all at once.
func TestPushSettings(t *testing.T) {
	secret := strings.Repeat("s", 32)
	for _, c := range []struct {
		name      string
		env       map[string]string
		providers []string
		wantErr   []string
	}{
		{"the embedded default: Web Push with generated keys", nil, []string{schemas.ProviderWebPush}, nil},
		{"a cluster without push settings: none", map[string]string{"PARLEY_KAFKA_BROKERS": "kafka:9092", "PARLEY_JWT_SECRET": secret}, nil, nil},
		{"a cluster with every provider", map[string]string{
			"PARLEY_KAFKA_BROKERS": "kafka:9092", "PARLEY_JWT_SECRET": secret,
			"PARLEY_VAPID_PUBLIC_KEY": "BNcR", "PARLEY_VAPID_PRIVATE_KEY": "x", "PARLEY_VAPID_SUBJECT": "ops@example.org",
			"PARLEY_FCM_PROJECT": "acme", "PARLEY_APNS_KEY_FILE": "/k.p8", "PARLEY_APNS_KEY_ID": "K", "PARLEY_APNS_TEAM_ID": "T", "PARLEY_APNS_TOPIC": "org.acme.chat",
		}, []string{schemas.ProviderWebPush, schemas.ProviderFCM, schemas.ProviderAPNs}, nil},
		{"everything wrong at once", map[string]string{
			"PARLEY_KAFKA_BROKERS": "kafka:9092", "PARLEY_JWT_SECRET": secret,
			"PARLEY_VAPID_PUBLIC_KEY": "BNcR", "PARLEY_APNS_KEY_FILE": "/k.p8", "PARLEY_PUSH_WINDOW": "0s", "PARLEY_PUSH_PREVIEW_RUNES": "-1",
		}, nil, []string{
			"PARLEY_VAPID_PUBLIC_KEY and PARLEY_VAPID_PRIVATE_KEY are set together", "PARLEY_VAPID_SUBJECT is required",
			"PARLEY_APNS_KEY_ID, PARLEY_APNS_TEAM_ID and PARLEY_APNS_TOPIC are required", "PARLEY_PUSH_WINDOW and PARLEY_PUSH_MAX_AGE must be positive",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Load("run", nil, func(k string) string { return c.env[k] }, io.Discard)
			if len(c.wantErr) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if got := cfg.pushProviders(); !slices.Equal(got, c.providers) {
					t.Errorf("providers %v, want %v", got, c.providers)
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

// TestVAPIDKeysAreKept: the embedded default makes its VAPID keys once
// and finds the same ones on every later start; a damaged file is an
// error, not a new pair (which would orphan every browser subscription).
func TestVAPIDKeysAreKept(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir}
	first, err := cfg.vapidKeys()
	if err != nil {
		t.Fatal(err)
	}
	if len(first.PublicKey) < 80 || first.PrivateKey == "" {
		t.Fatalf("keys %+v", first)
	}
	again, err := cfg.vapidKeys()
	if err != nil || again != first {
		t.Fatalf("second start: %+v, %v; want the first keys", again, err)
	}
	path := filepath.Join(dir, "push", "vapid.json")
	if fi, err := os.Stat(path); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", path, fi.Mode().Perm())
	}
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.vapidKeys(); err == nil {
		t.Error("a damaged key file was accepted")
	}
	configured := Config{DataDir: dir, VAPIDPublicKey: "pub", VAPIDPrivateKey: "priv"}
	if k, err := configured.vapidKeys(); err != nil || k.PublicKey != "pub" || k.PrivateKey != "priv" {
		t.Errorf("configured keys: %+v, %v", k, err)
	}
}
