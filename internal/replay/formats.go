// The two output formats of a replay: NDJSON in the CloudEvents JSON
// format, and Parquet.

package replay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
)

// CloudEvent is one line of NDJSON output: an event in the CloudEvents
// 1.0 JSON format (structured mode), with its data inline as JSON. The
// extension attributes seq and traceparent are those of the record;
// kafkatopic, kafkapartition, kafkaoffset and kafkakey say where in the
// log it is; sealed is true on an event whose personal content is sealed
// in the log (crypto-shredding), whether the replay opened it or shows it
// redacted.
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
	Sealed          bool            `json:"sealed,omitempty"`
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
		Time: e.Attrs.Time.UTC(), DataContentType: "application/json", TraceParent: e.Attrs.TraceParent, Sealed: e.Attrs.Sealed,
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
	w    *bufio.Writer
	line []byte
}

// NewNDJSON returns an NDJSON sink writing to w.
func NewNDJSON(w io.Writer) *NDJSON {
	return &NDJSON{w: bufio.NewWriterSize(w, 256<<10)}
}

// Write writes one line per event. It encodes the line itself rather
// than through encoding/json (which would re-validate the data already
// validated), field for field as CloudEvent marshals.
func (n *NDJSON) Write(events []Event) error {
	for _, e := range events {
		n.line = appendCloudEvent(n.line[:0], e)
		if _, err := n.w.Write(n.line); err != nil {
			return fmt.Errorf("ndjson: %w", err)
		}
	}
	return nil
}

// Close flushes what is buffered; it does not close the writer.
func (n *NDJSON) Close() error { return n.w.Flush() }

// appendCloudEvent appends the NDJSON line of e: what json.Marshal of
// cloudEvent(e) gives, with data compacted onto the line, and a newline.
func appendCloudEvent(b []byte, e Event) []byte {
	b = append(b, `{"specversion":"1.0","id":`...)
	b = appendString(b, e.Attrs.ID)
	b = append(b, `,"source":`...)
	b = appendString(b, e.Attrs.Source)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Attrs.Type)
	if e.Attrs.Subject != "" {
		b = append(b, `,"subject":`...)
		b = appendString(b, e.Attrs.Subject)
	}
	b = append(b, `,"time":"`...)
	b = e.Attrs.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","datacontenttype":"application/json"`...)
	if e.Attrs.HasSeq {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, e.Attrs.Seq, 10)
	}
	if e.Attrs.TraceParent != "" {
		b = append(b, `,"traceparent":`...)
		b = appendString(b, e.Attrs.TraceParent)
	}
	if e.Attrs.Sealed {
		b = append(b, `,"sealed":true`...)
	}
	b = append(b, `,"kafkatopic":`...)
	b = appendString(b, e.Topic)
	b = append(b, `,"kafkapartition":`...)
	b = strconv.AppendInt(b, int64(e.Partition), 10)
	b = append(b, `,"kafkaoffset":`...)
	b = strconv.AppendInt(b, e.Offset, 10)
	b = append(b, `,"kafkakey":`...)
	b = appendString(b, e.Key)
	b = append(b, `,"data":`...)
	if bytes.ContainsAny(e.Data, "\r\n") {
		// Whitespace between tokens with newlines in it: compact, so the
		// event stays on its line. Data was validated as JSON.
		var c bytes.Buffer
		if err := json.Compact(&c, e.Data); err == nil {
			b = append(b, c.Bytes()...)
		} else {
			b = append(b, "null"...)
		}
	} else {
		b = append(b, e.Data...)
	}
	return append(b, "}\n"...)
}

// appendString appends s as a JSON string, escaped as encoding/json
// escapes it without HTML escaping: invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

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
	Sealed    bool      `parquet:"sealed"`
	Data      string    `parquet:"data,json,zstd"`
}

func row(e Event) Row {
	r := Row{
		Topic: e.Topic, Partition: int32(e.Partition), Offset: e.Offset, Key: e.Key, ID: e.Attrs.ID,
		Type: e.Attrs.Type, Source: e.Attrs.Source, Subject: e.Attrs.Subject, Time: e.Attrs.Time.UTC(), Data: string(e.Data), Sealed: e.Attrs.Sealed,
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
