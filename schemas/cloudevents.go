// The CloudEvents 1.0 Kafka binding, binary mode: record attributes and
// their headers.

package schemas

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CloudEvents 1.0 Kafka protocol binding, binary content mode: the event's
// attributes travel as headers, the value is the event's JSON.
const (
	HeaderSpecVersion = "ce_specversion"
	HeaderID          = "ce_id"
	HeaderType        = "ce_type"
	HeaderSource      = "ce_source"
	HeaderTime        = "ce_time"
	HeaderSubject     = "ce_subject"
	HeaderContentType = "content-type"
	// HeaderDataSchema is the CloudEvents dataschema attribute: set only
	// on a record whose value is not its type's JSON Schema's instance
	// but an envelope of it (see ContentTypeSealed).
	HeaderDataSchema = "ce_dataschema"
	// HeaderSeq is the CloudEvents extension attribute "seq": the event's
	// per-conversation sequence number, so a consumer can route and order
	// without parsing the value. Only records of TopicEvents carry it.
	HeaderSeq = "ce_seq"
	// HeaderTraceParent is the CloudEvents distributed-tracing extension
	// (W3C trace context), carried through when the request had one.
	HeaderTraceParent = "ce_traceparent"
	// HeaderCommandOffset is Parley-internal: the offset in TopicCommands
	// of the command an event answers. The decider uses it to resume
	// exactly after the last command it applied.
	HeaderCommandOffset = "parley_command_offset"
	// HeaderOriginNode is Parley-internal: the gateway node that appended
	// a command. The decider copies it onto the event or reply it
	// appends, so that targeted routing answers the sender's node even
	// when the sender holds no socket there.
	HeaderOriginNode = "parley_origin_node"
)

// Routing headers, added by the router to the records it copies to a
// node's delivery topic (DeliveryTopic) and to TopicChanges.
const (
	// HeaderRecipients lists, comma-separated, the users whose sockets on
	// the receiving node get the record. Empty on a copy sent only to
	// answer the command's origin node.
	HeaderRecipients = "parley_recipients"
	// HeaderPrevChangeSeq is, on an event that changes its conversation's
	// state beyond its messages (creation, membership, roles, title,
	// archive, blocks), the seq of the previous such change as the router
	// knew it, decimal. A reader whose copy of the conversation is at or
	// past it can apply the change; one behind it has missed a change.
	HeaderPrevChangeSeq = "parley_prev_change_seq"
)

// Dead-letter headers, added to a record copied to TopicDLQ; every one
// starts with HeaderDLQPrefix, and a record copied back to its topic
// (`parley dlq redrive`) has none of them.
const (
	HeaderDLQPrefix    = "parley_dlq_"
	HeaderDLQError     = "parley_dlq_error"
	HeaderDLQTopic     = "parley_dlq_topic"
	HeaderDLQPartition = "parley_dlq_partition"
	HeaderDLQOffset    = "parley_dlq_offset"
	HeaderDLQGroup     = "parley_dlq_group"
)

const (
	specVersion = "1.0"
	contentType = "application/json"
)

// The sealed envelope: a record whose personal content is encrypted
// (crypto-shredding, internal/contentkeys) has this content type and data
// schema instead of application/json and its type's schema. Its value is
// {"owner": USER, "data": EVENT, "sealed": BASE64}: EVENT is the event's
// JSON, valid against its ce_type's schema, with its personal fields
// blanked (bodies empty, file names "redacted", titles "redacted" or
// absent); sealed is the AES-256-GCM encryption, under USER's data key,
// of those fields. A reader without the key, or after the owner's
// erasure, reads EVENT.
const (
	ContentTypeSealed = "application/vnd.parley.sealed.v1+json"
	DataSchemaSealed  = SchemaBaseURL + "parley.sealed.v1.json"
)

// Header is one record header; it has the shape of a Kafka header so that
// adapters convert without copying the bytes.
type Header struct {
	Key   string
	Value []byte
}

// Attributes are the CloudEvents attributes of a record.
type Attributes struct {
	ID      string    // ce_id: unique per record
	Type    string    // ce_type, e.g. chat.message.sent.v1
	Source  string    // ce_source
	Subject string    // ce_subject: the conversation id
	Time    time.Time // ce_time
	// Seq is the per-conversation sequence number (events only).
	Seq uint64
	// HasSeq reports whether the record carries ce_seq.
	HasSeq      bool
	TraceParent string
	// CommandOffset is the offset of the command an event answers, or -1.
	CommandOffset int64
	// OriginNode is the gateway node that appended the command a record
	// answers (parley_origin_node), or "".
	OriginNode string
	// Sealed reports a sealed envelope: content-type ContentTypeSealed
	// (with ce_dataschema DataSchemaSealed) rather than application/json.
	Sealed bool
}

// ErrMissingAttribute is returned when a record lacks a required
// CloudEvents attribute.
var ErrMissingAttribute = errors.New("missing cloudevents attribute")

// Headers encodes the attributes as CloudEvents binary-mode headers.
func (a Attributes) Headers() []Header { return AppendHeaders([]Header(nil), a) }

// HeaderShape is Header or a type of its shape, such as kafka-go's
// Header: the header functions take and give adapters' headers without
// a copy of the list.
type HeaderShape interface {
	~struct {
		Key   string
		Value []byte
	}
}

// maxTimeLen is the longest ce_time: RFC 3339 with nanoseconds and a
// numeric zone offset.
const maxTimeLen = len("2006-01-02T15:04:05.999999999-07:00")

