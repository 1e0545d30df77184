// `parley bench`: flags to a Config, a run, and its report.

package loadgen

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/app"
)

const cliUsage = `usage: parley bench [flags]

Opens WebSocket connections to a running Parley gateway as many users,
creates conversations over HTTP and sends messages at a fixed rate,
measuring send→ack and send→deliver latency at the clients, deliveries,
errors and the server's memory and CPU. Targets loopback only unless
-allow-remote names the host. See internal/loadgen/SCENARIOS.md.

flags:
`

// Main is `parley bench`: it parses args, runs the load, prints the
// table on stdout and, with -json, writes the report to a file. Progress
// goes to stderr.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), cliUsage)
		fs.PrintDefaults()
	}
	var cfg Config
	fs.StringVar(&cfg.Target, "target", "http://127.0.0.1:8080", "base URL of the gateway")
	fs.StringVar(&cfg.AllowRemote, "allow-remote", "", "host the run may target although it is not loopback (must equal the target's host)")
	fs.StringVar(&cfg.JWTSecret, "jwt-secret", app.DevSecret, "HS256 secret the server verifies tokens with")
	fs.StringVar(&cfg.JWTIssuer, "jwt-issuer", "parley", "tokens' iss")
	fs.StringVar(&cfg.JWTAudience, "jwt-audience", "parley", "tokens' aud")
	fs.StringVar(&cfg.Auth, "auth", AuthHeader, "how sockets authenticate: header (Authorization on the upgrade) or frame (first auth frame)")
	fs.StringVar(&cfg.Protocol, "protocol", ProtocolParley, "the server's protocol: parley, or centrifugo (v5's JSON protocol, to compare the two under the same load)")
	fs.StringVar(&cfg.Shape, "shape", ShapeDirect, "conversations: direct (users paired) or group")
	fs.IntVar(&cfg.Sockets, "sockets", 0, "WebSocket connections; socket i is user i mod users (default 100 for direct, one per user for group)")
	fs.IntVar(&cfg.Users, "users", 0, "users, direct shape only, even (default: one per socket)")
	fs.IntVar(&cfg.GroupSize, "group-size", 10, fmt.Sprintf("members per group, creator included (at most %d)", MaxGroupSize))
	fs.IntVar(&cfg.Groups, "groups", 1, "number of groups")
	fs.StringVar(&cfg.UserPrefix, "user-prefix", "", `start of every user id (default "lg-<run id>-": fresh users per run)`)
	fs.Float64Var(&cfg.Rate, "rate", 100, "total messages per second over all sockets; 0 holds idle sockets")
	stepRates := fs.String("step-rates", "", "comma-separated rates to run in turn, each for -duration, stopping after the first that does not keep up (replaces -rate)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long each phase sends (or idles)")
	fs.DurationVar(&cfg.Drain, "drain", 5*time.Second, "how long a phase waits after sending for acks and deliveries")
	fs.DurationVar(&cfg.MaxP99, "max-p99", time.Second, "delivery p99 above which a step has not kept up")
	fs.IntVar(&cfg.BodyBytes, "body-bytes", 64, fmt.Sprintf("message body size (at least %d: it carries the send time)", minBody))
	sourceAddrs := fs.String("source-addrs", "", "comma-separated local addresses to dial from, round-robin (e.g. 127.0.0.2,127.0.0.3)")
	sourceCount := fs.Int("source-addr-count", 0, "dial from this many addresses 127.0.0.2, 127.0.0.3, … (about 28k sockets each)")
	fs.IntVar(&cfg.DialConcurrency, "dial-concurrency", 64, "simultaneous WebSocket handshakes")
	fs.IntVar(&cfg.SetupConcurrency, "setup-concurrency", 16, "simultaneous conversation creations")
	fs.DurationVar(&cfg.SetupTimeout, "setup-timeout", 5*time.Minute, "bound on creating conversations and connecting")
	fs.IntVar(&cfg.PID, "pid", 0, "PID of a local server process to sample /proc/PID for RSS and CPU")
	jsonFile := fs.String("json", "", "also write the report as JSON to this file")
	logLevel := fs.String("log-level", "info", "progress on stderr: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	var errs []error
	if *stepRates != "" {
		for f := range strings.SplitSeq(*stepRates, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("-step-rates: %q is not a number", f))
				continue
			}
			cfg.StepRates = append(cfg.StepRates, v)
		}
	}
	switch {
	case *sourceAddrs != "" && *sourceCount > 0:
		errs = append(errs, errors.New("give -source-addrs or -source-addr-count, not both"))
	case *sourceAddrs != "":
		for f := range strings.SplitSeq(*sourceAddrs, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(f))
			if err != nil {
				errs = append(errs, fmt.Errorf("-source-addrs: %w", err))
				continue
			}
			cfg.SourceAddrs = append(cfg.SourceAddrs, a)
		}
	case *sourceCount > 0:
		addrs, err := SourceAddrRange(*sourceCount)
		if err != nil {
			errs = append(errs, fmt.Errorf("-source-addr-count: %w", err))
		}
		cfg.SourceAddrs = addrs
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("-log-level: %w", err))
	}
	if cfg.Shape == ShapeDirect {
		// Group flags have defaults for the group shape only.
		cfg.GroupSize, cfg.Groups = 0, 0
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	rep, err := Run(ctx, cfg, stdout)
	if *jsonFile != "" && rep.RunID != "" {
		var b bytes.Buffer
		if jerr := WriteJSON(&b, rep); jerr != nil {
			return errors.Join(err, fmt.Errorf("encoding report: %w", jerr))
		}
		if werr := os.WriteFile(*jsonFile, b.Bytes(), 0o644); werr != nil {
			return errors.Join(err, fmt.Errorf("writing report: %w", werr))
		}
	}
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}
