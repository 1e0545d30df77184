// The replay command: a topic of the log as CloudEvents NDJSON or
// Parquet, for analytics.

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/progress"
	"github.com/parley-chat/parley/internal/replay"
	"github.com/parley-chat/parley/schemas"
)

const replayUsage = "usage: parley replay [-topic chat.events] [-from-offset N | -from-time RFC3339] " +
	"[-conversation ID]... [-type CE_TYPE]... [-since RFC3339] [-until RFC3339] [-format ndjson|parquet] [-o FILE] [-check schema|decode] [-decrypt] [settings]"

// replayProgressInterval is how often a replay prints its progress.
const replayProgressInterval = 2 * time.Second

// listFlag is a flag that may be given more than once, or once with
// comma-separated values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// timeFlag is an RFC 3339 time.
type timeFlag struct{ t *time.Time }

func (f timeFlag) String() string {
	if f.t == nil || f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339Nano)
}

func (f timeFlag) Set(v string) error {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return fmt.Errorf("want an RFC 3339 time such as 2026-03-01T12:00:00Z: %w", err)
	}
	*f.t = t
	return nil
}

// replayOptions are the flags of `parley replay`.
type replayOptions struct {
	topic, format, out, check string
	fromOffset                int64
	decrypt                   bool
	cfg                       replay.Config
}

func replayFlags(args []string, stderr io.Writer) (replayOptions, []string, error) {
	o := replayOptions{}
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.topic, "topic", schemas.TopicEvents, "the topic to replay, without PARLEY_TOPIC_PREFIX")
	fs.Int64Var(&o.fromOffset, "from-offset", -1, "start every partition at this offset (default: its first)")
	fs.Var(timeFlag{&o.cfg.FromTime}, "from-time", "start every partition at its first record at or after this time (RFC 3339)")
	fs.Var((*listFlag)(&o.cfg.Filter.Conversations), "conversation", "only this conversation (repeatable, or comma-separated)")
	fs.Var((*listFlag)(&o.cfg.Filter.Types), "type", "only this ce_type (repeatable, or comma-separated)")
	fs.Var(timeFlag{&o.cfg.Filter.Since}, "since", "only events with ce_time at or after this time (RFC 3339)")
	fs.Var(timeFlag{&o.cfg.Filter.Until}, "until", "only events with ce_time before this time (RFC 3339)")
	fs.StringVar(&o.format, "format", "ndjson", "ndjson (CloudEvents JSON, one event a line) or parquet")
	fs.StringVar(&o.out, "o", "-", "the output file; - is standard output")
	fs.BoolVar(&o.decrypt, "decrypt", false, "open sealed content with the key store (PARLEY_CONTENT_KEK; parley run stopped); without it, sealed events come redacted")
	fs.StringVar(&o.check, "check", "schema", "schema: decode each value and validate it against its JSON Schema; decode: decode only (a little faster)")
	rest, err := takeFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, replayUsage)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
	}
	if err != nil {
		return o, nil, err
	}
	if o.format != "ndjson" && o.format != "parquet" {
		return o, nil, fmt.Errorf("-format %q: want ndjson or parquet", o.format)
	}
	switch o.check {
	case "schema":
		o.cfg.Check = replay.CheckSchema
	case "decode":
		o.cfg.Check = replay.CheckDecode
	default:
		return o, nil, fmt.Errorf("-check %q: want schema or decode", o.check)
	}
	if o.fromOffset >= 0 && !o.cfg.FromTime.IsZero() {
		return o, nil, errors.New("-from-offset and -from-time: give one")
	}
	o.cfg.FromOffset = o.fromOffset
	return o, rest, nil
}

// takeFlags sets the flags of fs found anywhere among args (-name value,
// -name=value, --name; a bool flag alone means true) and returns the
// other arguments in order: the settings, for app.Load.
func takeFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-h" || a == "-help" || a == "--help" {
			return nil, flag.ErrHelp
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			rest = append(rest, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		f := fs.Lookup(name)
		if f == nil {
			rest = append(rest, a)
			continue
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() && !hasValue {
			value, hasValue = "true", true
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("-%s needs a value", name)
			}
			i++
			value = args[i]
		}
		if err := fs.Set(name, value); err != nil {
			return nil, fmt.Errorf("-%s %s: %w", name, value, err)
		}
	}
	return rest, nil
}

// replayCommand is `parley replay`.
func replayCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, rest, err := replayFlags(args, stderr)
	if err != nil {
		return err
	}
	cfg, err := app.Load("replay", rest, getenv, stderr)
	if err != nil {
		return err
	}
	if o.decrypt {
		if cfg.ContentKEK == "" {
			return errors.New("-decrypt needs the key-encryption key: set PARLEY_CONTENT_KEK")
		}
		keys, closeKeys, err := app.OpenKeyring(ctx, cfg, cfg.Logger(stderr))
		if err != nil {
			return err
		}
		defer closeKeys()
		o.cfg.Opener = keys
	}
	out := stdout
	if o.out != "-" {
		f, err := os.Create(o.out)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	var sink interface {
		replay.Sink
		Close() error
	}
	if o.format == "parquet" {
		sink = replay.NewParquet(out)
	} else {
		sink = replay.NewNDJSON(out)
	}
	topic := kafkalog.Names{Prefix: cfg.TopicPrefix}.Topic(o.topic)
	return withCluster(ctx, cfg, stderr, func(ctx context.Context, cluster *kafkalog.Cluster) error {
		rc := o.cfg
		rc.Kafka, rc.Topic, rc.Logger = cluster, topic, cfg.Logger(stderr)
		rc.Progress = progress.New(stderr, "replay "+topic, replayProgressInterval, nil).Report
		st, err := replay.Run(ctx, rc, sink)
		if cerr := sink.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if f, ok := out.(*os.File); ok && f != os.Stdout {
			if err := f.Sync(); err != nil {
				return err
			}
		}
		_, err = fmt.Fprintf(stderr, "replay %s: done, %d records read, %d written, %d invalid left out, in %v\n",
			topic, st.Read, st.Written, st.Invalid, st.Took.Round(time.Millisecond))
		return err
	})
}
