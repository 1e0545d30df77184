// Push: device registrations and notification settings, on chat.push.

package schemas

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Push providers: how a registered device is reached while it has no
// live socket.
const (
	// ProviderWebPush: a browser's Web Push subscription (RFC 8030,
	// payloads encrypted per RFC 8291, VAPID per RFC 8292).
	ProviderWebPush = "webpush"
	// ProviderFCM: a Firebase Cloud Messaging registration token (HTTP
	// v1 API).
	ProviderFCM = "fcm"
	// ProviderAPNs: an Apple Push Notification service device token
	// (HTTP/2 provider API).
	ProviderAPNs = "apns"
)

// Notification levels of a conversation setting.
const (
	// NotifyAll: every message notifies.
	NotifyAll = "all"
	// NotifyMentions: only messages that mention the user (@user_id in
	// the body) notify.
	NotifyMentions = "mentions"
	// NotifyNone: nothing notifies.
	NotifyNone = "none"
)

// Reasons a device registration was removed.
const (
	// RemovedByUser: the user deleted the registration.
	RemovedByUser = "user"
	// RemovedGone: the provider said the token or subscription no longer
	// exists (Web Push 404/410, APNs Unregistered/BadDeviceToken, FCM
	// UNREGISTERED).
	RemovedGone = "gone"
)

// WebPushSubscriptionV1 is a browser's PushSubscription as its toJSON()
// gives it: the push service endpoint and the keys payloads are
// encrypted to.
type WebPushSubscriptionV1 struct {
	Endpoint string `json:"endpoint"`
	Keys     struct {
		// P256DH is the subscriber's P-256 public key, base64url.
		P256DH string `json:"p256dh"`
		// Auth is the 16-byte authentication secret, base64url.
		Auth string `json:"auth"`
	} `json:"keys"`
}

// DeviceRegisteredV1 registers (or replaces) how one device of a user is
// pushed to (chat.push.device.registered.v1). Exactly one of Token (fcm,
// apns) and Subscription (webpush) is set.
type DeviceRegisteredV1 struct {
	UserID       string                 `json:"user_id"`
	DeviceID     string                 `json:"device_id"`
	Provider     string                 `json:"provider"`
	Token        string                 `json:"token,omitempty"`
	Subscription *WebPushSubscriptionV1 `json:"subscription,omitempty"`
	// Locale is the device's BCP 47 language tag, for the texts of its
	// notifications; empty: the server's default.
	Locale       string    `json:"locale,omitempty"`
	RegisteredAt time.Time `json:"registered_at"`
}

// DeviceRemovedV1 removes a device's registration
// (chat.push.device.removed.v1). When RegisteredAt is set, only the
// registration of that time is removed: a removal for a gone token never
// removes a newer registration of the same device.
type DeviceRemovedV1 struct {
	UserID       string    `json:"user_id"`
	DeviceID     string    `json:"device_id"`
	Reason       string    `json:"reason"`
	RegisteredAt time.Time `json:"registered_at,omitzero"`
	RemovedAt    time.Time `json:"removed_at"`
}

// ConversationNotificationsV1 is a user's notification setting for one
// conversation (chat.push.conversation.notifications.v1); the latest
// replaces the previous.
type ConversationNotificationsV1 struct {
	UserID         string `json:"user_id"`
	ConversationID string `json:"conversation_id"`
	Level          string `json:"level"`
	// MutedUntil, when in the future, silences the conversation until
	// then whatever Level says.
	MutedUntil time.Time `json:"muted_until,omitzero"`
	At         time.Time `json:"at"`
}

// QuietHoursV1 is a daily span, in a time zone, during which nothing is
// pushed to a user's devices. Start and End are "HH:MM" (24 h); End
// before Start spans midnight.
type QuietHoursV1 struct {
	Start    string `json:"start"`
	End      string `json:"end"`
	TimeZone string `json:"time_zone"`
}

// UserNotificationsV1 is a user's notification settings for every
// conversation (chat.push.user.notifications.v1); the latest replaces
// the previous.
type UserNotificationsV1 struct {
	UserID string `json:"user_id"`
	// HidePreviews leaves the message text out of every notification.
	HidePreviews bool `json:"hide_previews"`
	// MutedUntil, when in the future, silences every conversation.
	MutedUntil time.Time     `json:"muted_until,omitzero"`
	QuietHours *QuietHoursV1 `json:"quiet_hours,omitempty"`
	At         time.Time     `json:"at"`
}

// Limits of a registration.
const (
	MaxPushTokenBytes    = 4096
	MaxPushEndpointBytes = 2048
)

// PushKey is the record key of a chat.push record: the latest record of
// each key survives compaction, so every key names one thing that is set
// (a device's registration, a conversation's setting, a user's settings).
func PushKey(v any) string {
	switch e := v.(type) {
	case *DeviceRegisteredV1:
		return "device/" + e.UserID + "/" + e.DeviceID
	case *DeviceRemovedV1:
		return "device/" + e.UserID + "/" + e.DeviceID
	case *ConversationNotificationsV1:
		return "conversation/" + e.UserID + "/" + e.ConversationID
	case *UserNotificationsV1:
		return "user/" + e.UserID
	}
	return ""
}

