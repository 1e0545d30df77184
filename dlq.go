// The dlq command: lists the dead letters of chat.dlq and copies one back
// to the topic it came from once its cause is fixed.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/embeddedkafka"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/schemas"
)

const dlqUsage = "usage: parley dlq list [-json] [-group GROUP] [settings] | parley dlq redrive PARTITION/OFFSET [settings]"

// dlqTimeout bounds reading chat.dlq and writing a redriven record.
const dlqTimeout = time.Minute

// dlqCommand is `parley dlq`.
func dlqCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(dlqUsage)
	}
	switch args[0] {
	case "list":
		asJSON, group, rest, err := listFlags(args[1:])
		if err != nil {
			return err
		}
		cfg, err := app.Load("dlq", rest, getenv, stderr)
		if err != nil {
			return err
		}
		return withCluster(ctx, cfg, stderr, func(ctx context.Context, cluster *kafkalog.Cluster) error {
			return listDeadLetters(ctx, cluster, cfg.TopicPrefix, group, asJSON, stdout)
		})
	case "redrive":
		if len(args) < 2 || strings.HasPrefix(args[1], "-") {
			return errors.New(dlqUsage)
		}
		cfg, err := app.Load("dlq", args[2:], getenv, stderr)
		if err != nil {
			return err
		}
		return withCluster(ctx, cfg, stderr, func(ctx context.Context, cluster *kafkalog.Cluster) error {
			return redrive(ctx, cluster, cfg.TopicPrefix, args[1], stdout, cfg.Logger(stderr))
		})
	default:
		return errors.New(dlqUsage)
	}
}

// listFlags takes the flags of `dlq list`, -json and -group GROUP,
// from anywhere among args, and returns the other arguments: the settings.
func listFlags(args []string) (asJSON bool, group string, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(args[i], "-"), "-"), "=")
		if !strings.HasPrefix(args[i], "-") {
			rest = append(rest, args[i])
			continue
		}
		switch name {
		case "json":
			asJSON = true
			if hasValue {
				if asJSON, err = strconv.ParseBool(value); err != nil {
					return false, "", nil, fmt.Errorf("-json=%s: %w", value, err)
				}
			}
		case "group":
			switch {
			case hasValue:
				group = value
			case i+1 < len(args):
				i++
				group = args[i]
			default:
				return false, "", nil, errors.New("-group needs a consumer group")
			}
		default:
			rest = append(rest, args[i])
		}
	}
	return asJSON, group, rest, nil
}

// withCluster calls fn with the configured cluster. On the embedded
// default it uses the broker of a running `parley run` on
// PARLEY_KAFKA_LISTEN, or, if none answers there, starts the embedded
// broker over the data dir for the command's duration.
func withCluster(ctx context.Context, cfg app.Config, stderr io.Writer, fn func(context.Context, *kafkalog.Cluster) error) error {
	brokers := cfg.KafkaBrokers
	if cfg.Embedded() {
		brokers = []string{cfg.KafkaListen}
		conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", cfg.KafkaListen)
		if err == nil {
			_ = conn.Close()
		} else {
			b, err := embeddedkafka.Start(cfg.EmbeddedBroker(cfg.Logger(stderr)))
			if err != nil {
				return err
			}
			defer b.Close()
			brokers = []string{b.Addr()}
		}
	}
	c := kafkalog.NewCluster(brokers)
	defer c.Close()
	return fn(ctx, c)
}

// letterJSON is a dead letter as `parley dlq list -json` prints it.
type letterJSON struct {
	DLQPartition int       `json:"dlq_partition"`
	DLQOffset    int64     `json:"dlq_offset"`
	Time         time.Time `json:"time"`
	Group        string    `json:"group"`
	Topic        string    `json:"topic"`
	Partition    int       `json:"partition"`
	Offset       int64     `json:"offset"`
	Key          string    `json:"key"`
	Type         string    `json:"type,omitempty"`
	Error        string    `json:"error"`
}

// listDeadLetters prints every dead letter of chat.dlq, in partition and
// offset order, of group if one is given. A record of chat.dlq that is
// not a dead letter is reported on its line rather than skipped.
func listDeadLetters(ctx context.Context, cluster *kafkalog.Cluster, prefix, group string, asJSON bool, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, dlqTimeout)
	defer cancel()
	names := kafkalog.Names{Prefix: prefix}
	topic := names.Topic(schemas.TopicDLQ)
	client := kafkalog.NewClient(cluster)
	n, err := kafkalog.Partitions(ctx, client, topic)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	for p := range n {
		err := readPartition(ctx, cluster, client, topic, p, func(m kafka.Message) error {
			l, err := consumers.ParseDeadLetter(m)
			if err != nil {
				if group != "" {
					return nil
				}
				_, err = fmt.Fprintf(out, "%d/%d not a dead letter: %v\n", m.Partition, m.Offset, strings.ReplaceAll(err.Error(), "\n", "; "))
				return err
			}
			if group != "" && l.Group != group && l.Group != names.Group(group) {
				return nil
			}
			if asJSON {
				return enc.Encode(letterJSON{
					DLQPartition: m.Partition, DLQOffset: m.Offset, Time: m.Time.UTC(), Group: l.Group,
					Topic: l.Topic, Partition: l.Partition, Offset: l.Offset, Key: string(m.Key), Type: l.Type, Error: l.Error,
				})
			}
			_, err = fmt.Fprintf(out, "%d/%d group=%s from=%s/%d/%d key=%q type=%q error=%q\n",
				m.Partition, m.Offset, l.Group, l.Topic, l.Partition, l.Offset, m.Key, l.Type, l.Error)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// offsets returns the first and end offsets of partition p of topic.
func offsets(ctx context.Context, client *kafka.Client, topic string, p int) (first, end int64, err error) {
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		topic: {kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p)},
	}})
	if err != nil {
		return 0, 0, fmt.Errorf("listing offsets of %s/%d: %w", topic, p, err)
	}
	po := resp.Topics[topic]
	if len(po) != 1 || po[0].Error != nil {
		return 0, 0, fmt.Errorf("listing offsets of %s/%d: %v", topic, p, po)
	}
	return po[0].FirstOffset, po[0].LastOffset, nil
}

