// The Bleve index mapping: fields, analyzers and what is stored.

package blevestore

import (
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	"github.com/blevesearch/bleve/v2/mapping"
)

// Field names. They match the Elasticsearch mapping in
// schemas/elasticsearch, plus those only Bleve needs (fieldOrder,
// fieldSent, fieldVersion, fieldDeleted, fieldFiles).
const (
	fieldConversation = "conversation_id"
	fieldSeq          = "seq"
	fieldSender       = "sender_id"
	fieldBody         = "body"
	// fieldSentAt is sent_at as a date-time, indexed in generations made
	// before fieldOrder (see generation.ordered); newer ones leave it out.
	fieldSentAt = "sent_at"
	// fieldOrder is the result order and time filter of a search as one
	// keyword (see orderKey), indexed with doc values and not stored.
	fieldOrder = "order"
	// fieldSent is sent_at as RFC 3339 with nanoseconds, stored only:
	// Bleve returns stored times to the second.
	fieldSent = "sent"
	// fieldVersion is the document's version, stored only; Elasticsearch
	// keeps it as the document's external _version.
	fieldVersion = "version"
	// fieldDeleted marks a tombstone.
	fieldDeleted = "deleted"
	// fieldFiles is the names of the message's files as a JSON array,
	// stored only (body holds their searchable text), so that an edit
	// keeps them; Elasticsearch keeps them in _source as files.
	fieldFiles = "files"
)

// textAnalyzer is the analyzer of body: Unicode word segmentation (UAX
// #29, like Elasticsearch's standard tokenizer) and lower-casing, so
// that Bleve and Elasticsearch split and match words alike. No stemming
// and no stop words: chat is written in every language, and an English
// stemmer would make "news" find "new" and miss nothing a user expects
// to find by typing the word they remember.
const textAnalyzer = "parley_text"

// newMapping returns the index mapping. It is stored in the index when
// the index is created; a change here takes effect after a rebuild.
func newMapping() (*mapping.IndexMappingImpl, error) {
	m := bleve.NewIndexMapping()
	if err := m.AddCustomAnalyzer(textAnalyzer, map[string]any{
		"type":          custom.Name,
		"tokenizer":     unicode.Name,
		"token_filters": []any{lowercase.Name},
	}); err != nil {
		return nil, err
	}
	m.DefaultAnalyzer = textAnalyzer
	m.IndexDynamic, m.StoreDynamic, m.DocValuesDynamic = false, false, false

	keywordField := func(store bool) *mapping.FieldMapping {
		f := bleve.NewKeywordFieldMapping()
		f.Analyzer = keyword.Name
		f.Store, f.IncludeInAll, f.IncludeTermVectors, f.DocValues = store, false, false, true
		return f
	}
	// A number or a date-time is indexed as 16 terms (Bleve's precision
	// step of 4 bits), each also in the doc values: 32 of a message's
	// ~45 terms were seq's and sent_at's, and building and merging
	// segments is most of what indexing costs. The order key is one term
	// and does all that seq and sent_at were indexed for: seq is stored
	// only.
	order := keywordField(false)
	seq := bleve.NewNumericFieldMapping()
	seq.Index, seq.Store, seq.IncludeInAll, seq.DocValues = false, true, false, false
	body := bleve.NewTextFieldMapping()
	body.Analyzer = textAnalyzer
	// Stored with term vectors: the highlighter needs both.
	body.Store, body.IncludeTermVectors, body.IncludeInAll, body.DocValues = true, true, false, false
	sent := bleve.NewTextFieldMapping()
	sent.Index, sent.Store, sent.IncludeInAll, sent.IncludeTermVectors, sent.DocValues = false, true, false, false, false
	version := bleve.NewNumericFieldMapping()
	version.Index, version.Store, version.IncludeInAll, version.DocValues = false, true, false, false
	files := bleve.NewTextFieldMapping()
	files.Index, files.Store, files.IncludeInAll, files.IncludeTermVectors, files.DocValues = false, true, false, false, false
	deleted := bleve.NewBooleanFieldMapping()
	deleted.Store, deleted.IncludeInAll, deleted.DocValues = false, false, false

	doc := bleve.NewDocumentStaticMapping()
	doc.AddFieldMappingsAt(fieldConversation, keywordField(true))
	doc.AddFieldMappingsAt(fieldSeq, seq)
	doc.AddFieldMappingsAt(fieldSender, keywordField(true))
	doc.AddFieldMappingsAt(fieldBody, body)
	doc.AddFieldMappingsAt(fieldOrder, order)
	doc.AddFieldMappingsAt(fieldSent, sent)
	doc.AddFieldMappingsAt(fieldVersion, version)
	doc.AddFieldMappingsAt(fieldDeleted, deleted)
	doc.AddFieldMappingsAt(fieldFiles, files)
	m.DefaultMapping = doc
	m.DefaultField = fieldBody
	return m, m.Validate()
}

// orderKey is the order key of message seq of conversation, sent at
// sent: the time in nanoseconds since 1970 as 16 hex digits (timeKey),
// the conversation id, a NUL and seq as 16 hex digits. Compared as
// bytes, keys are in search.SortRecent's order: by time (the index holds
// only times since 1970, search.InTimeRange), then by conversation id (a
// NUL is below every byte of an id, so an id sorts before the ids it is
// a prefix of, as strings do), then by seq. A message was sent in [from,
// to) when its key's first 16 bytes are in [timeKey(from), timeKey(to)).
func orderKey(sent time.Time, conversation string, seq uint64) string {
	b := make([]byte, 0, 2*16+1+len(conversation))
	b = appendHex16(b, uint64(sent.UnixNano()))
	b = append(b, conversation...)
	b = append(b, 0)
	b = appendHex16(b, seq)
	return string(b)
}

// timeKey is the first 16 bytes of the order key of a message sent at t.
func timeKey(t time.Time) string { return string(appendHex16(nil, uint64(t.UnixNano()))) }

// appendHex16 appends v as 16 lower-case hex digits.
func appendHex16(b []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, digits[v>>uint(shift)&0xf])
	}
	return b
}
