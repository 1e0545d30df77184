package keydir

import (
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// TestCheck judges a real KeyPackage, made by ts-mls 1.6.4 for identity
// "alice/phone" with a lifetime of 30 days from 1700000000 (see
// internal/mlswire's testdata).
func TestCheck(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/keypackage-alice-phone.hex")
	if err != nil {
		t.Fatal(err)
	}
	data, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1700000000, 0)
	cases := []struct {
		name         string
		user, device string
		now          time.Time
		data         []byte
		refused      string
	}{
		{"its own device within the lifetime", "alice", "phone", start.Add(24 * time.Hour), data, ""},
		{"within the clock skew before not_before", "alice", "phone", start.Add(-ClockSkew + time.Second), data, ""},
		{"another device of the same user", "alice", "laptop", start.Add(time.Hour), data, `identity "alice/phone", want "alice/laptop"`},
		{"another user", "mallory", "phone", start.Add(time.Hour), data, "identity"},
		{"after not_after", "alice", "phone", start.Add(31 * 24 * time.Hour), data, "expired"},
		{"long before not_before", "alice", "phone", start.Add(-time.Hour), data, "not valid before"},
		{"a tampered package", "alice", "phone", start.Add(time.Hour), append(data[:len(data)-1:len(data)-1], data[len(data)-1]^1), "signature"},
		{"too large", "alice", "phone", start.Add(time.Hour), make([]byte, MaxPackageBytes+1), "bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, err := Check(c.data, c.user, c.device, c.now)
			if c.refused == "" {
				if err != nil || len(p.Ref) != 32 || !p.NotAfter.Equal(start.Add(30*24*time.Hour)) {
					t.Errorf("Check: %+v %v", p, err)
				}
				return
			}
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.refused) {
				t.Errorf("error %v, want ErrRefused saying %q", err, c.refused)
			}
		})
	}
}
