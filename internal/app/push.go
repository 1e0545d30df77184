// Push notifications: the providers configured, the gateway's part, and
// the push role.

package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sideshow/apns2/token"
	"google.golang.org/api/option"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/projections/presence"
	"github.com/parley-chat/parley/projections/push"
	"github.com/parley-chat/parley/schemas"
)

// embeddedVAPIDSubject is the VAPID contact on the embedded default when
// PARLEY_VAPID_SUBJECT is not set.
const embeddedVAPIDSubject = "parley@localhost"

// webPushOn reports whether Web Push is configured: keys set, or the
// embedded default, which generates them.
func (c Config) webPushOn() bool { return c.VAPIDPublicKey != "" || c.Embedded() }

// pushProviders lists the providers c configures.
func (c Config) pushProviders() []string {
	var out []string
	if c.webPushOn() {
		out = append(out, schemas.ProviderWebPush)
	}
	if c.FCMProject != "" {
		out = append(out, schemas.ProviderFCM)
	}
	if c.APNsKeyFile != "" {
		out = append(out, schemas.ProviderAPNs)
	}
	return out
}

func (c Config) validatePush() []error {
	var errs []error
	if (c.VAPIDPublicKey == "") != (c.VAPIDPrivateKey == "") {
		errs = append(errs, errors.New("PARLEY_VAPID_PUBLIC_KEY and PARLEY_VAPID_PRIVATE_KEY are set together"))
	}
	if c.VAPIDPublicKey != "" && !c.Embedded() && c.VAPIDSubject == "" {
		errs = append(errs, errors.New("PARLEY_VAPID_SUBJECT is required with PARLEY_VAPID_PUBLIC_KEY on an external Kafka cluster"))
	}
	if c.APNsKeyFile != "" && (c.APNsKeyID == "" || c.APNsTeamID == "" || c.APNsTopic == "") {
		errs = append(errs, errors.New("PARLEY_APNS_KEY_ID, PARLEY_APNS_TEAM_ID and PARLEY_APNS_TOPIC are required with PARLEY_APNS_KEY_FILE"))
	}
	if c.PushWindow <= 0 || c.PushMaxAge <= 0 || c.PushPreviewRunes < 0 {
		errs = append(errs, errors.New("PARLEY_PUSH_WINDOW and PARLEY_PUSH_MAX_AGE must be positive, PARLEY_PUSH_PREVIEW_RUNES at least 0"))
	}
	return errs
}

// vapidKeys returns the configured VAPID keys, or on the embedded
// default those kept in the data directory, made on first start.
func (c Config) vapidKeys() (push.VAPIDKeys, error) {
	if c.VAPIDPublicKey != "" {
		return push.VAPIDKeys{PublicKey: c.VAPIDPublicKey, PrivateKey: c.VAPIDPrivateKey}, nil
	}
	return push.LoadOrCreateVAPIDKeys(filepath.Join(c.DataDir, "push", "vapid.json"))
}

// pushGateway sets the gateway's push configuration.
func (s *System) pushGateway(cfg *gateway.Config) error {
	pw := producers.NewPushWriter(s.kafka, s.names, s.log)
	s.onClose(pw.Close)
	cfg.Push = gateway.PushConfig{Appender: pw, Providers: s.cfg.pushProviders(), WebPushHosts: s.cfg.WebPushHosts}
	if s.cfg.webPushOn() {
		keys, err := s.cfg.vapidKeys()
		if err != nil {
			return err
		}
		cfg.Push.VAPIDPublicKey = keys.PublicKey
	}
	return nil
}

