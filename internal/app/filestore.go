// The file store: S3 at PARLEY_S3_ENDPOINT, or the embedded S3 server
// under data-dir/files; and the files role (projection and sweep).

package app

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/files"
	"github.com/parley-chat/parley/internal/files/s3store"
	"github.com/parley-chat/parley/internal/files/versitys3"
	"github.com/parley-chat/parley/producers"
	pfiles "github.com/parley-chat/parley/projections/files"
	"github.com/parley-chat/parley/schemas"
)

// S3ListenOff is the PARLEY_S3_LISTEN value that runs no embedded file
// store: without PARLEY_S3_ENDPOINT, file sharing is then unavailable.
const S3ListenOff = "off"

// openFiles opens the file store if roles need it: the S3 service of
// PARLEY_S3_ENDPOINT, or the embedded one, started here. It creates the
// bucket if it is missing.
func (s *System) openFiles(ctx context.Context, roles Roles) error {
	if !roles.Gateway && !roles.Files {
		return nil
	}
	cfg := s3Config(s.cfg)
	embedded := cfg.Endpoint == ""
	if embedded {
		if s.cfg.S3Listen == S3ListenOff {
			s.log.Warn("no file store: PARLEY_S3_ENDPOINT is not set and PARLEY_S3_LISTEN is off; uploads are refused")
			return nil
		}
		srv, err := versitys3.Start(ctx, versitys3.Config{Dir: filepath.Join(s.cfg.DataDir, "files"), Addr: s.cfg.S3Listen, Region: s.cfg.S3Region})
		if err != nil {
			return fmt.Errorf("starting the embedded file store: %w", err)
		}
		s.onClose(srv.Close)
		if roles != All {
			s.log.Warn("the embedded file store serves this process only: roles that run apart need one S3 store, PARLEY_S3_ENDPOINT")
		}
		cfg.Endpoint, cfg.Region = srv.Endpoint(), srv.Region()
		cfg.AccessKey, cfg.SecretKey = srv.Credentials()
		if cfg.PublicEndpoint == "" {
			cfg.PublicEndpoint = srv.Endpoint()
		}
		s.log.Info("embedded file store started", "endpoint", srv.Endpoint(), "dir", filepath.Join(s.cfg.DataDir, "files"))
	}
	st, err := s3store.New(cfg)
	if err != nil {
		return err
	}
	if err := st.EnsureBucket(ctx); err != nil {
		return fmt.Errorf("file store: %w", err)
	}
	if embedded {
		// The web client uploads straight from the browser, a page of
		// Parley's origin PUTting to the store's: the store must allow it
		// (CORS). A production bucket's rule is the operator's (README,
		// Sharing files).
		if err := st.AllowBrowsers(ctx, []string{"*"}); err != nil {
			return fmt.Errorf("file store: %w", err)
		}
	}
	public := cfg.PublicEndpoint
	if public == "" {
		public = cfg.Endpoint
	}
	origin, err := originOf(public)
	if err != nil {
		return fmt.Errorf("file store: %w", err)
	}
	s.files, s.filesOrigin = st, origin
	return nil
}

// s3Config is the configuration of the file store of PARLEY_S3_*; an
// empty Endpoint stands for the embedded one.
func s3Config(c Config) s3store.Config {
	return s3store.Config{
		Endpoint: c.S3Endpoint, PublicEndpoint: c.S3PublicURL, Region: c.S3Region, Bucket: c.S3Bucket,
		AccessKey: c.S3AccessKey, SecretKey: c.S3SecretKey,
	}
}

// openRebuildFiles opens the live file store for `parley rebuild files`:
// the S3 service of PARLEY_S3_ENDPOINT, or the embedded one over the
// data dir, started here on a free port (then `parley run` must be
// stopped: the files projection does not write meanwhile). wait is how
// long to wait for the live projection (rebuild.Config.WaitLive).
func openRebuildFiles(ctx context.Context, c Config) (st *s3store.Store, wait time.Duration, closeFn func(), err error) {
	cfg := s3Config(c)
	closeFn = func() {}
	if cfg.Endpoint == "" {
		wait = -1
		srv, err := versitys3.Start(ctx, versitys3.Config{Dir: filepath.Join(c.DataDir, "files"), Region: c.S3Region})
		if err != nil {
			return nil, 0, nil, fmt.Errorf("starting the embedded file store: %w", err)
		}
		closeFn = func() { _ = srv.Close() }
		cfg.Endpoint, cfg.Region = srv.Endpoint(), srv.Region()
		cfg.AccessKey, cfg.SecretKey = srv.Credentials()
	}
	if st, err = s3store.New(cfg); err != nil {
		closeFn()
		return nil, 0, nil, err
	}
	return st, wait, closeFn, nil
}

