package push_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/push"
	"github.com/parley-chat/parley/projections/push/pushtest"
	"github.com/parley-chat/parley/schemas"
)

// TestNotifiesDevicesNotConnected: a message notifies, through each of
// the three providers, every registered device of the members but the
// sender that has no live socket — once, with the preview, sender, seq
// and the unread badge — and a burst within the window is one more
// notification with its count. A connected device and the sender's own
// devices get nothing.
func TestNotifiesDevicesNotConnected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerWebPush("bob", "bob-laptop")
	e.registerToken("bob", "bob-iphone", schemas.ProviderAPNs, "a1b2c3d4e5f60718")
	e.registerToken("bob", "bob-android", schemas.ProviderFCM, "fcm-token-bob")
	e.registerWebPush("carol", "carol-laptop")
	e.registerWebPush("alice", "alice-laptop")
	disconnect := e.node.Connect(context.Background(), "carol", "carol-laptop")
	defer disconnect()
	eventually(t, "carol's laptop connected", func() bool { return e.reg.Connected("carol", "carol-laptop") })
	e.start(push.Config{Window: 2 * time.Second, PreviewRunes: 20})
	e.waitRegistered("bob", "bob-laptop", "bob-iphone", "bob-android")
	e.waitRegistered("alice", "alice-laptop")

	e.create("g1", "alice", "bob", "carol")
	e.send("g1", "alice", "Lunch at noon? The new place on the corner has a terrace")
	eventually(t, "bob's three devices notified", func() bool {
		return len(e.webPushes("bob-laptop")) == 1 && len(e.apnsPushes("a1b2c3d4e5f60718")) == 1 && len(e.fcmPushes("fcm-token-bob")) == 1
	})
	wn := e.webPushes("bob-laptop")[0]
	if wn.Type != push.KindMessage || wn.ConversationID != "g1" || wn.Seq != 1 || wn.SenderID != "alice" || wn.Count != 1 || wn.Badge != 1 || wn.Preview != "Lunch at noon? The…" {
		t.Errorf("web push payload %+v", wn)
	}
	wm := e.wp.Received()[0]
	if wm.Urgency != "high" || wm.TTL != 86400 || wm.Topic == "" || wm.Subject != "mailto:ops@example.org" {
		t.Errorf("web push headers: urgency %q, ttl %d, topic %q, subject %q", wm.Urgency, wm.TTL, wm.Topic, wm.Subject)
	}
	am := e.apnsPushes("a1b2c3d4e5f60718")[0]
	aps := am.Payload["aps"].(map[string]any)
	alert := aps["alert"].(map[string]any)
	if am.PushType != "alert" || am.Priority != "10" || aps["badge"] != float64(1) || aps["thread-id"] != "g1" || alert["title"] != "alice" || alert["body"] != "Lunch at noon? The…" || am.Payload["seq"] != float64(1) || am.CollapseID != wm.Topic {
		t.Errorf("apns push %+v", am)
	}
	fm := e.fcmPushes("fcm-token-bob")[0]
	if fm.Data["conversation_id"] != "g1" || fm.Data["seq"] != "1" || fm.Data["badge"] != "1" || fm.Data["sender_id"] != "alice" || fm.Notification == nil || fm.Notification.Body != "Lunch at noon? The…" || fm.Android == nil || fm.Android.CollapseKey != wm.Topic {
		t.Errorf("fcm message %+v", fm)
	}

	// A burst inside the window: one more notification, with the count.
	e.send("g1", "alice", "one", "two", "three")
	eventually(t, "the coalesced notification", func() bool {
		return len(e.webPushes("bob-laptop")) == 2 && len(e.apnsPushes("a1b2c3d4e5f60718")) == 2 && len(e.fcmPushes("fcm-token-bob")) == 2
	})
	e.settled()
	wn = e.webPushes("bob-laptop")[1]
	if wn.Seq != 4 || wn.Count != 3 || wn.Badge != 4 || wn.Preview != "three" {
		t.Errorf("coalesced web push %+v, want seq 4, count 3, badge 4, preview three", wn)
	}
	if body := e.apnsPushes("a1b2c3d4e5f60718")[1].Payload["aps"].(map[string]any)["alert"].(map[string]any)["body"]; body != "three (+2 more)" {
		t.Errorf("coalesced apns body %q", body)
	}
	if got := e.webPushes("carol-laptop"); len(got) != 0 {
		t.Errorf("carol's connected laptop got %v", got)
	}
	if got := e.webPushes("alice-laptop"); len(got) != 0 {
		t.Errorf("the sender's own device got %v", got)
	}
	for _, p := range []string{schemas.ProviderWebPush, schemas.ProviderAPNs, schemas.ProviderFCM} {
		if n := e.counter(p, "sent"); n != 2 {
			t.Errorf("%s sent counter %d, want 2", p, n)
		}
	}
	if n := testutilCount(t, e, "parley_push_latency_seconds"); n != 6 {
		t.Errorf("latency histogram has %d observations, want 6", n)
	}

	// Once carol disconnects, her laptop is notified too.
	disconnect()
	eventually(t, "carol's laptop disconnected", func() bool { return !e.reg.Connected("carol", "carol-laptop") })
	e.send("g1", "bob", "carol?")
	eventually(t, "carol notified", func() bool { return len(e.webPushes("carol-laptop")) == 1 })
	if n := e.webPushes("carol-laptop")[0]; n.Badge != 5 || n.Seq != 5 || n.SenderID != "bob" {
		t.Errorf("carol's notification %+v, want badge 5 (nothing read)", n)
	}
}