// readPartition calls fn with every record of partition p of topic from
// its first offset up to its current end.
func readPartition(ctx context.Context, cluster *kafkalog.Cluster, client *kafka.Client, topic string, p int, fn func(kafka.Message) error) error {
	first, end, err := offsets(ctx, client, topic, p)
	if err != nil || end <= first {
		return err
	}
	return readRange(ctx, cluster, topic, p, first, end, fn)
}

// readRange calls fn with the records of partition p of topic from
// offset from up to, not including, end.
func readRange(ctx context.Context, cluster *kafkalog.Cluster, topic string, p int, from, end int64, fn func(kafka.Message) error) error {
	return kafkalog.ReadRange(ctx, cluster, topic, p, from, end, fn)
}

// parseLetterID parses PARTITION/OFFSET, or a bare OFFSET when chat.dlq
// has one partition.
func parseLetterID(id string, partitions int) (p int, off int64, err error) {
	ps, offs, found := strings.Cut(id, "/")
	if !found {
		if partitions != 1 {
			return 0, 0, fmt.Errorf("%q: chat.dlq has %d partitions: give PARTITION/OFFSET, as `parley dlq list` prints it", id, partitions)
		}
		ps, offs = "0", id
	}
	p, perr := strconv.Atoi(ps)
	off, oerr := strconv.ParseInt(offs, 10, 64)
	if perr != nil || oerr != nil || p < 0 || off < 0 {
		return 0, 0, fmt.Errorf("%q: want PARTITION/OFFSET, as `parley dlq list` prints it", id)
	}
	if p >= partitions {
		return 0, 0, fmt.Errorf("%q: chat.dlq has no partition %d", id, p)
	}
	return p, off, nil
}

// redrive copies the dead letter id (PARTITION/OFFSET of chat.dlq) back
// to the partition of the topic it came from, with its key, value and
// headers but the dead-letter ones. It refuses a record that is not a
// dead letter, or that would go back to chat.dlq.
func redrive(ctx context.Context, cluster *kafkalog.Cluster, prefix, id string, out io.Writer, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, dlqTimeout)
	defer cancel()
	names := kafkalog.Names{Prefix: prefix}
	topic := names.Topic(schemas.TopicDLQ)
	client := kafkalog.NewClient(cluster)
	n, err := kafkalog.Partitions(ctx, client, topic)
	if err != nil {
		return err
	}
	p, off, err := parseLetterID(id, n)
	if err != nil {
		return err
	}
	first, end, err := offsets(ctx, client, topic, p)
	if err != nil {
		return err
	}
	if off < first || off >= end {
		return fmt.Errorf("%s %d/%d: no such record (the partition holds offsets %d to %d)", topic, p, off, first, end-1)
	}
	var l consumers.Letter
	err = readRange(ctx, cluster, topic, p, off, off+1, func(m kafka.Message) error {
		if m.Offset != off {
			return fmt.Errorf("%s %d/%d: no such record (compacted away?)", topic, p, off)
		}
		var err error
		l, err = consumers.ParseDeadLetter(m)
		return err
	})
	if err != nil {
		return fmt.Errorf("refusing to redrive %s %d/%d: %w", topic, p, off, err)
	}
	if names.Base(l.Topic) == schemas.TopicDLQ {
		return fmt.Errorf("refusing to redrive %s %d/%d: it came from %s itself", topic, p, off, l.Topic)
	}
	orig := l.Original()
	w := producers.NewPartitionWriter(cluster, orig.Topic, log)
	orig.Topic = "" // the writer's
	err = w.WriteMessages(ctx, orig)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("redriving %s %d/%d to %s/%d: %w", topic, p, off, l.Topic, l.Partition, err)
	}
	_, err = fmt.Fprintf(out, "redrove %s %d/%d to %s partition %d (key %q, dead-lettered by %s at offset %d)\n",
		topic, p, off, l.Topic, l.Partition, l.Message.Key, l.Group, l.Offset)
	return err
}