// originOf is the scheme://host[:port] of a URL.
func originOf(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("the store's URL %q: %w", raw, err)
	}
	if u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("the store's URL %q has no scheme or host", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

// startFiles starts the files projection of chat.events, the sweep of
// uploads never attached, and the thumbnail projection.
func (s *System) startFiles(runCtx context.Context) {
	if s.files == nil {
		return
	}
	s.spawn("files", func() error {
		return consumers.RunGroup(runCtx, consumers.GroupConfig{
			Kafka: s.kafka, Names: s.names, GroupID: s.names.Group(schemas.GroupFiles), Topic: s.names.Topic(schemas.TopicEvents), Opener: s.opener(),
			Logger: s.log.With("component", "files"), Metrics: s.metrics, Gather: gatherFetches,
		}, pfiles.Projection{Store: s.files})
	})
	sw := pfiles.Sweeper{Store: s.files, TTL: s.cfg.UploadTTL, Logger: s.log.With("component", "files-sweep")}
	s.spawn("files-sweep", func() error { return sw.Run(runCtx) })
	var sealing []producers.CommandOption
	if s.keys != nil {
		sealing = append(sealing, producers.Sealing(s.keys))
	}
	cw := producers.NewCommandWriter(s.kafka, s.names, s.log, sealing...)
	s.onClose(func() error { return cw.Close() })
	thumbs := pfiles.Thumbnailer{Store: s.files, Commands: cw, Logger: s.log.With("component", "thumbnails")}
	s.spawn("thumbnails", func() error {
		return consumers.RunGroup(runCtx, consumers.GroupConfig{
			Kafka: s.kafka, Names: s.names, GroupID: s.names.Group(schemas.GroupThumbnails), Topic: s.names.Topic(schemas.TopicEvents), Opener: s.opener(),
			Logger: s.log.With("component", "thumbnails"), Metrics: s.metrics, Gather: gatherFetches,
		}, thumbs)
	})
}

// fileLimits sets cfg's file store and upload limits from c's.
func (s *System) fileLimits(cfg *gateway.Config) {
	if s.files != nil {
		cfg.Files = s.files
		if s.keys != nil {
			cfg.Files = files.SealNames(s.files, s.keys)
		}
	}
	c := s.cfg
	cfg.FilePolicy = files.Policy{MaxSize: uint64(c.MaxFileBytes), AllowedTypes: c.FileTypes}
	cfg.UserUploads = rate(float64(c.UploadsPerHour)/3600, c.UploadsPerHour)
	// Half the sweep's TTL: a message attaching an upload is projected
	// long before the upload could be swept.
	cfg.UploadMaxAge = c.UploadTTL / 2
	cfg.UploadURLTTL = c.UploadURLTTL
	cfg.DownloadURLTTL = c.DownloadURLTTL
}

// validateFiles reports the problems of the file settings.
func (c Config) validateFiles() []error {
	var errs []error
	if c.S3Endpoint != "" && (c.S3AccessKey == "" || c.S3SecretKey == "") {
		errs = append(errs, errors.New("PARLEY_S3_ACCESS_KEY and PARLEY_S3_SECRET_KEY are required with PARLEY_S3_ENDPOINT"))
	}
	for _, u := range []struct{ env, v string }{{"PARLEY_S3_ENDPOINT", c.S3Endpoint}, {"PARLEY_S3_PUBLIC_URL", c.S3PublicURL}} {
		if u.v != "" && !strings.HasPrefix(u.v, "http://") && !strings.HasPrefix(u.v, "https://") {
			errs = append(errs, fmt.Errorf("%s %q is not an http(s) URL", u.env, u.v))
		}
	}
	if c.S3Bucket == "" {
		errs = append(errs, errors.New("PARLEY_S3_BUCKET must not be empty"))
	}
	if c.MaxFileBytes < 1 {
		errs = append(errs, errors.New("PARLEY_MAX_FILE_BYTES must be at least 1"))
	}
	for _, t := range c.FileTypes {
		major, minor, ok := strings.Cut(t, "/")
		if !ok || major == "" || minor == "" {
			errs = append(errs, fmt.Errorf("PARLEY_FILE_TYPES: %q is not a media type (type/subtype or type/*)", t))
		}
	}
	if c.UploadsPerHour < 0 {
		errs = append(errs, errors.New("PARLEY_UPLOADS_PER_HOUR must be 0 (no limit) or more"))
	}
	if c.MaxAttachments < 1 || c.MaxAttachments > 100 {
		errs = append(errs, errors.New("PARLEY_MAX_ATTACHMENTS must be 1..100"))
	}
	if c.UploadTTL < 2*c.UploadURLTTL || c.UploadURLTTL <= 0 || c.DownloadURLTTL <= 0 {
		errs = append(errs, errors.New("PARLEY_UPLOAD_URL_TTL and PARLEY_DOWNLOAD_URL_TTL must be positive, and PARLEY_UPLOAD_TTL at least twice PARLEY_UPLOAD_URL_TTL"))
	}
	if c.UploadURLTTL > 7*24*time.Hour || c.DownloadURLTTL > 7*24*time.Hour {
		errs = append(errs, errors.New("presigned URLs live at most 7 days (SigV4)"))
	}
	return errs
}