// TestSettings: per-conversation levels and mutes, a user's mute, quiet
// hours and hidden previews decide what is sent. Dave, a member of every
// conversation without settings, is the witness: once his notification of
// a conversation's last message has arrived and nothing is pending, the
// conversation's messages were handled for Bob too (one partition: they
// were applied in the same batch or before).
func TestSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerWebPush("bob", "bob-laptop")
	e.registerWebPush("dave", "dave-laptop")
	e.start(push.Config{Window: time.Millisecond})
	e.waitRegistered("bob", "bob-laptop")
	e.waitRegistered("dave", "dave-laptop")
	notes := func(device, conv string) []push.Notification {
		var out []push.Notification
		for _, p := range e.webPushes(device) {
			if p.ConversationID == conv {
				out = append(out, p)
			}
		}
		return out
	}
	// send sends bodies to conv and waits until they were handled.
	send := func(conv string, bodies ...string) {
		t.Helper()
		last := e.send(conv, "alice", bodies...)
		eventually(t, "dave's notification of "+conv, func() bool {
			ns := notes("dave-laptop", conv)
			return len(ns) > 0 && ns[len(ns)-1].Seq == last
		})
		e.settled()
	}
	now := time.Now().UTC()
	setConv := func(conv, level string, until time.Time) {
		e.appendPush(&schemas.ConversationNotificationsV1{UserID: "bob", ConversationID: conv, Level: level, MutedUntil: until, At: time.Now().UTC()})
		eventually(t, "conversation setting", func() bool {
			s := e.p.Settings().Conversation("bob", conv)
			return s.Level == level && s.MutedUntil.Equal(until)
		})
	}

	e.create("none", "alice", "bob", "dave")
	setConv("none", schemas.NotifyNone, time.Time{})
	send("none", "hello")
	if got := notes("bob-laptop", "none"); len(got) != 0 {
		t.Errorf("level none: got %v", got)
	}

	e.create("mentions", "alice", "bob", "dave")
	setConv("mentions", schemas.NotifyMentions, time.Time{})
	send("mentions", "hello all", "mail bob@bobby.example", "@bobby hi")
	send("mentions", "@bob look at this")
	if got := notes("bob-laptop", "mentions"); len(got) != 1 || got[0].Seq != 4 {
		t.Errorf("level mentions: got %+v, want only seq 4 (@bob)", got)
	}

	e.create("muted", "alice", "bob", "dave")
	setConv("muted", schemas.NotifyAll, now.Add(time.Hour))
	send("muted", "psst")
	setConv("muted", schemas.NotifyAll, now.Add(-time.Minute)) // a mute that has ended
	send("muted", "now?")
	if got := notes("bob-laptop", "muted"); len(got) != 1 || got[0].Seq != 2 {
		t.Errorf("muted until: got %+v, want only seq 2 (after the mute ended)", got)
	}

	// Quiet hours around now, in a zone far from UTC.
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	lt := time.Now().In(tokyo)
	quiet := &schemas.QuietHoursV1{Start: lt.Add(-time.Hour).Format("15:04"), End: lt.Add(time.Hour).Format("15:04"), TimeZone: "Asia/Tokyo"}
	e.appendPush(&schemas.UserNotificationsV1{UserID: "bob", QuietHours: quiet, At: time.Now().UTC()})
	eventually(t, "quiet hours", func() bool { return e.p.Settings().User("bob").QuietHours != nil })
	e.create("quiet", "alice", "bob", "dave")
	send("quiet", "late night")
	if got := notes("bob-laptop", "quiet"); len(got) != 0 {
		t.Errorf("quiet hours: got %v", got)
	}

	// Hidden previews (the quiet hours go: settings replace each other),
	// then a user-wide mute.
	e.appendPush(&schemas.UserNotificationsV1{UserID: "bob", HidePreviews: true, At: time.Now().UTC()})
	eventually(t, "hide previews", func() bool { return e.p.Settings().User("bob").HidePreviews })
	e.create("hidden", "alice", "bob", "dave")
	send("hidden", "secret plans")
	if got := notes("bob-laptop", "hidden"); len(got) != 1 || got[0].Preview != "" || got[0].Count != 1 {
		t.Errorf("hidden previews: got %+v, want one notification without preview", got)
	}
	if got := notes("dave-laptop", "hidden"); len(got) != 1 || got[0].Preview != "secret plans" {
		t.Errorf("dave's preview: %+v", got)
	}
	e.appendPush(&schemas.UserNotificationsV1{UserID: "bob", MutedUntil: now.Add(time.Hour), At: time.Now().UTC()})
	eventually(t, "user mute", func() bool { return e.p.Settings().User("bob").MutedUntil.After(now) })
	send("hidden", "more")
	if got := notes("bob-laptop", "hidden"); len(got) != 1 {
		t.Errorf("user muted: got %+v", got)
	}
}

