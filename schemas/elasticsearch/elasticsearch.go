// Package elasticsearch is the Elasticsearch index template of Parley's
// search index, as code: messages.template.json beside this file,
// embedded in the binary, and the names derived from the alias.
//
// # The index
//
// Searches and live writes go to an alias (default parley-messages); the
// alias points at one concrete index, <alias>-NNNNNN, created from the
// template. A rebuild creates the next index, fills it from chat.events,
// and swaps the alias atomically, so the index can be rebuilt — for a new
// mapping or analyzer — without a moment of wrong or missing results.
// The template applies to new indices only: a changed mapping takes
// effect with the next rebuild.
//
// # The mapping
//
//   - conversation_id, sender_id: keyword — filters (terms, term) and the
//     sort's tie-breakers; never analyzed.
//   - seq: long — the last tie-breaker, so the sort order is total and
//     search_after paging exact.
//   - body: text with the parley_text analyzer: the standard tokenizer
//     (Unicode word segmentation, UAX #29) and lowercase. No stemming, no
//     stop words and no ASCII folding: chat is written in every language,
//     an English stemmer would conflate words users tell apart ("news",
//     "new"), and the same analysis in the embedded Bleve index keeps the
//     two adapters finding the same messages. A stemmed or folded
//     subfield can be added later, by rebuild.
//   - sent_at: date (millisecond precision) — range filters and the
//     newest-first sort.
//   - deleted: boolean — set on tombstones, the documents that remain of
//     a deleted message: no body, but the external version, so an older
//     event replayed later cannot bring the text back (Elasticsearch
//     forgets a real delete's version after index.gc_deletes, 60s).
//   - files: keyword, neither indexed nor with doc values — the names of
//     the message's files, kept in _source so that an edit, which
//     carries the new body only, keeps them (body holds their
//     searchable text). The adapter adds it to older indices at startup.
//   - dynamic: strict — a document with any other field is refused, not
//     silently mapped.
//   - _routing required: the conversation id, so a conversation's
//     documents live on one shard and a search of a few conversations
//     asks only their shards.
//
// Versions are external (version_type=external, version = the seq of
// the event that made the change), so Elasticsearch itself refuses a
// change no newer than the stored document with a 409, which the
// adapter counts as success.
//
// The package has no state and is safe for concurrent use.
package elasticsearch

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
)

// DefaultAlias is the alias searched and written when none is configured.
const DefaultAlias = "parley-messages"

//go:embed messages.template.json
var messagesTemplate []byte

var aliasPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,200}$`)

// ValidAlias reports whether alias can name Parley's search alias and
// prefix its indices.
func ValidAlias(alias string) bool { return aliasPattern.MatchString(alias) }

// Template returns the body of the index template (PUT
// _index_template/<alias>) for the indices of alias: the embedded
// template with index_patterns set to <alias>-*.
func Template(alias string) ([]byte, error) {
	if !ValidAlias(alias) {
		return nil, fmt.Errorf("invalid alias %q", alias)
	}
	var t map[string]any
	if err := json.Unmarshal(messagesTemplate, &t); err != nil {
		return nil, fmt.Errorf("parsing messages.template.json: %w", err)
	}
	t["index_patterns"] = []string{alias + "-*"}
	return json.Marshal(t)
}

// IndexName returns the name of generation n (from 1) of alias's indices.
func IndexName(alias string, n int) string { return fmt.Sprintf("%s-%06d", alias, n) }

// ParseIndexName returns the generation of an index of alias, and whether
// name is one.
func ParseIndexName(alias, name string) (int, bool) {
	var n int
	rest := name[min(len(name), len(alias)+1):]
	if len(name) != len(alias)+7 || name[:len(alias)] != alias || name[len(alias)] != '-' {
		return 0, false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n > 0
}
