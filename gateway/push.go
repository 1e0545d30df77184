// Push notifications: device registrations and notification settings,
// appended to chat.push for the push projection.

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/parley-chat/parley/schemas"
)

// PushAppender appends records of chat.push (producers.PushWriter).
type PushAppender interface {
	Append(ctx context.Context, v any) error
}

// PushConfig is what the gateway needs of push notifications.
type PushConfig struct {
	// Appender records registrations and settings; nil answers 503 to
	// them.
	Appender PushAppender
	// VAPIDPublicKey is the application server key browsers subscribe
	// with (base64url); empty when Web Push is not configured.
	VAPIDPublicKey string
	// Providers are the providers the push role is configured with; a
	// registration for another is refused.
	Providers []string
	// WebPushHosts are the push services a Web Push subscription's
	// endpoint may be at: host names, each matching itself and its
	// subdomains; "*" allows any. The server sends requests to these
	// endpoints, so they must not name internal hosts.
	WebPushHosts []string
}

// webPushHostAllowed reports whether endpoint is at one of hosts.
func webPushHostAllowed(endpoint string, hosts []string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	h := strings.ToLower(u.Hostname())
	for _, a := range hosts {
		a = strings.ToLower(a)
		if a == "*" || h == a || strings.HasSuffix(h, "."+a) {
			return true
		}
	}
	return false
}

// pushConfigResponse is the answer of GET /v1/push/config.
type pushConfigResponse struct {
	Providers      []string `json:"providers"`
	VAPIDPublicKey string   `json:"vapid_public_key,omitempty"`
}

// getPushConfig serves GET /v1/push/config: the providers devices may
// register with, and the VAPID key browsers subscribe with.
func (s *Server) getPushConfig(w http.ResponseWriter, _ *http.Request) {
	p := s.cfg.Push
	providers := p.Providers
	if p.Appender == nil || providers == nil {
		providers = []string{}
	}
	writeJSON(w, http.StatusOK, pushConfigResponse{Providers: providers, VAPIDPublicKey: p.VAPIDPublicKey})
}

// registrationRequest is the body of PUT /v1/devices/{device_id}/push.
type registrationRequest struct {
	Provider     string `json:"provider"`
	Token        string `json:"token"`
	Subscription *struct {
		Endpoint string `json:"endpoint"`
		// ExpirationTime is what PushSubscription.toJSON() gives; not
		// kept.
		ExpirationTime *float64 `json:"expirationTime"`
		Keys           struct {
			P256DH string `json:"p256dh"`
			Auth   string `json:"auth"`
		} `json:"keys"`
	} `json:"subscription"`
	Locale string `json:"locale"`
}

// registrationResponse answers a registration.
type registrationResponse struct {
	DeviceID     string    `json:"device_id"`
	Provider     string    `json:"provider"`
	RegisteredAt time.Time `json:"registered_at"`
}

// pushAppender returns the appender, or the error to answer with.
func (s *Server) pushAppender() (PushAppender, *apiError) {
	if s.cfg.Push.Appender == nil {
		return nil, newError(codeUnavailable, "push notifications are not enabled on this server")
	}
	return s.cfg.Push.Appender, nil
}

// pushDevice returns the appender and the {device_id} of the path, a
// device of the authenticated user, or answers why not.
func (s *Server) pushDevice(w http.ResponseWriter, r *http.Request) (PushAppender, string, bool) {
	a, e := s.pushAppender()
	if e != nil {
		writeProblem(w, e)
		return nil, "", false
	}
	device, ok := s.ownDevice(w, r, "device_id")
	if !ok {
		return nil, "", false
	}
	return a, device, true
}

// appendPush appends v and answers the failure, if any.
func (s *Server) appendPush(ctx context.Context, a PushAppender, v any) *apiError {
	if err := a.Append(ctx, v); err != nil {
		s.log.Error("appending to chat.push", "err", err)
		return newError(codeUnavailable, "could not record it; retry")
	}
	return nil
}

