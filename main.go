// Command parley is the Parley chat backend: one binary with every role.
//
//	parley run              every role in one process on the embedded default
//	parley broker           the embedded broker alone, for roles in processes of their own
//	parley gateway          the HTTP/WebSocket edge and delivery projection
//	parley decider          the command decider
//	parley router           routes events to the gateway nodes that need them (projections/router)
//	parley project history  the history projection (events and receipts)
//	parley project search   the search projection (--rebuild: reindex from 0)
//	parley project files    the files projection (attached uploads, deleted files, the sweep)
//	parley project push     the push projection (notifications to devices not connected)
//	parley token USER       print a token for USER (dev secret by default)
//	parley ws               an interactive WebSocket client
//	parley bench            load-test a running gateway (internal/loadgen)
//	parley healthcheck      exit 0 if the role on PARLEY_HTTP_ADDR is ready, else 1
//	parley dlq list         the dead letters of chat.dlq (-json, -group)
//	parley dlq redrive P/O  copy dead letter P/O back to its topic
//	parley replay           a topic as CloudEvents NDJSON or Parquet, for analytics
//	parley rebuild history  rebuild the history store beside the live one and compare (-swap: and replace it)
//	parley rebuild search   the same for the search index (-swap: promote the rebuilt generation)
//	parley rebuild push     the same for the push store (members, read markers, unread counts)
//	parley rebuild files    the same for the files projection's records in the file store (compare only)
//
// Configuration is by flags and PARLEY_* environment variables; `parley
// help` lists them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && isServerCommand(os.Args[1]) {
		if n, ok := app.Procs(os.Getenv, runtime.GOMAXPROCS(0)); ok {
			runtime.GOMAXPROCS(n)
		}
	}
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	// -h or --help: the flag package printed the command's flags; exit 0.
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "parley: %v (run `parley help` for commands and settings)\n", err)
	}
	if code := exitCode(err); code != 0 {
		stop()
		os.Exit(code)
	}
}

// isServerCommand reports whether cmd runs roles, and so sets GOMAXPROCS
// by app.Procs.
func isServerCommand(cmd string) bool {
	switch cmd {
	case "run", "broker", "gateway", "decider", "router", "project":
		return true
	}
	return false
}

