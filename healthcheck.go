// The healthcheck command: asks a running role's /readyz whether it is
// ready, for container healthchecks in an image without a shell or curl.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// exitError is an error that ends the process with a status other than the
// usual 2.
type exitError struct {
	err  error
	code int
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// exitCode is the process status for err: 0 for nil and for -h, the code
// an exitError carries, else 2.
func exitCode(err error) int {
	var ee exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		return ee.code
	default:
		return 2
	}
}

// healthcheck asks url (default: /readyz on PARLEY_HTTP_ADDR, a wildcard
// host read as 127.0.0.1) whether the role is ready. Every failure, a bad
// flag included, exits with status 1: Docker reads 1 as unhealthy and
// reserves 2.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	def := readyURL(getenv("PARLEY_HTTP_ADDR"))
	url := fs.String("url", def, "readiness URL to ask (default: /readyz on PARLEY_HTTP_ADDR, else 127.0.0.1:8080)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return err
		}
		return exitError{err, 1}
	}
	if fs.NArg() > 0 {
		return exitError{fmt.Errorf("healthcheck: unexpected arguments: %v", fs.Args()), 1}
	}
	if err := checkReady(ctx, *url, *timeout); err != nil {
		return exitError{err, 1}
	}
	_, err := fmt.Fprintf(stdout, "ready: %s\n", *url)
	return err
}

// readyURL is the /readyz URL of a role listening on addr.
func readyURL(addr string) string { return "http://" + localAddr(addr) + "/readyz" }

// checkReady returns nil when url answers 200, else an error of one line
// that says why: the connection failed, or the status and the problem's
// detail (which names the dependencies that are not ready).
func checkReady(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	why := strings.TrimSpace(string(body))
	var p struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &p) == nil && p.Detail != "" {
		why = p.Detail
	}
	// /readyz joins one line per failing check; the answer is one line.
	why = strings.Join(strings.Fields(strings.ReplaceAll(why, "\n", "; ")), " ")
	if r := []rune(why); len(r) > 300 {
		why = string(r[:300]) + "…"
	}
	if why == "" {
		return fmt.Errorf("not ready: %s answered %s", url, resp.Status)
	}
	return fmt.Errorf("not ready: %s answered %s: %s", url, resp.Status, why)
}
