// The Elasticsearch index's configuration and its validation.

package esindex

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	esschema "github.com/parley-chat/parley/schemas/elasticsearch"
)

// Config configures the adapter.
type Config struct {
	// Addresses are the cluster's URLs (PARLEY_ELASTICSEARCH_URL, comma-
	// separated), e.g. http://elasticsearch:9200. Required.
	Addresses []string
	// Username and Password, or APIKey, authenticate; empty for none.
	Username, Password, APIKey string
	// Alias is searched and written; its indices are <Alias>-NNNNNN and
	// its index template is named Alias. Default: parley-messages.
	Alias string
	// Refresh is the bulk refresh policy: "" or "false" (writes become
	// searchable at the index's next refresh, within refresh_interval),
	// "wait_for" (each Index waits for that refresh) or "true" (forces one;
	// tests only). Default: "".
	Refresh string
	// Workers is the number of bulk indexer workers, each sending its own
	// bulk requests. Default: 2.
	Workers int
	// FlushBytes is the size at which a worker sends its bulk request
	// before Index asks it to. Default: 5 MiB.
	FlushBytes int
	// Timeout bounds each HTTP request. Default: 30s.
	Timeout time.Duration
	// Transport carries the requests. Default: http.DefaultTransport.
	Transport http.RoundTripper
	// Logger receives warnings. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Alias == "" {
		c.Alias = esschema.DefaultAlias
	}
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.FlushBytes == 0 {
		c.FlushBytes = 5 << 20
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Transport == nil {
		c.Transport = http.DefaultTransport
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if len(c.Addresses) == 0 {
		errs = append(errs, errors.New("no Elasticsearch address"))
	}
	for _, a := range c.Addresses {
		if u, err := url.Parse(a); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("elasticsearch address %q is not an http(s) URL", a))
		}
	}
	if !esschema.ValidAlias(c.Alias) {
		errs = append(errs, fmt.Errorf("invalid alias %q: lowercase letters, digits, '_', '.', '-'", c.Alias))
	}
	switch c.Refresh {
	case "", "false", "true", "wait_for":
	default:
		errs = append(errs, fmt.Errorf("refresh must be empty, false, true or wait_for, got %q", c.Refresh))
	}
	if c.Workers < 1 || c.FlushBytes < 1 || c.Timeout <= 0 {
		errs = append(errs, errors.New("workers, flush bytes and timeout must be positive"))
	}
	return errors.Join(errs...)
}

// ParseAddresses splits a comma-separated PARLEY_ELASTICSEARCH_URL.
func ParseAddresses(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// timeoutTransport bounds every request, body included: the bulk
// indexer's workers send with a background context.
type timeoutTransport struct {
	rt http.RoundTripper
	d  time.Duration
}

func (t timeoutTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(r.Context(), t.d)
	resp, err := t.rt.RoundTrip(r.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