// providers makes the providers c configures.
func (c Config) providers(ctx context.Context) (map[string]push.Provider, error) {
	out := map[string]push.Provider{}
	if c.webPushOn() {
		keys, err := c.vapidKeys()
		if err != nil {
			return nil, err
		}
		subject := c.VAPIDSubject
		if subject == "" {
			subject = embeddedVAPIDSubject
		}
		wp, err := push.NewWebPush(push.WebPushConfig{VAPIDPublicKey: keys.PublicKey, VAPIDPrivateKey: keys.PrivateKey, Subject: subject})
		if err != nil {
			return nil, err
		}
		out[schemas.ProviderWebPush] = wp
	}
	if c.FCMProject != "" {
		var opts []option.ClientOption
		if c.FCMCredentials != "" {
			opts = append(opts, option.WithAuthCredentialsFile(option.ServiceAccount, c.FCMCredentials))
		}
		if c.FCMEndpoint != "" {
			opts = append(opts, option.WithEndpoint(c.FCMEndpoint))
		}
		fc, err := push.NewFCM(ctx, push.FCMConfig{ProjectID: c.FCMProject, Options: opts})
		if err != nil {
			return nil, err
		}
		out[schemas.ProviderFCM] = fc
	}
	if c.APNsKeyFile != "" {
		key, err := token.AuthKeyFromFile(c.APNsKeyFile)
		if err != nil {
			return nil, fmt.Errorf("PARLEY_APNS_KEY_FILE: %w", err)
		}
		ap, err := push.NewAPNs(push.APNsConfig{Key: key, KeyID: c.APNsKeyID, TeamID: c.APNsTeamID, Topic: c.APNsTopic, Host: c.APNsHost})
		if err != nil {
			return nil, err
		}
		out[schemas.ProviderAPNs] = ap
	}
	return out, nil
}

// pushDir is the push role's store's directory.
func pushDir(cfg Config) string { return filepath.Join(cfg.DataDir, "push", "store") }

// startPush starts the push role: the session registry it asks which
// devices are connected, and the role itself on its store under
// data-dir/push.
func (s *System) startPush(ctx, runCtx context.Context, ready map[string]gateway.ReadyCheck) error {
	providers, err := s.cfg.providers(ctx)
	if err != nil {
		return err
	}
	dir := pushDir(s.cfg)
	if err := markIfNew(dir); err != nil {
		return fmt.Errorf("push store: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("push store: %w", err)
	}
	store, err := push.OpenStore(dir, s.log.With("component", "push-store"))
	if err != nil {
		return err
	}
	s.onClose(store.Close)
	// A new store: what is due and the badges are counted again from the
	// start of the log; messages too old to notify notify nobody.
	if err := s.startNewStore(ctx, dir, pushGroup(s.cfg)); err != nil {
		return err
	}
	reg := presence.NewRegistry(presence.RegistryConfig{Kafka: s.kafka, Names: s.names, Logger: s.log,
		ReaderErrors: s.metrics.KafkaReaderErrors.WithLabelValues("", s.names.Topic(schemas.TopicPresence))})
	s.spawn("push-registry", func() error { return reg.Run(runCtx) })
	pw := producers.NewPushWriter(s.kafka, s.names, s.log)
	s.onClose(pw.Close)
	preview := s.cfg.PushPreviewRunes
	if preview == 0 {
		preview = -1 // none; push.Config's zero is its default
	}
	p, err := push.New(push.Config{
		Kafka: s.kafka, Names: s.names, Store: store, Providers: providers, Live: reg, Remover: pw,
		Window: s.cfg.PushWindow, MaxAge: s.cfg.PushMaxAge, PreviewRunes: preview, Logger: s.log, Metrics: s.metrics,
		// Sealed message bodies are opened for the previews; a device
		// without a socket can wait a quarter of a second more for its
		// notification, and the broker gathers the fetches.
		Group: consumers.GroupConfig{Opener: s.opener(), Gather: gatherFetches},
	})
	if err != nil {
		return err
	}
	s.metrics.CountPush(p.Settings().Count, func() int {
		n, err := p.Pending()
		if err != nil {
			return -1
		}
		return n
	})
	s.spawn("push", func() error {
		// Which devices are connected must be known before anything is
		// sent.
		select {
		case <-reg.Ready():
		case <-runCtx.Done():
			return nil
		}
		return p.Run(runCtx)
	})
	ready["push"] = func(context.Context) error {
		select {
		case <-p.Settings().Ready():
			return nil
		default:
			return errors.New("push starting")
		}
	}
	return nil
}
