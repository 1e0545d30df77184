package push_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"golang.org/x/oauth2"
	"google.golang.org/api/option"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/projections/presence"
	"github.com/parley-chat/parley/projections/push"
	"github.com/parley-chat/parley/projections/push/pushtest"
	"github.com/parley-chat/parley/schemas"
)

// env is a push role against real Kafka (kfake), the real session
// registry fed by a real presence tracker (a gateway node), and the three
// provider stand-ins.
type env struct {
	t       *testing.T
	k       kafkatest.Cluster
	wp      *pushtest.WebPush
	apns    *pushtest.APNs
	fcm     *pushtest.FCM
	pw      *producers.PushWriter
	node    *presence.Tracker
	reg     *presence.Registry
	metrics *telemetry.Metrics
	p       *push.Push
	dir     string
	vapid   push.VAPIDKeys
	seqs    map[string]uint64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	k := kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 1}))
	priv, pub, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, k: k, vapid: push.VAPIDKeys{PublicKey: pub, PrivateKey: priv}, metrics: telemetry.New(), dir: t.TempDir(), seqs: map[string]uint64{}}
	e.wp = pushtest.StartWebPush(t, pub)
	e.apns = pushtest.StartAPNs(t)
	e.fcm = pushtest.StartFCM(t)
	e.pw = producers.NewPushWriter(k.Cluster, k.Names, nil)
	t.Cleanup(func() { e.pw.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	e.node = presence.New(presence.Config{Kafka: k.Cluster, Names: k.Names, NodeID: "node-1"})
	e.reg = presence.NewRegistry(presence.RegistryConfig{Kafka: k.Cluster, Names: k.Names})
	done := make(chan error, 2)
	go func() { done <- e.node.Run(ctx) }()
	go func() { done <- e.reg.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("presence: %v", err)
			}
		}
	})
	<-e.node.Ready()
	<-e.reg.Ready()
	return e
}

func (e *env) providers() map[string]push.Provider {
	e.t.Helper()
	wp, err := push.NewWebPush(push.WebPushConfig{VAPIDPublicKey: e.vapid.PublicKey, VAPIDPrivateKey: e.vapid.PrivateKey, Subject: "ops@example.org"})
	if err != nil {
		e.t.Fatal(err)
	}
	ap, err := push.NewAPNs(push.APNsConfig{Key: e.apns.Key, KeyID: e.apns.KeyID, TeamID: e.apns.TeamID, Topic: e.apns.Topic, Host: e.apns.URL(), Client: e.apns.Client()})
	if err != nil {
		e.t.Fatal(err)
	}
	fc, err := push.NewFCM(context.Background(), push.FCMConfig{ProjectID: e.fcm.Project, Options: []option.ClientOption{
		option.WithEndpoint(e.fcm.Endpoint()),
		option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: e.fcm.AccessToken})),
	}})
	if err != nil {
		e.t.Fatal(err)
	}
	return map[string]push.Provider{schemas.ProviderWebPush: wp, schemas.ProviderAPNs: ap, schemas.ProviderFCM: fc}
}

// start starts the push role with cfg's settings; it stops when the test
// ends, or when the returned function is called.
func (e *env) start(cfg push.Config) (stop func()) {
	e.t.Helper()
	store, err := push.OpenStore(e.dir, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.Kafka, cfg.Names, cfg.Store, cfg.Live, cfg.Remover, cfg.Metrics = e.k.Cluster, e.k.Names, store, e.reg, e.pw, e.metrics
	if cfg.Providers == nil {
		cfg.Providers = e.providers()
	}
	if cfg.Window == 0 {
		cfg.Window = 500 * time.Millisecond
	}
	if cfg.InitialBackoff == 0 {
		cfg.InitialBackoff = 50 * time.Millisecond
	}
	cfg.Group.SessionTimeout = 6 * time.Second
	p, err := push.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.p = p
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("push: %v", err)
		}
		if err := store.Close(); err != nil {
			e.t.Errorf("closing the store: %v", err)
		}
	}
	e.t.Cleanup(stop)
	return stop
}

func (e *env) appendPush(v any) {
	e.t.Helper()
	if err := e.pw.Append(context.Background(), v); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) registerWebPush(user, device string) {
	e.t.Helper()
	sub := e.wp.Subscribe(e.t, device)
	e.appendPush(&schemas.DeviceRegisteredV1{UserID: user, DeviceID: device, Provider: schemas.ProviderWebPush, Subscription: &sub, RegisteredAt: time.Now().UTC()})
}

func (e *env) registerToken(user, device, provider, token string) {
	e.t.Helper()
	e.appendPush(&schemas.DeviceRegisteredV1{UserID: user, DeviceID: device, Provider: provider, Token: token, Locale: "en-GB", RegisteredAt: time.Now().UTC()})
}