const usage = `usage: parley <command> [flags]

commands:
  run              every role in one process (embedded Kafka and stores unless configured)
  broker           the embedded Kafka broker alone, with Parley's topics, /readyz and /metrics:
                   for roles run as processes of their own on one machine (-kafka-brokers)
  gateway          HTTP and WebSocket edge with the delivery projection
  decider          turns chat.commands into chat.events
  router           sends each gateway node the events, replies and signals its sockets need (PARLEY_ROUTING=targeted)
  project history  builds the history store from chat.events and chat.receipts
  project search   builds the search index from chat.events; --rebuild reindexes from offset 0 and swaps
  project files    keeps the file store in step with chat.events and sweeps uploads never attached
  project push     notifies the devices that are not connected through Web Push, FCM and APNs
  token USER       prints a JWT for USER signed with the configured secret
  ws               an interactive WebSocket client: sends each line typed, prints each frame received
  bench            load-tests a running gateway over WebSockets (internal/loadgen/SCENARIOS.md)
  healthcheck      exits 0 if a running role's /readyz answers 200, else 1 with the reason
                   (-url, default http://PARLEY_HTTP_ADDR/readyz; -timeout 3s); for container healthchecks
  dlq list         prints the dead letters of chat.dlq, one line each: its PARTITION/OFFSET in
                   chat.dlq, the group, the original topic/partition/offset, key, type and error
                   (-json: one JSON object each; -group GROUP: only that group's)
  dlq redrive PARTITION/OFFSET
                   copies that dead letter back to its original topic and partition with its key
                   and headers, without the parley_dlq_* ones; refuses a record that is no dead letter
  replay           writes a topic (-topic, default chat.events) as NDJSON in the CloudEvents JSON
                   format, or as Parquet (-format parquet), to standard output or -o FILE; every
                   record decoded and validated against schemas/, invalid ones left out and counted;
                   from -from-offset N or -from-time T, only -conversation ID, -type CE_TYPE (each
                   repeatable), -since T, -until T; -check decode skips the JSON Schema check
                   (twice as fast); -decrypt opens sealed content with the key store (PARLEY_CONTENT_KEK,
                   parley run stopped), else sealed events come redacted; progress, rate and ETA on
                   standard error
  rebuild history  rebuilds the history store from offset 0 of chat.events and chat.receipts into a
                   fresh store beside the live one, compares them per conversation and per inbox
                   (a checksum each), prints every one that differs and exits 1 if any does;
                   progress, rate and ETA as it goes. Embedded: stop parley run first. -swap (embedded):
                   then replace the live store with the rebuilt one, as after an erasure
  rebuild search   the same for the search index (Bleve, or Elasticsearch with the roles running): a
                   new generation from offset 0, compared per conversation with the live index,
                   then discarded, or promoted with -swap (Elasticsearch: the alias moves, then
                   what was appended meanwhile is read into it)
  rebuild push     the same for the push store, in the push role's data dir with the role stopped:
                   compared per conversation (members, last seq, messages) and per user (read
                   markers, unread counts, badge); not the notifications pending or sent
  rebuild files    the same for the files projection's records in the file store (which uploads
                   are attached to which message, which messages' files were deleted), rebuilt in
                   memory and compared per conversation; not the uploads themselves. Embedded
                   file store: stop parley run first. No -swap: the records share the bucket with
                   the uploads
  recover          accepts a log that lost records its consumer groups had read (parley run refuses to
                   start, naming the partitions): every such group takes the log again from its start,
                   the decider's and the router's go on from its end, and the local stores they built
                   are moved aside to DIR.lost-TIME, to be made again at the next start. Stop every
                   process first; a log that lost nothing is left as it is. -dry-run: print what was lost
                   and what it would do, and do nothing (README, A log that lost records)
  version          the release, module version and revision of this binary
  help             this text and the settings

settings (flag, environment variable, default):
`

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("no command")
	}
	cmd, args := args[0], args[1:]
	var roles app.Roles
	switch cmd {
	case "run":
		roles = app.All
	case "broker":
		roles = app.Roles{} // no role: the broker, the topics and HTTP
	case "gateway":
		roles = app.Roles{Gateway: true}
	case "decider":
		roles = app.Roles{Decider: true}
	case "router":
		roles = app.Roles{Router: true}
	case "project":
		switch {
		case len(args) > 0 && args[0] == "history":
			roles, args = app.Roles{History: true}, args[1:]
		case len(args) > 0 && args[0] == "files":
			roles, args = app.Roles{Files: true}, args[1:]
		case len(args) > 0 && args[0] == "push":
			roles, args = app.Roles{Push: true}, args[1:]
		case len(args) > 0 && args[0] == "search":
			roles, args = app.Roles{Search: true}, args[1:]
			if len(args) > 0 && (args[0] == "--rebuild" || args[0] == "-rebuild") {
				cfg, err := app.Load(cmd, args[1:], getenv, stderr)
				if err != nil {
					return err
				}
				return app.RebuildSearch(ctx, cfg, stdout, cfg.Logger(stderr))
			}
		default:
			return errors.New("usage: parley project history | parley project search [--rebuild] | parley project files | parley project push")
		}
	case "token":
		return token(args, getenv, stdout, stderr)
	case "ws":
		return wsClient(ctx, args, getenv, stdin, stdout, stderr)
	case "bench":
		return loadgen.Main(ctx, args, stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, args, getenv, stdout, stderr)
	case "dlq":
		return dlqCommand(ctx, args, getenv, stdout, stderr)
	case "replay":
		return replayCommand(ctx, args, getenv, stdout, stderr)
	case "rebuild":
		name := ""
		if len(args) > 0 {
			name = args[0]
		}
		rebuildOne, ok := map[string]func(context.Context, app.Config, bool, io.Writer, *slog.Logger) error{
			"history": app.RebuildHistory, "search": app.VerifySearch, "push": app.RebuildPush, "files": app.RebuildFiles,
		}[name]
		if !ok {
			return errors.New("usage: parley rebuild history | parley rebuild search | parley rebuild push | parley rebuild files [settings]")
		}
		fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
		swap := fs.Bool("swap", false, "embedded: replace the live store or index with the rebuilt one")
		rest, err := takeFlags(fs, args[1:])
		if err != nil {
			return err
		}
		cfg, err := app.Load(cmd, rest, getenv, stderr)
		if err != nil {
			return err
		}
		if err := rebuildOne(ctx, cfg, *swap, stdout, cfg.Logger(stderr)); errors.Is(err, app.ErrRebuildDiffers) {
			return exitError{err: err, code: 1}
		} else if err != nil {
			return err
		}
		return nil
	case "recover":
		fs := flag.NewFlagSet("recover", flag.ContinueOnError)
		dryRun := fs.Bool("dry-run", false, "print what was lost and what recover would do, and do nothing")
		rest, err := takeFlags(fs, args)
		if err != nil {
			return err
		}
		cfg, err := app.Load(cmd, rest, getenv, stderr)
		if err != nil {
			return err
		}
		return app.Recover(ctx, cfg, *dryRun, stdout, cfg.Logger(stderr))
	case "version", "-version", "--version":
		return printVersion(stdout)
	case "help", "-h", "--help":
		printUsage(stdout)
		return nil
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
	cfg, err := app.Load(cmd, args, getenv, stderr)
	if err != nil {
		return err
	}
	if cmd == "run" {
		roles, _ = app.ParseRoles(cfg.Roles) // checked by Load
	}
	if cmd == "broker" && !cfg.Embedded() {
		return errors.New("parley broker runs the embedded broker: PARLEY_KAFKA_BROKERS names another cluster, so there is nothing to run")
	}
	log := cfg.Logger(stderr)
	sys, err := app.Start(ctx, cfg, roles, log)
	if err != nil {
		return err
	}
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-sys.Err():
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return errors.Join(runErr, sys.Stop(sctx))
}

func token(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: parley token USER [-ttl 24h] [flags]")
	}
	user := args[0]
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	rest := args[1:]
	// The token flags come first; the remaining ones are settings.
	if err := fs.Parse(rest); err != nil {
		return err
	}
	cfg, err := app.Load("token", fs.Args(), getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.OIDC() {
		return errDevTokensWithOIDC
	}
	auth, err := gateway.NewAuthenticator(gateway.AuthConfig{Secret: cfg.Secret(), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
	if err != nil {
		return err
	}
	tok, err := auth.Issue(user, *ttl, time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// errDevTokensWithOIDC refuses to sign an HS256 token the server would
// refuse: with PARLEY_OIDC_ISSUER only the identity provider's tokens
// are accepted.
var errDevTokensWithOIDC = errors.New("PARLEY_OIDC_ISSUER is set, so HS256 tokens are refused: get a token from the identity provider")

func printUsage(w io.Writer) {
	fmt.Fprint(w, usage)
	for _, s := range app.Settings() {
		fmt.Fprintf(w, "  -%-20s %-28s %q\n      %s\n", s.Flag, s.Env, s.Default, s.Help)
	}
}