// TestProviderErrors: 429 and 5xx answers are retried with backoff until
// accepted, each retry counted; a registration the provider says is gone
// is removed by an event on chat.push, and not tried again.
func TestProviderErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerWebPush("bob", "bob-laptop")
	e.registerWebPush("bob", "bob-old-laptop")
	e.registerToken("bob", "bob-iphone", schemas.ProviderAPNs, "aa00")
	e.registerToken("bob", "bob-old-iphone", schemas.ProviderAPNs, "bb11")
	e.registerToken("bob", "bob-ipad", schemas.ProviderAPNs, "cc22")
	e.registerToken("bob", "bob-android", schemas.ProviderFCM, "fcm-ok")
	e.registerToken("bob", "bob-old-android", schemas.ProviderFCM, "fcm-gone")
	e.wp.Fail("bob-laptop", pushtest.Failure{Status: 429, RetryAfter: 1}, pushtest.Failure{Status: 502})
	e.wp.Fail("bob-old-laptop", pushtest.Failure{Status: 410, Reason: "push subscription has unsubscribed or expired"})
	e.apns.Fail("aa00", pushtest.Failure{Status: 503, Reason: "ServiceUnavailable"}, pushtest.Failure{Status: 429, Reason: "TooManyRequests"})
	e.apns.Unregister("bb11")
	e.apns.Fail("cc22", pushtest.Failure{Status: 400, Reason: "BadDeviceToken"})
	e.fcm.Fail("fcm-ok", pushtest.Failure{Status: 429, RetryAfter: 1, Reason: "QUOTA_EXCEEDED"}, pushtest.Failure{Status: 500, Reason: "INTERNAL"})
	e.fcm.Unregister("fcm-gone")
	e.start(push.Config{})
	e.waitRegistered("bob", "bob-laptop", "bob-old-laptop", "bob-iphone", "bob-old-iphone", "bob-ipad", "bob-android", "bob-old-android")

	e.create("g1", "alice", "bob")
	e.send("g1", "alice", "hi")
	eventually(t, "the healthy devices notified after retries", func() bool {
		return len(e.webPushes("bob-laptop")) == 1 && len(e.apnsPushes("aa00")) == 1 && len(e.fcmPushes("fcm-ok")) == 1
	})
	e.waitRegistered("bob", "bob-laptop", "bob-iphone", "bob-android")
	e.settled()
	if n := e.wp.Attempts("bob-laptop"); n != 3 {
		t.Errorf("web push attempts %d, want 3 (429, 502, accepted)", n)
	}
	if n := e.apns.Attempts("aa00"); n != 3 {
		t.Errorf("apns attempts %d, want 3 (503, 429, accepted)", n)
	}
	if n := e.fcm.Attempts("fcm-ok"); n < 3 {
		t.Errorf("fcm attempts %d, want at least 3 (429, 500, accepted)", n)
	}
	want := map[string][2]int{ // retried, removed
		schemas.ProviderWebPush: {2, 1},
		schemas.ProviderAPNs:    {2, 2},
		schemas.ProviderFCM:     {2, 1},
	}
	for p, w := range want {
		if got := [2]int{e.counter(p, "retried"), e.counter(p, "removed")}; got != w {
			t.Errorf("%s: retried, removed = %v, want %v", p, got, w)
		}
		if n := e.counter(p, "failed"); n != 0 {
			t.Errorf("%s: %d failed", p, n)
		}
	}

	// The removals are events: a role started from the log alone knows
	// only the devices that are left.
	removed := map[string]bool{}
	for _, m := range kafkatest.ReadAll(t, e.k.Cluster, e.k.Names.Topic(schemas.TopicPush)) {
		v, err := schemas.Decode(string(headerOf(m, schemas.HeaderType)), m.Value)
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := v.(*schemas.DeviceRemovedV1); ok {
			if r.Reason != schemas.RemovedGone || r.RegisteredAt.IsZero() || string(m.Key) != schemas.PushKey(r) {
				t.Errorf("removal %+v with key %s", r, m.Key)
			}
			removed[r.DeviceID] = true
		}
	}
	if len(removed) != 4 || !removed["bob-old-laptop"] || !removed["bob-old-iphone"] || !removed["bob-ipad"] || !removed["bob-old-android"] {
		t.Errorf("removal events for %v", removed)
	}

	// A second message goes only to the devices that are left.
	before := e.apns.Attempts("bb11") + e.apns.Attempts("cc22") + e.fcm.Attempts("fcm-gone") + e.wp.Attempts("bob-old-laptop")
	e.send("g1", "alice", "again")
	eventually(t, "the second notification", func() bool { return len(e.webPushes("bob-laptop")) == 2 && len(e.fcmPushes("fcm-ok")) == 2 })
	e.settled()
	if after := e.apns.Attempts("bb11") + e.apns.Attempts("cc22") + e.fcm.Attempts("fcm-gone") + e.wp.Attempts("bob-old-laptop"); after != before {
		t.Errorf("removed registrations were tried again (%d requests, then %d)", before, after)
	}
}

