// The Web Push provider (RFC 8030, payload encryption RFC 8291, VAPID
// RFC 8292).

package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
