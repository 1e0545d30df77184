// The Bleve index mapping: fields, analyzers and what is stored.

package blevestore

import (
	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	"github.com/blevesearch/bleve/v2/mapping"
)

// Field names. They match the Elasticsearch mapping in
// schemas/elasticsearch, plus two only Bleve needs (fieldSent,
// fieldVersion).
const (
	fieldConversation = "conversation_id"
	fieldSeq          = "seq"
	fieldSender       = "sender_id"
	fieldBody         = "body"
	fieldSentAt       = "sent_at"
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
	seq := bleve.NewNumericFieldMapping()
	seq.IncludeInAll = false
	sentAt := bleve.NewDateTimeFieldMapping()
	sentAt.Store, sentAt.IncludeInAll = false, false
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
	doc.AddFieldMappingsAt(fieldSentAt, sentAt)
	doc.AddFieldMappingsAt(fieldSent, sent)
	doc.AddFieldMappingsAt(fieldVersion, version)
	doc.AddFieldMappingsAt(fieldDeleted, deleted)
	doc.AddFieldMappingsAt(fieldFiles, files)
	m.DefaultMapping = doc
	m.DefaultField = fieldBody
	return m, m.Validate()
}