// TestGivesUp: a provider that keeps failing is tried Attempts times,
// then the notification is dropped and counted as failed; a refusal that
// retrying cannot help is not retried at all.
func TestGivesUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerWebPush("bob", "bob-laptop")
	e.registerWebPush("bob", "bob-tablet")
	fs := make([]pushtest.Failure, 3)
	for i := range fs {
		fs[i] = pushtest.Failure{Status: 503}
	}
	e.wp.Fail("bob-laptop", fs...)
	e.wp.Fail("bob-tablet", pushtest.Failure{Status: 413, Reason: "payload too large"})
	e.start(push.Config{Attempts: 3})
	e.waitRegistered("bob", "bob-laptop", "bob-tablet")
	e.create("g1", "alice", "bob")
	e.send("g1", "alice", "hi")
	eventually(t, "given up", func() bool { return e.counter(schemas.ProviderWebPush, "failed") == 2 })
	e.settled()
	if a, b := e.wp.Attempts("bob-laptop"), e.wp.Attempts("bob-tablet"); a != 3 || b != 1 {
		t.Errorf("attempts: laptop %d (want 3), tablet %d (want 1)", a, b)
	}
	if n := e.counter(schemas.ProviderWebPush, "retried"); n != 2 {
		t.Errorf("retried %d, want 2", n)
	}
}