// AppendHeaders appends the CloudEvents binary-mode headers of a to dst
// (those of Attributes.Headers). Every value is a slice of one buffer
// allocated for the record, capped at its own length so that an append
// to one copies rather than overwrites the next.
func AppendHeaders[H HeaderShape](dst []H, a Attributes) []H {
	n := len(specVersion) + len(a.ID) + len(a.Type) + len(a.Source) + len(a.Subject) + maxTimeLen +
		len(a.TraceParent) + len(a.OriginNode)
	if a.Sealed {
		n += len(ContentTypeSealed) + len(DataSchemaSealed)
	} else {
		n += len(contentType)
	}
	if a.HasSeq {
		n += 20 // the longest uint64
	}
	if a.CommandOffset >= 0 {
		n += 19 // the longest int64 that is not negative
	}
	buf := make([]byte, 0, n)
	dst = slices.Grow(dst, 11)
	add := func(key string, value []byte) {
		dst = append(dst, H(Header{Key: key, Value: value[len(buf):len(value):len(value)]}))
		buf = value
	}
	add(HeaderSpecVersion, append(buf, specVersion...))
	add(HeaderID, append(buf, a.ID...))
	add(HeaderType, append(buf, a.Type...))
	add(HeaderSource, append(buf, a.Source...))
	add(HeaderSubject, append(buf, a.Subject...))
	add(HeaderTime, a.Time.UTC().AppendFormat(buf, time.RFC3339Nano))
	if a.Sealed {
		add(HeaderContentType, append(buf, ContentTypeSealed...))
		add(HeaderDataSchema, append(buf, DataSchemaSealed...))
	} else {
		add(HeaderContentType, append(buf, contentType...))
	}
	if a.HasSeq {
		add(HeaderSeq, strconv.AppendUint(buf, a.Seq, 10))
	}
	if a.TraceParent != "" {
		add(HeaderTraceParent, append(buf, a.TraceParent...))
	}
	if a.CommandOffset >= 0 {
		add(HeaderCommandOffset, strconv.AppendInt(buf, a.CommandOffset, 10))
	}
	if a.OriginNode != "" {
		add(HeaderOriginNode, append(buf, a.OriginNode...))
	}
	return dst
}

// sharedHeader reports whether ParseHeaders copies the header into the
// string it shares among the attributes: every header it reads but
// ce_id and ce_subject, which are copied on their own because they
// outlive the rest as map keys (caches of events and of conversations)
// and would keep the whole string alive with them.
func sharedHeader(key string) bool {
	switch key {
	case HeaderSpecVersion, HeaderType, HeaderSource, HeaderTime,
		HeaderSeq, HeaderTraceParent, HeaderCommandOffset, HeaderOriginNode, HeaderContentType:
		return true
	}
	return false
}

// ParseAttributes decodes CloudEvents binary-mode headers. It requires
// ce_specversion 1.0, ce_id, ce_type, ce_source and ce_time.
func ParseAttributes(headers []Header) (Attributes, error) { return ParseHeaders(headers) }

// ParseHeaders is ParseAttributes for headers of any type of Header's
// shape (an adapter's, without a copy of the list). The attributes'
// strings are copies, the headers may be reused afterwards: ce_id and
// ce_subject each their own, the others sharing one (see sharedHeader).
func ParseHeaders[H HeaderShape](headers []H) (Attributes, error) {
	a := Attributes{CommandOffset: -1}
	n := 0
	for _, x := range headers {
		if h := Header(x); sharedHeader(h.Key) {
			n += len(h.Value)
		}
	}
	var b strings.Builder
	b.Grow(n)
	for _, x := range headers {
		if h := Header(x); sharedHeader(h.Key) {
			b.Write(h.Value)
		}
	}
	values := b.String()
	var spec string
	for _, x := range headers {
		h := Header(x)
		switch h.Key {
		case HeaderID:
			a.ID = string(h.Value)
			continue
		case HeaderSubject:
			a.Subject = string(h.Value)
			continue
		}
		if !sharedHeader(h.Key) {
			continue
		}
		v := values[:len(h.Value)]
		values = values[len(h.Value):]
		switch h.Key {
		case HeaderSpecVersion:
			spec = v
		case HeaderType:
			a.Type = v
		case HeaderSource:
			a.Source = v
		case HeaderTime:
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return a, fmt.Errorf("parsing %s: %w", HeaderTime, err)
			}
			a.Time = t
		case HeaderSeq:
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return a, fmt.Errorf("parsing %s: %w", HeaderSeq, err)
			}
			a.Seq, a.HasSeq = n, true
		case HeaderTraceParent:
			a.TraceParent = v
		case HeaderCommandOffset:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return a, fmt.Errorf("parsing %s: invalid offset %q", HeaderCommandOffset, v)
			}
			a.CommandOffset = n
		case HeaderOriginNode:
			a.OriginNode = v
		case HeaderContentType:
			a.Sealed = v == ContentTypeSealed
		}
	}
	switch {
	case spec != specVersion:
		return a, fmt.Errorf("%w: %s must be %q, got %q", ErrMissingAttribute, HeaderSpecVersion, specVersion, spec)
	case a.ID == "":
		return a, fmt.Errorf("%w: %s", ErrMissingAttribute, HeaderID)
	case a.Type == "":
		return a, fmt.Errorf("%w: %s", ErrMissingAttribute, HeaderType)
	case a.Source == "":
		return a, fmt.Errorf("%w: %s", ErrMissingAttribute, HeaderSource)
	case a.Time.IsZero():
		return a, fmt.Errorf("%w: %s", ErrMissingAttribute, HeaderTime)
	}
	return a, nil
}