// putDevicePush serves PUT /v1/devices/{device_id}/push: the caller
// registers (or replaces) how one of their devices is pushed to. The
// device is the caller's by construction: registrations are keyed by the
// authenticated user.
func (s *Server) putDevicePush(w http.ResponseWriter, r *http.Request) {
	me := identity(r.Context()).UserID
	a, device, ok := s.pushDevice(w, r)
	if !ok {
		return
	}
	var req registrationRequest
	if e := s.decodeBody(w, r, &req); e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	reg := &schemas.DeviceRegisteredV1{UserID: me, DeviceID: device, Provider: req.Provider, Token: req.Token, Locale: req.Locale, RegisteredAt: now()}
	if req.Subscription != nil {
		reg.Subscription = &schemas.WebPushSubscriptionV1{Endpoint: req.Subscription.Endpoint}
		reg.Subscription.Keys.P256DH, reg.Subscription.Keys.Auth = req.Subscription.Keys.P256DH, req.Subscription.Keys.Auth
	}
	if err := validPush(schemas.TypePushDeviceRegistered, reg); err != nil {
		writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, err.Error())))
		return
	}
	switch {
	case !contains(s.cfg.Push.Providers, req.Provider):
		writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, "provider "+req.Provider+" is not configured on this server")))
		return
	case req.Provider == schemas.ProviderWebPush && !webPushHostAllowed(reg.Subscription.Endpoint, s.cfg.Push.WebPushHosts):
		writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, "the subscription's endpoint is not at a push service this server sends to")))
		return
	}
	if e := s.appendPush(r.Context(), a, reg); e != nil {
		writeProblem(w, e)
		return
	}
	writeJSON(w, http.StatusOK, registrationResponse{DeviceID: device, Provider: reg.Provider, RegisteredAt: reg.RegisteredAt})
}

// deleteDevicePush serves DELETE /v1/devices/{device_id}/push: the
// caller's device is pushed to no more. Deleting a device that is not
// registered is no error.
func (s *Server) deleteDevicePush(w http.ResponseWriter, r *http.Request) {
	me := identity(r.Context()).UserID
	a, device, ok := s.pushDevice(w, r)
	if !ok {
		return
	}
	if e := s.appendPush(r.Context(), a, &schemas.DeviceRemovedV1{UserID: me, DeviceID: device, Reason: schemas.RemovedByUser, RemovedAt: now()}); e != nil {
		writeProblem(w, e)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// putConversationNotifications serves PUT
// /v1/conversations/{id}/notifications: the caller's setting for a
// conversation they are a member of.
func (s *Server) putConversationNotifications(w http.ResponseWriter, r *http.Request) {
	me := identity(r.Context()).UserID
	a, e := s.pushAppender()
	if e != nil {
		writeProblem(w, e)
		return
	}
	conv := chi.URLParam(r, "id")
	if _, e := s.member(r.Context(), me, conv); e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	var req struct {
		Level      string    `json:"level"`
		MutedUntil time.Time `json:"muted_until"`
	}
	if e := s.decodeBody(w, r, &req); e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	set := &schemas.ConversationNotificationsV1{UserID: me, ConversationID: conv, Level: req.Level, MutedUntil: req.MutedUntil.UTC(), At: now()}
	if req.MutedUntil.IsZero() {
		set.MutedUntil = time.Time{}
	}
	s.appendSetting(w, r, a, schemas.TypeConversationNotifications, set)
}

// putNotifications serves PUT /v1/notifications: the caller's settings
// for every conversation.
func (s *Server) putNotifications(w http.ResponseWriter, r *http.Request) {
	me := identity(r.Context()).UserID
	a, e := s.pushAppender()
	if e != nil {
		writeProblem(w, e)
		return
	}
	var req struct {
		HidePreviews bool                  `json:"hide_previews"`
		MutedUntil   time.Time             `json:"muted_until"`
		QuietHours   *schemas.QuietHoursV1 `json:"quiet_hours"`
	}
	if e := s.decodeBody(w, r, &req); e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	set := &schemas.UserNotificationsV1{UserID: me, HidePreviews: req.HidePreviews, QuietHours: req.QuietHours, At: now()}
	if !req.MutedUntil.IsZero() {
		set.MutedUntil = req.MutedUntil.UTC()
	}
	s.appendSetting(w, r, a, schemas.TypeUserNotifications, set)
}

// appendSetting appends set, a notification setting of type typ, once
// it is valid, and answers with it.
func (s *Server) appendSetting(w http.ResponseWriter, r *http.Request, a PushAppender, typ string, set any) {
	if err := validPush(typ, set); err != nil {
		writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, err.Error())))
		return
	}
	if e := s.appendPush(r.Context(), a, set); e != nil {
		writeProblem(w, e)
		return
	}
	writeJSON(w, http.StatusOK, set)
}

// validPush checks v, a record of type typ, as the push projection will
// decode it, and returns what is wrong in one line.
func validPush(typ string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := schemas.Decode(typ, raw); err != nil {
		msg := strings.TrimPrefix(err.Error(), schemas.ErrInvalid.Error()+": "+typ+": ")
		return errors.New(strings.ReplaceAll(msg, "\n", "; "))
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