// TestReadClearsOtherDevices: a read marker clears the conversation's
// notification on the user's devices that were notified and are not
// connected, with the new badge; messages already read are not notified.
func TestReadClearsOtherDevices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerWebPush("bob", "bob-laptop")
	e.registerToken("bob", "bob-iphone", schemas.ProviderAPNs, "aa00")
	e.registerToken("bob", "bob-android", schemas.ProviderFCM, "fcm-bob")
	e.start(push.Config{Window: time.Hour})
	e.waitRegistered("bob", "bob-laptop", "bob-iphone", "bob-android")
	e.create("g1", "alice", "bob")
	e.create("g2", "alice", "bob")
	e.send("g2", "alice", "other")
	last := e.send("g1", "alice", "a")
	eventually(t, "notified", func() bool {
		return len(e.webPushes("bob-laptop")) == 2 && len(e.apnsPushes("aa00")) == 2 && len(e.fcmPushes("fcm-bob")) == 2
	})
	// More messages wait for the (hour-long) window; bob reads them on
	// his laptop, which is connected now.
	e.send("g1", "alice", "b", "c")
	last += 2
	disconnect := e.node.Connect(context.Background(), "bob", "bob-laptop")
	defer disconnect()
	eventually(t, "bob's laptop connected", func() bool { return e.reg.Connected("bob", "bob-laptop") })
	e.read("g1", "bob", last)
	eventually(t, "the other devices cleared", func() bool {
		return len(e.apnsPushes("aa00")) == 3 && len(e.fcmPushes("fcm-bob")) == 3
	})
	e.settled()
	if got := e.webPushes("bob-laptop"); len(got) != 2 {
		t.Errorf("the connected laptop got %d pushes, want the 2 before it connected", len(got))
	}
	am := e.apnsPushes("aa00")[2]
	aps := am.Payload["aps"].(map[string]any)
	if am.PushType != "background" || am.Priority != "5" || aps["content-available"] != float64(1) || aps["badge"] != float64(1) || am.Payload["type"] != "clear" || am.Payload["conversation_id"] != "g1" {
		t.Errorf("apns clear %+v, want a background push with badge 1 (g2 unread)", am)
	}
	fm := e.fcmPushes("fcm-bob")[2]
	if fm.Notification != nil || fm.Data["type"] != "clear" || fm.Data["badge"] != "1" || fm.Data["seq"] != "3" {
		t.Errorf("fcm clear %+v, want a data message", fm)
	}
	for _, n := range e.apnsPushes("aa00") {
		if n.Payload["type"] == "message" && n.Payload["seq"] == float64(3) {
			t.Errorf("messages read before their window ended were notified: %+v", n)
		}
	}
}

// gatedProvider holds the first notification it is given until release
// is closed, and counts the notifications it is given.
type gatedProvider struct {
	push.Provider
	held    chan struct{} // closed when the first send arrives
	release chan struct{}
	once    sync.Once
	sends   atomic.Int64
}

func (g *gatedProvider) Send(ctx context.Context, d push.Device, n push.Notification) error {
	if g.sends.Add(1) == 1 {
		g.once.Do(func() { close(g.held) })
		select {
		case <-g.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Provider.Send(ctx, d, n)
}

// TestListedNotificationIsSentOnce: a notification the sender listed as
// due while its previous send was still in flight is not sent again once
// that send has finished.
func TestListedNotificationIsSentOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerWebPush("bob", "bob-laptop")
	providers := e.providers()
	gate := &gatedProvider{Provider: providers[schemas.ProviderWebPush], held: make(chan struct{}), release: make(chan struct{})}
	providers[schemas.ProviderWebPush] = gate
	e.start(push.Config{Window: time.Hour, Providers: providers})
	e.waitRegistered("bob", "bob-laptop")
	e.create("g1", "alice", "bob")
	e.send("g1", "alice", "hi")
	<-gate.held
	listed, err := e.p.DueJobs(time.Now())
	if err != nil || len(listed) != 1 {
		t.Fatalf("listed %d jobs (%v) while the send was in flight, want 1", len(listed), err)
	}
	close(gate.release)
	eventually(t, "the notification", func() bool { return len(e.webPushes("bob-laptop")) == 1 })
	e.settled()
	if err := e.p.SendJob(context.Background(), listed[0]); err != nil {
		t.Fatal(err)
	}
	if n := gate.sends.Load(); n != 1 {
		t.Errorf("the provider was given %d notifications, want 1", n)
	}
	if got := e.webPushes("bob-laptop"); len(got) != 1 {
		t.Errorf("bob's laptop got %d notifications, want 1", len(got))
	}
}

func testutilCount(t *testing.T, e *env, name string) int {
	t.Helper()
	mfs, err := e.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			n += int(m.GetHistogram().GetSampleCount())
		}
	}
	return n
}

