// The APNs provider: Apple's HTTP/2 provider API with ES256 provider
// tokens.

package push

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/payload"
	"github.com/sideshow/apns2/token"
)

// APNsConfig configures the APNs provider.
type APNsConfig struct {
	// Key is the provider token signing key (the .p8 file's P-256 key),
	// with its KeyID and the TeamID.
	Key           *ecdsa.PrivateKey
	KeyID, TeamID string
	// Topic is the app's bundle id, sent as apns-topic.
	Topic string
	// Host is the APNs server. Default: https://api.push.apple.com.
	Host string
	// Client replaces apns2's HTTP/2 client (tests trust their server's
	// certificate with it). Default: apns2's.
	Client *http.Client
}

// APNs is the APNs provider.
type APNs struct {
	c     *apns2.Client
	topic string
}

var _ Provider = (*APNs)(nil)

// NewAPNs returns the APNs provider.
func NewAPNs(cfg APNsConfig) (*APNs, error) {
	if cfg.Key == nil || cfg.KeyID == "" || cfg.TeamID == "" || cfg.Topic == "" {
		return nil, errors.New("apns needs a key, key id, team id and topic")
	}
	c := apns2.NewTokenClient(&token.Token{AuthKey: cfg.Key, KeyID: cfg.KeyID, TeamID: cfg.TeamID})
	c.Host = apns2.HostProduction
	if cfg.Host != "" {
		c.Host = cfg.Host
	}
	if cfg.Client != nil {
		c.HTTPClient = cfg.Client
	}
	return &APNs{c: c, topic: cfg.Topic}, nil
}

// Send pushes n to the device token: an alert for messages, a background
// push for clears.
func (a *APNs) Send(ctx context.Context, d Device, n Notification) error {
	p := payload.NewPayload().Badge(int(min(n.Badge, 1<<31-1))).ThreadID(n.ConversationID).
		Custom("type", n.Type).Custom("conversation_id", n.ConversationID).Custom("seq", n.Seq)
	note := &apns2.Notification{DeviceToken: d.Token, Topic: a.topic, CollapseID: n.CollapseKey(), Expiration: time.Now().Add(24 * time.Hour)}
	if n.Type == KindClear {
		p = p.ContentAvailable()
		note.PushType, note.Priority = apns2.PushTypeBackground, apns2.PriorityLow
	} else {
		p = p.AlertTitle(n.Title()).AlertBody(n.Body()).Sound("default").Custom("sender_id", n.SenderID).Custom("count", n.Count)
		note.PushType, note.Priority = apns2.PushTypeAlert, apns2.PriorityHigh
	}
	note.Payload = p
	resp, err := a.c.PushWithContext(ctx, note)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return &RetryError{Err: fmt.Errorf("apns: %w", err)}
	}
	switch {
	case resp.Sent():
		return nil
	case resp.Reason == apns2.ReasonUnregistered || resp.Reason == apns2.ReasonBadDeviceToken || resp.StatusCode == http.StatusGone:
		return fmt.Errorf("apns: %d %s: %w", resp.StatusCode, resp.Reason, ErrGone)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		// APNs sends no Retry-After.
		return &RetryError{Err: fmt.Errorf("apns: %d %s", resp.StatusCode, resp.Reason)}
	default:
		return fmt.Errorf("apns: %d %s", resp.StatusCode, resp.Reason)
	}
}
