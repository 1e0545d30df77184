package push

import (
	"net/http"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	c := Config{}.withDefaults() // 1s doubling up to 1m
	for _, tc := range []struct {
		n          int
		retryAfter time.Duration
		want       time.Duration
	}{
		{0, 0, time.Second},
		{1, 0, 2 * time.Second},
		{5, 0, 32 * time.Second},
		{6, 0, time.Minute},
		{63, 0, time.Minute},
		{0, 30 * time.Second, 30 * time.Second},
		{5, 10 * time.Second, 32 * time.Second},
		{0, 48 * time.Hour, time.Hour},
	} {
		if got := c.backoff(tc.n, tc.retryAfter); got != tc.want {
			t.Errorf("backoff(%d, %s) = %s, want %s", tc.n, tc.retryAfter, got, tc.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"":     0,
		"120":  2 * time.Minute,
		"-5":   0,
		"soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		if got := retryAfter(h, now); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", h, got, want)
		}
	}
}