func headerOf(m kafka.Message, k string) []byte {
	for _, h := range m.Headers {
		if h.Key == k {
			return h.Value
		}
	}
	return nil
}

// TestRedeliveryNotifiesOnce: events delivered again — what a process
// killed before its group committed gets after the restart, or a producer
// retrying — notify nobody twice, across a restart of the role on the
// same store, and the badge counts each message once.
func TestRedeliveryNotifiesOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerWebPush("bob", "bob-laptop")
	stop := e.start(push.Config{Window: 200 * time.Millisecond})
	e.waitRegistered("bob", "bob-laptop")
	e.create("g1", "alice", "bob")
	e.send("g1", "alice", "one")
	eventually(t, "the first notification", func() bool { return len(e.webPushes("bob-laptop")) == 1 })
	e.send("g1", "alice", "two", "three")
	eventually(t, "the second notification", func() bool { return len(e.webPushes("bob-laptop")) == 2 })
	e.settled()
	stop()

	// The same events again, then a new message, to a restarted role.
	e.seqs["g1"] = 0
	e.send("g1", "alice", "one", "two", "three")
	e.start(push.Config{Window: 200 * time.Millisecond})
	e.waitRegistered("bob", "bob-laptop")
	e.send("g1", "alice", "four")
	eventually(t, "the notification of the new message", func() bool { return len(e.webPushes("bob-laptop")) >= 3 })
	e.settled()
	got := e.webPushes("bob-laptop")
	if len(got) != 3 {
		t.Fatalf("got %d notifications, want 3: %+v", len(got), got)
	}
	if n := got[2]; n.Seq != 4 || n.Count != 1 || n.Preview != "four" || n.Badge != 4 {
		t.Errorf("after the redelivery: %+v, want seq 4, count 1, badge 4", n)
	}
}

// TestNothingAfterLeaving: messages waiting for their window when their
// recipient leaves the conversation are not pushed to the recipient.
func TestNothingAfterLeaving(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerWebPush("bob", "bob-laptop")
	e.start(push.Config{Window: 2 * time.Second})
	e.waitRegistered("bob", "bob-laptop")
	e.create("g1", "alice", "bob", "carol")
	e.send("g1", "alice", "welcome")
	eventually(t, "the first notification", func() bool { return len(e.webPushes("bob-laptop")) == 1 })
	e.seqs["g1"]++
	second := e.event(schemas.TypeMessageSentV3, "g1", e.seqs["g1"], schemas.MessageSentV3{ConversationID: "g1", Seq: e.seqs["g1"], SenderID: "alice", Body: "secret plans", CommandID: "cmd-secret", SentAt: time.Now().UTC()})
	e.seqs["g1"]++
	left := e.event(schemas.TypeMemberLeft, "g1", e.seqs["g1"], schemas.MemberLeftV1{ConversationID: "g1", Seq: e.seqs["g1"], UserID: "bob", CommandID: "cmd-leave", LeftAt: time.Now().UTC()})
	e.write(schemas.TopicEvents, second, left)
	e.settled()
	if got := e.webPushes("bob-laptop"); len(got) != 1 {
		t.Errorf("bob got %+v after leaving", got[1:])
	}
	// And nothing of what follows either.
	e.send("g1", "alice", "after bob left")
	e.registerWebPush("carol", "carol-laptop")
	e.waitRegistered("carol", "carol-laptop")
	e.send("g1", "alice", "carol?")
	eventually(t, "carol's notification", func() bool { return len(e.webPushes("carol-laptop")) == 1 })
	e.settled()
	if got := e.webPushes("bob-laptop"); len(got) != 1 {
		t.Errorf("bob got %d notifications, want the one before he left", len(got))
	}
}