func checkUserDevice(user, device string) []error {
	var errs []error
	if !ValidUserID(user) {
		errs = append(errs, fmt.Errorf("bad user id %q", user))
	}
	if !ValidDeviceID(device) {
		errs = append(errs, fmt.Errorf("bad device id %q", device))
	}
	return errs
}

func (e *DeviceRegisteredV1) validate() error {
	errs := checkUserDevice(e.UserID, e.DeviceID)
	switch e.Provider {
	case ProviderFCM, ProviderAPNs:
		if e.Token == "" || len(e.Token) > MaxPushTokenBytes {
			errs = append(errs, fmt.Errorf("a %s registration needs a token of 1 to %d bytes", e.Provider, MaxPushTokenBytes))
		}
		if e.Subscription != nil {
			errs = append(errs, fmt.Errorf("a %s registration has no subscription", e.Provider))
		}
	case ProviderWebPush:
		if e.Token != "" {
			errs = append(errs, errors.New("a webpush registration has no token"))
		}
		if e.Subscription == nil {
			errs = append(errs, errors.New("a webpush registration needs a subscription"))
		} else if err := e.Subscription.validate(); err != nil {
			errs = append(errs, err)
		}
	default:
		errs = append(errs, fmt.Errorf("bad provider %q: webpush, fcm or apns", e.Provider))
	}
	if len(e.Locale) > 35 {
		errs = append(errs, errors.New("locale longer than 35 bytes"))
	}
	if e.RegisteredAt.IsZero() {
		errs = append(errs, errors.New("no registered_at"))
	}
	return errors.Join(errs...)
}

func (s *WebPushSubscriptionV1) validate() error {
	var errs []error
	u, err := url.Parse(s.Endpoint)
	if err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || len(s.Endpoint) > MaxPushEndpointBytes {
		errs = append(errs, fmt.Errorf("bad subscription endpoint %q: an absolute http(s) URL of at most %d bytes", s.Endpoint, MaxPushEndpointBytes))
	}
	// A P-256 point uncompressed is 65 bytes (87 in base64url), the
	// auth secret 16 (22).
	if len(s.Keys.P256DH) < 86 || len(s.Keys.P256DH) > 90 {
		errs = append(errs, errors.New("bad subscription key p256dh"))
	}
	if len(s.Keys.Auth) < 21 || len(s.Keys.Auth) > 24 {
		errs = append(errs, errors.New("bad subscription key auth"))
	}
	return errors.Join(errs...)
}

func (e *DeviceRemovedV1) validate() error {
	errs := checkUserDevice(e.UserID, e.DeviceID)
	if e.Reason != RemovedByUser && e.Reason != RemovedGone {
		errs = append(errs, fmt.Errorf("bad reason %q", e.Reason))
	}
	if e.RemovedAt.IsZero() {
		errs = append(errs, errors.New("no removed_at"))
	}
	return errors.Join(errs...)
}

func (e *ConversationNotificationsV1) validate() error {
	var errs []error
	if !ValidUserID(e.UserID) {
		errs = append(errs, fmt.Errorf("bad user id %q", e.UserID))
	}
	if !ValidConversationID(e.ConversationID) {
		errs = append(errs, fmt.Errorf("bad conversation id %q", e.ConversationID))
	}
	if e.Level != NotifyAll && e.Level != NotifyMentions && e.Level != NotifyNone {
		errs = append(errs, fmt.Errorf("bad level %q: all, mentions or none", e.Level))
	}
	if e.At.IsZero() {
		errs = append(errs, errors.New("no at"))
	}
	return errors.Join(errs...)
}

func (e *UserNotificationsV1) validate() error {
	var errs []error
	if !ValidUserID(e.UserID) {
		errs = append(errs, fmt.Errorf("bad user id %q", e.UserID))
	}
	if e.QuietHours != nil {
		if err := e.QuietHours.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if e.At.IsZero() {
		errs = append(errs, errors.New("no at"))
	}
	return errors.Join(errs...)
}

// Validate checks that Start and End are HH:MM and TimeZone an IANA zone
// name this server knows.
func (q *QuietHoursV1) Validate() error {
	var errs []error
	for _, s := range []string{q.Start, q.End} {
		if _, err := ParseClock(s); err != nil {
			errs = append(errs, err)
		}
	}
	if q.Start == q.End && q.Start != "" {
		errs = append(errs, errors.New("quiet hours start and end are the same"))
	}
	if _, err := time.LoadLocation(q.TimeZone); err != nil || q.TimeZone == "" || q.TimeZone == "Local" {
		errs = append(errs, fmt.Errorf("bad time zone %q: an IANA name such as Europe/Berlin", q.TimeZone))
	}
	return errors.Join(errs...)
}

// ParseClock parses "HH:MM" (00:00 to 23:59) into minutes after
// midnight.
func ParseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, fmt.Errorf("bad time of day %q: HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// Quiet reports whether t falls within the quiet hours.
func (q *QuietHoursV1) Quiet(t time.Time) bool {
	loc, err := time.LoadLocation(q.TimeZone)
	if err != nil {
		return false
	}
	start, err1 := ParseClock(q.Start)
	end, err2 := ParseClock(q.End)
	if err1 != nil || err2 != nil {
		return false
	}
	lt := t.In(loc)
	m := lt.Hour()*60 + lt.Minute()
	if start < end {
		return m >= start && m < end
	}
	return m >= start || m < end
}
