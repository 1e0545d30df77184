// The two output formats of a replay: NDJSON in the CloudEvents JSON
// format, and Parquet.

package replay

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/parquet-go/parquet-go"
)

// CloudEvent is one line of NDJSON output: an event in the CloudEvents
// 1.0 JSON format (structured mode), with its data inline as JSON. The
// extension attributes seq and traceparent are those of the record;
// kafkatopic, kafkapartition, kafkaoffset and kafkakey say where in the
// log it is.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Seq             *uint64         `json:"seq,omitempty"`
	TraceParent     string          `json:"traceparent,omitempty"`
	KafkaTopic      string          `json:"kafkatopic"`
	KafkaPartition  int             `json:"kafkapartition"`
	KafkaOffset     int64           `json:"kafkaoffset"`
	KafkaKey        string          `json:"kafkakey"`
	Data            json.RawMessage `json:"data"`
}

// cloudEvent returns e in the CloudEvents JSON format.
func cloudEvent(e Event) CloudEvent {
	ce := CloudEvent{
		SpecVersion: "1.0", ID: e.Attrs.ID, Source: e.Attrs.Source, Type: e.Attrs.Type, Subject: e.Attrs.Subject,
		Time: e.Attrs.Time.UTC(), DataContentType: "application/json", TraceParent: e.Attrs.TraceParent,
		KafkaTopic: e.Topic, KafkaPartition: e.Partition, KafkaOffset: e.Offset, KafkaKey: e.Key, Data: e.Data,
	}
	if e.Attrs.HasSeq {
		seq := e.Attrs.Seq
		ce.Seq = &seq
	}
	return ce
}

// NDJSON writes events as newline-delimited JSON, one CloudEvent per
// line. Call Close to flush.
type NDJSON struct {
	w   *bufio.Writer
	enc *json.Encoder
}

// NewNDJSON returns an NDJSON sink writing to w.
func NewNDJSON(w io.Writer) *NDJSON {
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &NDJSON{w: bw, enc: enc}
}

// Write writes one line per event.
func (n *NDJSON) Write(events []Event) error {
	for _, e := range events {
		if err := n.enc.Encode(cloudEvent(e)); err != nil {
			return fmt.Errorf("ndjson: %w", err)
		}
	}
	return nil
}

// Close flushes what is buffered; it does not close the writer.
func (n *NDJSON) Close() error { return n.w.Flush() }

// Row is one row of Parquet output: an event's attributes as columns and
// its data as a JSON column. Seq is null on records without ce_seq.
type Row struct {
	Topic     string    `parquet:"topic,dict"`
	Partition int32     `parquet:"partition"`
	Offset    int64     `parquet:"offset,delta"`
	Key       string    `parquet:"key"`
	ID        string    `parquet:"id"`
	Type      string    `parquet:"type,dict"`
	Source    string    `parquet:"source,dict"`
	Subject   string    `parquet:"subject"`
	Time      time.Time `parquet:"time,timestamp(microsecond)"`
	Seq       *int64    `parquet:"seq,optional"`
	Data      string    `parquet:"data,json,zstd"`
}

func row(e Event) Row {
	r := Row{
		Topic: e.Topic, Partition: int32(e.Partition), Offset: e.Offset, Key: e.Key, ID: e.Attrs.ID,
		Type: e.Attrs.Type, Source: e.Attrs.Source, Subject: e.Attrs.Subject, Time: e.Attrs.Time.UTC(), Data: string(e.Data),
	}
	if e.Attrs.HasSeq {
		seq := int64(e.Attrs.Seq)
		r.Seq = &seq
	}
	return r
}

// Parquet writes events as rows of a Parquet file (see Row). The file is
// complete only after Close, which writes its footer.
type Parquet struct {
	w    *parquet.GenericWriter[Row]
	rows []Row
}

// NewParquet returns a Parquet sink writing to w.
func NewParquet(w io.Writer) *Parquet {
	return &Parquet{w: parquet.NewGenericWriter[Row](w)}
}

// Write adds a row per event.
func (p *Parquet) Write(events []Event) error {
	p.rows = p.rows[:0]
	for _, e := range events {
		p.rows = append(p.rows, row(e))
	}
	if _, err := p.w.Write(p.rows); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	return nil
}

// Close writes the rest of the file and its footer; it does not close
// the writer.
func (p *Parquet) Close() error {
	if err := p.w.Close(); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	return nil
}