// TestBadgeCountsMessagesAsTheInbox: the badge is the inbox's unread
// total — messages after the read seq, not other events — and a message
// the user sends (from another device) marks the conversation read up to
// it, which clears its notification on the device that was notified.
func TestBadgeCountsMessagesAsTheInbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerWebPush("bob", "bob-laptop")
	e.start(push.Config{Window: time.Millisecond})
	e.waitRegistered("bob", "bob-laptop")
	e.create("g1", "alice", "bob")
	e.create("g2", "alice", "bob")
	e.send("g1", "alice", "one", "two")
	eventually(t, "g1 notified", func() bool { return len(e.webPushes("bob-laptop")) >= 1 })
	// A reaction and a rename are events, not messages.
	e.seqs["g1"]++
	react := e.event(schemas.TypeReactionAdded, "g1", e.seqs["g1"], schemas.ReactionV1{ConversationID: "g1", Seq: e.seqs["g1"], UserID: "alice", MessageSeq: 1, Emoji: "👍", CommandID: "cmd-r", At: time.Now().UTC()})
	e.seqs["g1"]++
	rename := e.event(schemas.TypeRenamed, "g1", e.seqs["g1"], schemas.RenamedV1{ConversationID: "g1", Seq: e.seqs["g1"], UserID: "alice", Title: "t2", CommandID: "cmd-n", RenamedAt: time.Now().UTC()})
	e.write(schemas.TopicEvents, react, rename)
	e.send("g2", "alice", "three")
	eventually(t, "g2 notified", func() bool {
		ns := e.webPushes("bob-laptop")
		return len(ns) > 0 && ns[len(ns)-1].ConversationID == "g2"
	})
	ns := e.webPushes("bob-laptop")
	if n := ns[len(ns)-1]; n.Badge != 3 {
		t.Errorf("badge %d, want 3 (two messages in g1, one in g2; the reaction and the rename do not count)", n.Badge)
	}
	// Bob answers in g1 from his phone (no push registration): g1 is
	// read up to his message, and the laptop's g1 notification cleared.
	before := len(ns)
	e.send("g1", "bob", "on my way")
	eventually(t, "the clear", func() bool { return len(e.webPushes("bob-laptop")) == before+1 })
	e.settled()
	if n := e.webPushes("bob-laptop")[before]; n.Type != push.KindClear || n.ConversationID != "g1" || n.Badge != 1 {
		t.Errorf("after Bob's own message: %+v, want a clear of g1 with badge 1", n)
	}
}

// TestSlowProviderHoldsUpOnlyItsOwn: a push service that does not answer
// delays only the notifications waiting on it.
func TestSlowProviderHoldsUpOnlyItsOwn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerWebPush("bob", "bob-slow")
	e.registerWebPush("bob", "bob-fast")
	release := e.wp.Hold("bob-slow")
	defer release()
	e.start(push.Config{Window: time.Millisecond})
	e.waitRegistered("bob", "bob-slow", "bob-fast")
	e.create("g1", "alice", "bob")
	e.create("g2", "alice", "bob")
	e.send("g1", "alice", "one")
	eventually(t, "the fast device notified", func() bool { return len(e.webPushes("bob-fast")) == 1 })
	e.send("g2", "alice", "two")
	eventually(t, "the fast device notified again while the slow one hangs", func() bool { return len(e.webPushes("bob-fast")) == 2 })
	if n := len(e.webPushes("bob-slow")); n != 0 {
		t.Fatalf("the held device got %d", n)
	}
	release()
	eventually(t, "the slow device notified once released", func() bool { return len(e.webPushes("bob-slow")) == 2 })
	e.settled()
}

