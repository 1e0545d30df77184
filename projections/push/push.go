// The push role: configuration, and running the projection, the
// settings and the sender together.

package push

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/schemas"
)

// Live says which devices have a live socket now (presence.Registry).
type Live interface {
	Connected(user, device string) bool
}

// Remover appends the removal of a gone registration to chat.push
// (producers.PushWriter).
type Remover interface {
	Append(ctx context.Context, v any) error
}

// Config configures the push role.
type Config struct {
	// Kafka is the cluster of the log.
	Kafka *kafkalog.Cluster
	Names kafkalog.Names
	// Store is the role's store (OpenStore); the caller closes it.
	Store *Store
	// Providers by name (schemas.ProviderWebPush, ProviderFCM,
	// ProviderAPNs); a device whose provider is not configured gets
	// nothing (counted as failed).
	Providers map[string]Provider
	Live      Live
	Remover   Remover
	// Window is the coalescing window: a device gets at most one
	// notification per conversation per Window; messages within it are
	// counted into the next one. Default: 5s.
	Window time.Duration
	// MaxAge is the oldest a message (or read marker) may be when the
	// projection applies it and still be notified (or cleared): a group
	// that starts from the beginning of the log, or catches up after a
	// long outage, notifies nothing older. Default: 1h.
	MaxAge time.Duration
	// PreviewRunes is the longest preview of a message's text; negative:
	// notifications carry no text. Default: 100.
	PreviewRunes int
	// Attempts is how often a notification is tried before it is given
	// up on. Default: 5.
	Attempts int
	// InitialBackoff is the wait after the first retryable failure; it
	// doubles after each, up to MaxBackoff. A provider's Retry-After
	// counts when it is longer (up to an hour). Defaults: 1s, 1m.
	InitialBackoff, MaxBackoff time.Duration
	// Tick is how often the sender looks for notifications that have
	// become due. Default: 100ms.
	Tick time.Duration
	// SendTimeout bounds one provider request. Default: 30s.
	SendTimeout time.Duration
	// Concurrency is the most provider requests in flight. Default: 8.
	Concurrency int
	Logger      *slog.Logger
	Metrics     *telemetry.Metrics
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Group overrides the consumer group's runtime settings (Kafka,
	// Names, GroupID, Topics, Logger and Metrics are set here).
	Group consumers.GroupConfig
}

func (c Config) withDefaults() Config {
	if c.Window == 0 {
		c.Window = 5 * time.Second
	}
	if c.MaxAge == 0 {
		c.MaxAge = time.Hour
	}
	if c.PreviewRunes == 0 {
		c.PreviewRunes = 100
	}
	if c.Attempts == 0 {
		c.Attempts = 5
	}
	if c.InitialBackoff == 0 {
		c.InitialBackoff = time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = time.Minute
	}
	if c.Tick == 0 {
		c.Tick = 100 * time.Millisecond
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = 30 * time.Second
	}
	if c.Concurrency == 0 {
		c.Concurrency = 8
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = telemetry.New()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Push is the push role.
type Push struct {
	cfg      Config
	log      *slog.Logger
	store    *Store
	settings *Settings
	wakeup   chan struct{}

	// mu orders the projection's batches and the sender's updates of
	// what is pending, both read-modify-write.
	mu sync.Mutex
}

// New returns the push role; Run starts it.
func New(cfg Config) (*Push, error) {
	cfg = cfg.withDefaults()
	if cfg.Store == nil || cfg.Live == nil || cfg.Remover == nil {
		return nil, errors.New("push needs a store, the session registry and a writer of chat.push")
	}
	return &Push{
		cfg: cfg, log: cfg.Logger.With("component", "push"), store: cfg.Store,
		settings: NewSettings(), wakeup: make(chan struct{}, 1),
	}, nil
}

// Settings returns the registrations and settings the role follows.
func (p *Push) Settings() *Settings { return p.settings }

// wake tells the sender that something is due now.
func (p *Push) wake() {
	select {
	case p.wakeup <- struct{}{}:
	default:
	}
}

// Topics are the topics the push group (GroupPush) consumes.
func Topics(names kafkalog.Names) []string {
	return []string{names.Topic(schemas.TopicEvents), names.Topic(schemas.TopicReceipts), names.Topic(schemas.TopicAudit)}
}

// Run follows chat.push, and once it has caught up consumes chat.events
// and chat.receipts as the group GroupPush and sends what is due, until
// ctx is done.
func (p *Push) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	errs := make(chan error, 3)
	wg.Go(func() {
		errs <- p.settings.Follow(ctx, p.cfg.Kafka, p.cfg.Names, p.log, p.cfg.Metrics.KafkaReaderErrors.WithLabelValues("", p.cfg.Names.Topic(schemas.TopicPush)))
	})
	select {
	case <-p.settings.Ready():
	case err := <-errs:
		return err
	case <-ctx.Done():
		return nil
	}
	gc := p.cfg.Group
	gc.Kafka, gc.Names, gc.Logger, gc.Metrics = p.cfg.Kafka, p.cfg.Names, p.log, p.cfg.Metrics
	gc.GroupID = p.cfg.Names.Group(schemas.GroupPush)
	gc.Topics = Topics(p.cfg.Names)
	wg.Go(func() { errs <- consumers.RunGroup(ctx, gc, Projection{p: p}) })
	wg.Go(func() { errs <- p.send(ctx) })
	select {
	case err := <-errs:
		return err
	case <-ctx.Done():
		return nil
	}
}
