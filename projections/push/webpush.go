// The Web Push provider (RFC 8030, payload encryption RFC 8291, VAPID
// RFC 8292).

package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
)

// WebPushConfig configures the Web Push provider.
type WebPushConfig struct {
	// VAPIDPublicKey and VAPIDPrivateKey are the application server's
	// P-256 key pair, base64url (webpush.GenerateVAPIDKeys; see
	// LoadOrCreateVAPIDKeys).
	VAPIDPublicKey, VAPIDPrivateKey string
	// Subject is the VAPID contact: an e-mail address (without mailto:)
	// or an https URL.
	Subject string
	// TTL is how long a push service keeps a notification for a device
	// that is offline. Default: 24h.
	TTL time.Duration
	// Client sends the requests. Default: a client with a 30s timeout.
	Client *http.Client
}

// WebPush is the Web Push provider.
type WebPush struct{ cfg WebPushConfig }

var _ Provider = (*WebPush)(nil)

// NewWebPush returns the Web Push provider.
func NewWebPush(cfg WebPushConfig) (*WebPush, error) {
	if cfg.VAPIDPublicKey == "" || cfg.VAPIDPrivateKey == "" || cfg.Subject == "" {
		return nil, errors.New("web push needs VAPID keys and a subject")
	}
	if cfg.TTL == 0 {
		cfg.TTL = 24 * time.Hour
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	return &WebPush{cfg: cfg}, nil
}

// Send posts n, encrypted to the subscription's keys, to its endpoint.
func (w *WebPush) Send(ctx context.Context, d Device, n Notification) error {
	if d.Subscription == nil {
		return errors.New("web push registration without a subscription")
	}
	body, err := json.Marshal(n)
	if err != nil {
		return err
	}
	sub := &webpush.Subscription{Endpoint: d.Subscription.Endpoint, Keys: webpush.Keys{Auth: d.Subscription.Keys.Auth, P256dh: d.Subscription.Keys.P256DH}}
	urgency := webpush.UrgencyHigh
	if n.Type == KindClear {
		urgency = webpush.UrgencyNormal
	}
	resp, err := webpush.SendNotificationWithContext(ctx, body, sub, &webpush.Options{
		HTTPClient: w.cfg.Client, Subscriber: w.cfg.Subject, Topic: n.CollapseKey(), TTL: int(w.cfg.TTL.Seconds()),
		Urgency: urgency, VAPIDPublicKey: w.cfg.VAPIDPublicKey, VAPIDPrivateKey: w.cfg.VAPIDPrivateKey,
	})
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return &RetryError{Err: fmt.Errorf("web push: %w", err)}
	}
	defer resp.Body.Close()
	detail, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return httpOutcome("web push", resp, detail)
}

// httpOutcome classifies a provider's HTTP answer: 2xx is success, 404
// and 410 gone, 429 and 5xx retryable.
func httpOutcome(provider string, resp *http.Response, detail []byte) error {
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		return nil
	case s == http.StatusNotFound || s == http.StatusGone:
		return fmt.Errorf("%s: %d %s: %w", provider, s, detail, ErrGone)
	case s == http.StatusTooManyRequests || s >= 500:
		return &RetryError{Err: fmt.Errorf("%s: %d %s", provider, s, detail), RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	default:
		return fmt.Errorf("%s: %d %s", provider, s, detail)
	}
}

// retryAfter parses a Retry-After header: seconds, or an HTTP date; 0
// when absent or unreadable.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// VAPIDKeys is an application server's VAPID key pair, base64url.
type VAPIDKeys struct {
	PublicKey  string `json:"public_key"`
	PrivateKey string `json:"private_key"`
}

// LoadOrCreateVAPIDKeys reads the VAPID key pair kept at path, or makes
// one and keeps it there (readable by the owner only) if there is none:
// the embedded default's keys, which must outlive restarts since every
// browser subscription is bound to the public key.
func LoadOrCreateVAPIDKeys(path string) (VAPIDKeys, error) {
	var k VAPIDKeys
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &k); err != nil || k.PublicKey == "" || k.PrivateKey == "" {
			return VAPIDKeys{}, fmt.Errorf("reading the VAPID keys in %s: not a key pair", path)
		}
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return VAPIDKeys{}, fmt.Errorf("reading the VAPID keys: %w", err)
	}
	if k.PrivateKey, k.PublicKey, err = webpush.GenerateVAPIDKeys(); err != nil {
		return VAPIDKeys{}, fmt.Errorf("making VAPID keys: %w", err)
	}
	if raw, err = json.Marshal(k); err != nil {
		return VAPIDKeys{}, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return VAPIDKeys{}, fmt.Errorf("keeping the VAPID keys: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".vapid-*")
	if err != nil {
		return VAPIDKeys{}, fmt.Errorf("keeping the VAPID keys: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return VAPIDKeys{}, fmt.Errorf("keeping the VAPID keys: %w", err)
	}
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return VAPIDKeys{}, fmt.Errorf("keeping the VAPID keys: %w", err)
	}
	// Link, not rename: of two processes starting at once, the second
	// fails and reads the first one's keys.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateVAPIDKeys(path)
		}
		return VAPIDKeys{}, fmt.Errorf("keeping the VAPID keys: %w", err)
	}
	return k, nil
}