// TestEncryptedConversationsNotifyWithoutText: an end-to-end encrypted
// conversation's messages notify its members' devices with the sender and
// count only — the server cannot read them, and no preview leaves it —
// and membership follows the MLS commits that change it.
func TestEncryptedConversationsNotifyWithoutText(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerWebPush("bob", "bob-laptop")
	e.registerToken("bob", "bob-iphone", schemas.ProviderAPNs, "a1b2c3d4e5f60718")
	e.registerWebPush("carol", "carol-laptop")
	e.start(push.Config{Window: time.Hour, PreviewRunes: 100})
	e.waitRegistered("bob", "bob-laptop", "bob-iphone")
	e.waitRegistered("carol", "carol-laptop")

	now := time.Now().UTC()
	e.write(schemas.TopicEvents, e.event(schemas.TypeConversationCreatedV2, "e2e", 0, schemas.ConversationCreatedV2{
		ConversationID: "e2e", Kind: schemas.KindGroup, CreatedBy: "alice", Encrypted: true,
		Members:   []schemas.Member{{UserID: "alice", Role: schemas.RoleOwner}, {UserID: "bob", Role: schemas.RoleMember}},
		Devices:   []schemas.DeviceRef{{UserID: "alice", DeviceID: "a1"}},
		CommandID: "create-e2e", CreatedAt: now,
	}))
	sendCiphertext := func(ciphertext string) {
		e.seqs["e2e"]++
		seq := e.seqs["e2e"]
		e.write(schemas.TopicEvents, e.event(schemas.TypeMLSMessageSent, "e2e", seq, schemas.MLSMessageSentV1{
			ConversationID: "e2e", Seq: seq, SenderID: "alice", DeviceID: "a1", Epoch: 1,
			Ciphertext: []byte(ciphertext), CommandID: fmt.Sprintf("cmd-e2e-%d", seq), SentAt: time.Now().UTC(),
		}))
	}
	commit := func(added []schemas.Member, removed []string) {
		e.seqs["e2e"]++
		seq := e.seqs["e2e"]
		e.write(schemas.TopicEvents, e.event(schemas.TypeMLSCommitted, "e2e", seq, schemas.MLSCommittedV1{
			ConversationID: "e2e", Seq: seq, UserID: "alice", DeviceID: "a1", Epoch: seq, Commit: []byte("commit"),
			MembersAdded: added, MembersRemoved: removed, CommandID: fmt.Sprintf("cmd-e2e-%d", seq), CommittedAt: time.Now().UTC(),
		}))
	}

	sendCiphertext("opaque-one")
	eventually(t, "bob's devices notified", func() bool {
		return len(e.webPushes("bob-laptop")) == 1 && len(e.apnsPushes("a1b2c3d4e5f60718")) == 1
	})
	if n := e.webPushes("bob-laptop")[0]; n.Type != push.KindMessage || n.SenderID != "alice" || n.Seq != 1 || n.Count != 1 || n.Preview != "" {
		t.Errorf("web push of an encrypted message %+v, want sender, seq 1, count 1 and no preview", n)
	}
	aps := e.apnsPushes("a1b2c3d4e5f60718")[0].Payload["aps"].(map[string]any)
	if alert, _ := aps["alert"].(map[string]any); alert != nil && alert["body"] != nil && strings.Contains(fmt.Sprint(alert["body"]), "opaque") {
		t.Errorf("apns alert of an encrypted message carries its ciphertext: %v", alert)
	}
	for _, m := range e.wp.Received() {
		if strings.Contains(string(m.Payload), "opaque") {
			t.Errorf("a Web Push body carries the ciphertext: %s", m.Payload)
		}
	}

	// Carol is added and Bob removed by commits: the next message notifies
	// Carol, not Bob.
	commit([]schemas.Member{{UserID: "carol", Role: schemas.RoleMember}}, []string{"bob"})
	sendCiphertext("opaque-two")
	eventually(t, "carol notified", func() bool { return len(e.webPushes("carol-laptop")) == 1 })
	e.settled()
	if n := e.webPushes("carol-laptop")[0]; n.Seq != 3 || n.Preview != "" {
		t.Errorf("carol's notification %+v, want seq 3 and no preview", n)
	}
	if got := e.webPushes("bob-laptop"); len(got) != 1 {
		t.Errorf("bob, removed by a commit, got %d notifications, want 1", len(got))
	}
}