// waitRegistered waits until the role knows user's devices.
func (e *env) waitRegistered(user string, devices ...string) {
	e.t.Helper()
	eventually(e.t, "registrations of "+user, func() bool {
		got := e.p.Settings().Devices(user)
		slices.Sort(got)
		want := slices.Sorted(slices.Values(devices))
		return slices.Equal(got, want)
	})
}

func (e *env) event(typ, conv string, seq uint64, v any) kafka.Message {
	data, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	return kafkalog.Encode(schemas.Attributes{
		ID: fmt.Sprintf("evt-%s-%d", conv, seq), Type: typ, Source: schemas.Source, Subject: conv,
		Time: time.Now().UTC(), Seq: seq, HasSeq: true, CommandOffset: -1,
	}, data)
}

func (e *env) write(topic string, msgs ...kafka.Message) {
	e.t.Helper()
	w := kafkalog.NewWriter(e.k.Cluster, e.k.Names.Topic(topic))
	defer w.Close()
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) create(conv string, members ...string) {
	e.t.Helper()
	ms := make([]schemas.Member, len(members))
	for i, m := range members {
		ms[i] = schemas.Member{UserID: m, Role: schemas.RoleMember}
	}
	e.write(schemas.TopicEvents, e.event(schemas.TypeConversationCreated, conv, 0, schemas.ConversationCreatedV1{
		ConversationID: conv, Kind: schemas.KindGroup, Title: "t", CreatedBy: members[0], Members: ms, CommandID: "create-" + conv, CreatedAt: time.Now().UTC(),
	}))
}

// send appends messages of sender to conv and returns the last seq.
func (e *env) send(conv, sender string, bodies ...string) uint64 {
	e.t.Helper()
	var msgs []kafka.Message
	for _, b := range bodies {
		e.seqs[conv]++
		seq := e.seqs[conv]
		msgs = append(msgs, e.event(schemas.TypeMessageSentV3, conv, seq, schemas.MessageSentV3{
			ConversationID: conv, Seq: seq, SenderID: sender, Body: b, CommandID: fmt.Sprintf("cmd-%s-%d", conv, seq), SentAt: time.Now().UTC(),
		}))
	}
	e.write(schemas.TopicEvents, msgs...)
	return e.seqs[conv]
}

func (e *env) read(conv, user string, seq uint64) {
	e.t.Helper()
	data, err := json.Marshal(schemas.ReceiptV1{ConversationID: conv, UserID: user, Kind: schemas.ReceiptRead, Seq: seq, At: time.Now().UTC()})
	if err != nil {
		e.t.Fatal(err)
	}
	m := kafkalog.Encode(kafkalog.NewAttributes(schemas.TypeReceipt, conv, time.Now()), data)
	m.Key = []byte(schemas.ReceiptKey(conv, user, schemas.ReceiptRead))
	e.write(schemas.TopicReceipts, m)
}

// settled waits until nothing is pending, and checks that the due index
// is empty then too.
func (e *env) settled() {
	e.t.Helper()
	eventually(e.t, "nothing pending", func() bool {
		n, err := e.p.Pending()
		if err != nil {
			e.t.Fatal(err)
		}
		return n == 0
	})
	if n, err := e.p.DueIndexLen(); err != nil || n != 0 {
		e.t.Errorf("nothing is pending, but the due index holds %d keys (%v)", n, err)
	}
}

// webPushes decodes the notifications a Web Push subscription got.
func (e *env) webPushes(sub string) []push.Notification {
	var out []push.Notification
	for _, m := range e.wp.Received() {
		if m.Subscription != sub {
			continue
		}
		var n push.Notification
		if err := json.Unmarshal(m.Payload, &n); err != nil {
			e.t.Fatalf("web push payload %q: %v", m.Payload, err)
		}
		out = append(out, n)
	}
	return out
}

func (e *env) apnsPushes(token string) []pushtest.APNsMessage {
	var out []pushtest.APNsMessage
	for _, m := range e.apns.Received() {
		if m.Token == token {
			out = append(out, m)
		}
	}
	return out
}

func (e *env) fcmPushes(token string) []pushtest.FCMMessage {
	var out []pushtest.FCMMessage
	for _, m := range e.fcm.Received() {
		if m.Token == token {
			out = append(out, m)
		}
	}
	return out
}

func (e *env) counter(provider, outcome string) int {
	return int(testutil.ToFloat64(e.metrics.PushNotifications.WithLabelValues(provider, outcome)))
}

// eventually polls cond until it holds or a minute passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(time.Minute)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
