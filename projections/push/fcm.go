// The FCM provider: Firebase Cloud Messaging's HTTP v1 API.

package push

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"google.golang.org/api/option"
)

// FCMConfig configures the FCM provider.
type FCMConfig struct {
	// ProjectID is the Firebase project.
	ProjectID string
	// Options are the client's: the credentials (option.WithAuthCredentialsFile
	// with a service account, option.WithTokenSource) and, for a server
	// other than fcm.googleapis.com, option.WithEndpoint.
	Options []option.ClientOption
}

// FCM is the FCM provider.
type FCM struct{ c *messaging.Client }

var _ Provider = (*FCM)(nil)

// NewFCM returns the FCM provider.
func NewFCM(ctx context.Context, cfg FCMConfig) (*FCM, error) {
	if cfg.ProjectID == "" {
		return nil, errors.New("fcm needs a project id")
	}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: cfg.ProjectID}, cfg.Options...)
	if err != nil {
		return nil, fmt.Errorf("fcm: %w", err)
	}
	c, err := app.Messaging(ctx)
	if err != nil {
		return nil, fmt.Errorf("fcm: %w", err)
	}
	return &FCM{c: c}, nil
}

// Send sends n to the registration token: a notification message for
// messages, a data-only message for clears. The client library itself
// retries a 503 (up to four times, honouring Retry-After) before it
// answers.
func (f *FCM) Send(ctx context.Context, d Device, n Notification) error {
	data := map[string]string{
		"type": n.Type, "conversation_id": n.ConversationID, "seq": strconv.FormatUint(n.Seq, 10),
		"badge": strconv.FormatUint(n.Badge, 10),
	}
	ttl := 24 * time.Hour
	//lint:ignore SA1019 devices register with FCM registration tokens, which messages:send takes as "token"
	m := &messaging.Message{Token: d.Token, Data: data, Android: &messaging.AndroidConfig{CollapseKey: n.CollapseKey(), TTL: &ttl, Priority: "high"}}
	if n.Type == KindClear {
		m.Android.Priority = "normal"
	} else {
		data["sender_id"], data["count"] = n.SenderID, strconv.Itoa(n.Count)
		if n.Preview != "" {
			data["preview"] = n.Preview
		}
		m.Notification = &messaging.Notification{Title: n.Title(), Body: n.Body()}
		m.Android.Notification = &messaging.AndroidNotification{Tag: n.CollapseKey()}
	}
	_, err := f.c.Send(ctx, m)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return err
	case messaging.IsUnregistered(err):
		return fmt.Errorf("fcm: %w: %w", err, ErrGone)
	case errorutils.IsResourceExhausted(err), errorutils.IsUnavailable(err), errorutils.IsInternal(err):
		var after time.Duration
		if resp := errorutils.HTTPResponse(err); resp != nil {
			after = retryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
		return &RetryError{Err: fmt.Errorf("fcm: %w", err), RetryAfter: after}
	case errorutils.HTTPResponse(err) == nil:
		return &RetryError{Err: fmt.Errorf("fcm: %w", err)} // no answer at all
	default:
		return fmt.Errorf("fcm: %w", err)
	}
}
