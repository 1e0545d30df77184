// Settings: the registrations and notification settings of chat.push,
// read whole on every start.

package push

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// Settings holds the latest registration of every device and the latest
// notification settings of every user and conversation, folded from
// chat.push. It is safe for concurrent use.
type Settings struct {
	mu      sync.RWMutex
	devices map[string]map[string]*schemas.DeviceRegisteredV1 // user -> device
	convs   map[convKey]*schemas.ConversationNotificationsV1
	users   map[string]*schemas.UserNotificationsV1
	ready   chan struct{}
}

type convKey struct{ user, conv string }

// NewSettings returns empty Settings; Follow fills them.
func NewSettings() *Settings {
	return &Settings{
		devices: make(map[string]map[string]*schemas.DeviceRegisteredV1),
		convs:   make(map[convKey]*schemas.ConversationNotificationsV1),
		users:   make(map[string]*schemas.UserNotificationsV1),
		ready:   make(chan struct{}),
	}
}

// Ready is closed once Follow has read chat.push up to where it stood
// when Follow started.
func (s *Settings) Ready() <-chan struct{} { return s.ready }

// Apply folds one decoded chat.push record.
func (s *Settings) Apply(v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e := v.(type) {
	case *schemas.DeviceRegisteredV1:
		if s.devices[e.UserID] == nil {
			s.devices[e.UserID] = make(map[string]*schemas.DeviceRegisteredV1)
		}
		s.devices[e.UserID][e.DeviceID] = e
	case *schemas.DeviceRemovedV1:
		cur := s.devices[e.UserID][e.DeviceID]
		if cur == nil || !e.RegisteredAt.IsZero() && !e.RegisteredAt.Equal(cur.RegisteredAt) {
			return // a newer registration stands
		}
		delete(s.devices[e.UserID], e.DeviceID)
		if len(s.devices[e.UserID]) == 0 {
			delete(s.devices, e.UserID)
		}
	case *schemas.ConversationNotificationsV1:
		s.convs[convKey{e.UserID, e.ConversationID}] = e
	case *schemas.UserNotificationsV1:
		s.users[e.UserID] = e
	}
}

// Count returns how many devices are registered.
func (s *Settings) Count() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, ds := range s.devices {
		n += len(ds)
	}
	return n
}

// Devices returns the ids of user's registered devices.
func (s *Settings) Devices(user string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.devices[user]))
	for d := range s.devices[user] {
		out = append(out, d)
	}
	return out
}

// Device returns the registration of user's device, if there is one.
func (s *Settings) Device(user, device string) (Device, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d := s.devices[user][device]
	if d == nil {
		return Device{}, false
	}
	return *d, true
}

// Conversation returns user's setting for conv; the zero value (level
// all, not muted) when the user has set none.
func (s *Settings) Conversation(user, conv string) schemas.ConversationNotificationsV1 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if c := s.convs[convKey{user, conv}]; c != nil {
		return *c
	}
	return schemas.ConversationNotificationsV1{UserID: user, ConversationID: conv, Level: schemas.NotifyAll}
}

// User returns user's settings; the zero value when the user has set
// none.
func (s *Settings) User(user string) schemas.UserNotificationsV1 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if u := s.users[user]; u != nil {
		return *u
	}
	return schemas.UserNotificationsV1{UserID: user}
}

// Follow reads every partition of chat.push from the start and applies
// what it reads until ctx is done; Ready is closed once it has caught
// up. A record that breaks its schema is logged and skipped (the
// gateway validates what it appends, so there should be none).
func (s *Settings) Follow(ctx context.Context, cluster *kafkalog.Cluster, names kafkalog.Names, log *slog.Logger, readerErrs kafkalog.Counter) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	errs, err := kafkalog.Follow(ctx, cluster, names.Topic(schemas.TopicPush), log, readerErrs, &wg, func(m kafka.Message) {
		if attrs, err := kafkalog.Decode(m); err != nil {
			log.Warn("skipping push record", "partition", m.Partition, "offset", m.Offset, "err", err)
		} else if v, err := schemas.Decode(attrs.Type, m.Value); err != nil {
			log.Warn("skipping push record", "partition", m.Partition, "offset", m.Offset, "err", err)
		} else {
			s.Apply(v)
		}
	})
	if err != nil || ctx.Err() != nil {
		return err
	}
	close(s.ready)
	select {
	case err := <-errs:
		return err
	case <-ctx.Done():
		return nil
	}
}

// allowed reports whether a message notification for user in conv may
// go out at now: neither the user nor the conversation is muted, the
// conversation's level lets it through (mentioned: the user was
// mentioned), and it is not the user's quiet hours.
func (s *Settings) allowed(user, conv string, mentioned bool, now time.Time) bool {
	u, c := s.User(user), s.Conversation(user, conv)
	switch {
	case u.MutedUntil.After(now), c.MutedUntil.After(now):
		return false
	case c.Level == schemas.NotifyNone, c.Level == schemas.NotifyMentions && !mentioned:
		return false
	case u.QuietHours != nil && u.QuietHours.Quiet(now):
		return false
	}
	return true
}
