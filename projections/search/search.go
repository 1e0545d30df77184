// The search port: documents, queries, results, and the Index the
// adapters implement.

package search

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/schemas"
)

// Errors of the port. Adapters return them wrapped; only the gateway maps
// them to HTTP.
var (
	// ErrBadQuery is returned for a query that cannot be run as given: a
	// syntax error in its text, a limit out of range, a malformed cursor
	// position. It is the caller's fault; retrying does not help.
	ErrBadQuery = errors.New("bad search query")
)

// Kind says what a Doc does to the index.
type Kind uint8

// Kinds of Doc.
const (
	// KindNone changes nothing: the event has no effect on the index (a
	// conversation's creation, a type this version does not know), but the
	// projection still passes it on so that the batch commits.
	KindNone Kind = iota
	// KindIndex creates or replaces the message's document.
	KindIndex
	// KindDelete removes the message's text from the index. Adapters keep
	// a tombstone with the version, so that an older event arriving later
	// (a redelivery, a replay) never brings the text back.
	KindDelete
	// KindEdit gives the message's document a new body and keeps its
	// files: an edit carries the new body only, so adapters take the
	// file names from the document as the same batch or the index has
	// it (see Fold). It changes nothing of a deleted message; with no
	// document at all it indexes the message without files.
	KindEdit
	// KindErase blanks an erased user's messages (Projection.Apply passes
	// it to Eraser.Erase; an Indexer never sees it): SenderID is their
	// erasure reference, SentAt the time of the erasure.
	KindErase
)

func (k Kind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindIndex:
		return "index"
	case KindDelete:
		return "delete"
	case KindEdit:
		return "edit"
	case KindErase:
		return "erase"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Doc is one message as the index keeps it, or the removal of one.
type Doc struct {
	Kind           Kind
	ConversationID string
	// Seq is the message's per-conversation sequence number: with the
	// conversation, the document's identity (see ID).
	Seq uint64
	// Version orders the changes of one document: a change is applied only
	// if its Version is greater than the stored one. It is the seq of the
	// event that made the change (per conversation, seq orders every
	// event), so a message's own event has Version == Seq and a later edit
	// or deletion of it has a greater one. Adapters keep versions as exact
	// integers up to 2^53.
	Version  uint64
	SenderID string
	// Body is the message's body.
	Body string
	// Files are the names of the message's files, in its order. The
	// searchable text is the body and the names (see Text); adapters
	// store the names so that an edit (KindEdit) keeps them.
	Files  []string
	SentAt time.Time
}

// Text is what of the document is searchable: its body, then each file
// name on a line of its own after a paper clip, followed by the name's
// words, so that "photo" finds "photo.jpg" (word segmentation keeps
// "photo.jpg" whole).
func (d Doc) Text() string {
	text := d.Body
	for _, name := range d.Files {
		if text != "" {
			text += "\n"
		}
		text += "📎 " + name
		if words := strings.Join(strings.FieldsFunc(name, func(r rune) bool { return r == '.' || r == '_' || r == '-' }), " "); words != name {
			text += " (" + words + ")"
		}
	}
	return text
}

// Fold returns the change that applying d after cur makes to one
// document, d being the newer: d itself, but for an edit (KindEdit),
// which takes cur's files when cur is a message's document (and is then
// a KindIndex change), leaves a deletion as it is (cur is returned), and
// stays an edit after an edit whose files are not known yet. Adapters
// fold a batch's changes of a document in version order (Latest), then
// an edit left over with the document they store, or with none
// (cur.Kind KindNone: the edit is indexed without files).
func Fold(cur, d Doc) Doc {
	if d.Kind != KindEdit {
		return d
	}
	switch cur.Kind {
	case KindIndex:
		d.Kind, d.Files = KindIndex, cur.Files
	case KindDelete:
		return cur
	case KindNone:
		d.Kind = KindIndex
	}
	return d
}

// Latest folds the changes of docs per document in version order (a
// change at or below one already folded is dropped, so a repeated event
// counts once), leaving out KindNone docs, and returns them by ID.
func Latest(docs []Doc) map[string]Doc {
	sorted := slices.Clone(docs)
	slices.SortStableFunc(sorted, func(a, b Doc) int { return cmp.Compare(a.Version, b.Version) })
	latest := make(map[string]Doc, len(sorted))
	for _, d := range sorted {
		if d.Kind == KindNone {
			continue
		}
		cur, ok := latest[d.ID()]
		switch {
		case !ok:
			latest[d.ID()] = d
		case d.Version > cur.Version:
			latest[d.ID()] = Fold(cur, d)
		}
	}
	return latest
}

// ID is the document id: conversation id, "/", seq in decimal.
// Conversation ids never contain "/", so ids are unambiguous.
func (d Doc) ID() string { return DocID(d.ConversationID, d.Seq) }

// DocID is the id of the document of message seq of a conversation.
func DocID(conversationID string, seq uint64) string {
	return conversationID + "/" + strconv.FormatUint(seq, 10)
}

// Sort is the order of search results.
type Sort uint8

// Orders of results.
const (
	// SortRecent is newest first: sent_at descending (adapters compare it
	// at least to the millisecond), then conversation id, then seq, both
	// descending, so that the order is total and paging is exact.
	SortRecent Sort = iota
	// SortRelevance is best match first: score descending, then as
	// SortRecent. Scores depend on the whole index, so pages of a
	// relevance search are exact only while the index does not change.
	SortRelevance
)

// ParseSort parses "recent" or "relevance"; the error wraps ErrBadQuery.
func ParseSort(s string) (Sort, error) {
	switch s {
	case "recent":
		return SortRecent, nil
	case "relevance":
		return SortRelevance, nil
	}
	return 0, fmt.Errorf("%w: sort must be recent or relevance, got %q", ErrBadQuery, s)
}

func (s Sort) String() string {
	switch s {
	case SortRecent:
		return "recent"
	case SortRelevance:
		return "relevance"
	}
	return "sort(" + strconv.Itoa(int(s)) + ")"
}

// Key is a hit's position in the result order: a search with After set to
// a hit's Key continues right after that hit.
type Key struct {
	// Score is the hit's score; used by SortRelevance only.
	Score float64
	// SentAt is the sent_at the adapter sorts on (Elasticsearch keeps
	// milliseconds).
	SentAt         time.Time
	ConversationID string
	Seq            uint64
}

// Limits of a query.
const (
	// MaxLimit is the most hits one search returns.
	MaxLimit = 100
	// MaxConversations is the most conversations one search may cover.
	MaxConversations = 1000
)

// Query is one search. Its fields are conjunctive filters.
type Query struct {
	// Text is what to look for in message bodies, in the syntax of
	// ParseText. Required.
	Text string
	// Conversations are the only conversations searched: at least one
	// (none matches nothing), at most MaxConversations. The caller puts
	// here only conversations the user may read; adapters enforce it in
	// the query and again on every hit.
	Conversations []string
	// Sender, if set, keeps only messages sent by that user.
	Sender string
	// From, if set, keeps messages sent at or after it; To, if set,
	// messages sent before it. Both are used to the millisecond
	// (truncated), the precision every adapter agrees on.
	From, To time.Time
	Sort     Sort
	// Limit is the most hits returned, 1 to MaxLimit.
	Limit int
	// After, if set, continues after that position (Result.Next).
	After *Key
}

// Hit is one matching message.
type Hit struct {
	ConversationID string
	Seq            uint64
	SenderID       string
	SentAt         time.Time
	// Snippet is an HTML fragment of the body: the text escaped, the
	// matched words wrapped in <mark>...</mark>. Safe to insert as HTML.
	Snippet string
	// Score is the relevance score (0 when sorted by SortRecent).
	Score float64
	// Key is the hit's position, for Query.After.
	Key Key
}

// Result is a page of hits in the query's order.
type Result struct {
	Hits []Hit
	// Next is the position to continue after, or nil when no more hits
	// exist.
	Next *Key
}

// Indexer writes documents. Implementations are safe for concurrent use
// and idempotent: for each document the change with the greatest Version
// wins, whatever the order of calls and whether a change is repeated. A
// batch may hold several changes of one document and KindNone docs,
// which are ignored. When Index returns nil every change is durable; an
// error means some may not be, and the caller retries the whole batch.
// Index returns an error wrapping ctx.Err() when ctx ends first.
type Indexer interface {
	Index(ctx context.Context, docs []Doc) error
}

// Pinger is implemented by an index that can tell whether it takes
// writes now: Projection.Probe (see consumers.Prober) asks it before a
// message the index keeps refusing is dead-lettered. Ping must be safe for
// concurrent use; nil means writes succeed now.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Searcher runs searches. Implementations are safe for concurrent use and
// return an error wrapping ErrBadQuery for a query that fails Validate.
type Searcher interface {
	Search(ctx context.Context, q Query) (Result, error)
}

// Erasure is the erasure of a user's content (chat.user.erased.v1 on
// chat.audit), as an index applies it.
type Erasure struct {
	// SubjectRef is the user's reference (schemas.ErasureRef of their id).
	SubjectRef string
	// At is when their data key was destroyed: their messages sent up to
	// then are what the log can no longer open.
	At time.Time
}

// Eraser blanks an erased user's messages: every document of a message
// they sent at or before e.At becomes what indexing the message as the
// log reads after the erasure gives (ErasedDoc: no body, every file
// named contentkeys.Redacted), keeping its version; tombstones stay.
// It is idempotent. Safe for concurrent use.
type Eraser interface {
	Erase(ctx context.Context, e Erasure) error
}

// ErasedDoc is d, a message's document, as the sealed log reads once its
// author is erased: the body blank, each file name
// contentkeys.Redacted.
func ErasedDoc(d Doc) Doc {
	d.Body = ""
	if len(d.Files) > 0 {
		files := make([]string, len(d.Files))
		for i := range files {
			files[i] = contentkeys.Redacted
		}
		d.Files = files
	}
	return d
}

// Index is what an adapter provides.
type Index interface {
	Indexer
	Eraser
	Searcher
	// Refresh makes every change indexed so far visible to Search. Adapters
	// whose writes are visible at once do nothing.
	Refresh(ctx context.Context) error
	// Close releases the adapter; calls after Close fail.
	Close() error
}

// Lister is implemented by an index that can list what it holds of a
// conversation, for a verified rebuild (internal/rebuild) to compare two
// indexes through. Documents returns the conversation's documents, in
// seq order, as the index keeps them: a message's (KindIndex: Seq,
// Version, SenderID, Body as Text() made it, Files, SentAt) or a
// tombstone's (KindDelete: Seq, Version). Safe for concurrent use.
type Lister interface {
	Documents(ctx context.Context, conversationID string) ([]Doc, error)
}

// Rebuildable is an index that can be rebuilt beside itself while it
// keeps serving (see Rebuild).
type Rebuildable interface {
	// NewGeneration creates an empty index beside the live one.
	NewGeneration(ctx context.Context) (Generation, error)
}

// Generation is an index being rebuilt.
type Generation interface {
	Indexer
	// Refresh makes what was indexed visible to searches.
	Refresh(ctx context.Context) error
	// Promote makes the generation the live index, atomically for
	// searchers (Elasticsearch: the alias is swapped; Bleve: the current
	// directory is switched) and drops the previous one. The generation
	// stays usable as an Indexer, now writing to the live index.
	Promote(ctx context.Context) error
	// Discard drops a generation that was not promoted; after Promote it
	// only releases the handle.
	Discard(ctx context.Context) error
}

// Validate reports whether q can be run; the error wraps ErrBadQuery.
func (q Query) Validate() error {
	var errs []error
	if _, err := ParseText(q.Text); err != nil {
		errs = append(errs, err)
	}
	if len(q.Conversations) > MaxConversations {
		errs = append(errs, fmt.Errorf("%w: %d conversations, at most %d", ErrBadQuery, len(q.Conversations), MaxConversations))
	}
	for _, c := range q.Conversations {
		if !schemas.ValidConversationID(c) {
			errs = append(errs, fmt.Errorf("%w: malformed conversation id %q", ErrBadQuery, c))
			break
		}
	}
	if q.Sender != "" && !schemas.ValidUserID(q.Sender) {
		errs = append(errs, fmt.Errorf("%w: malformed sender %q", ErrBadQuery, q.Sender))
	}
	if n := q.Normalize(); !n.From.IsZero() && !n.To.IsZero() && !n.From.Before(n.To) {
		errs = append(errs, fmt.Errorf("%w: from must be at least a millisecond before to", ErrBadQuery))
	}
	for _, t := range []time.Time{q.From, q.To} {
		if !t.IsZero() && !InTimeRange(t) {
			errs = append(errs, fmt.Errorf("%w: time %s is out of range", ErrBadQuery, t.Format(time.RFC3339)))
		}
	}
	if q.Sort != SortRecent && q.Sort != SortRelevance {
		errs = append(errs, fmt.Errorf("%w: unknown sort %d", ErrBadQuery, q.Sort))
	}
	if q.Limit < 1 || q.Limit > MaxLimit {
		errs = append(errs, fmt.Errorf("%w: limit %d, want 1 to %d", ErrBadQuery, q.Limit, MaxLimit))
	}
	if a := q.After; a != nil {
		switch {
		case math.IsNaN(a.Score) || math.IsInf(a.Score, 0):
			errs = append(errs, fmt.Errorf("%w: cursor score is not a number", ErrBadQuery))
		case !schemas.ValidConversationID(a.ConversationID):
			errs = append(errs, fmt.Errorf("%w: cursor names a malformed conversation id", ErrBadQuery))
		case !InTimeRange(a.SentAt):
			errs = append(errs, fmt.Errorf("%w: cursor time is out of range", ErrBadQuery))
		}
	}
	return errors.Join(errs...)
}

// Times an index can hold: what nanoseconds since 1970 in an int64 reach
// (Bleve keeps times so, and Elasticsearch's date_nanos too).
var (
	minTime = time.Unix(0, 0).UTC()
	maxTime = time.Unix(0, math.MaxInt64).UTC()
)

// InTimeRange reports whether t is a time an index can hold and search
// by: from 1970 to April 2262.
func InTimeRange(t time.Time) bool { return !t.Before(minTime) && !t.After(maxTime) }

// Normalize returns q with the times truncated to the millisecond and in
// UTC, as adapters use them.
func (q Query) Normalize() Query {
	if !q.From.IsZero() {
		q.From = q.From.UTC().Truncate(time.Millisecond)
	}
	if !q.To.IsZero() {
		q.To = q.To.UTC().Truncate(time.Millisecond)
	}
	return q
}

// Allowed reports whether conversationID is one of q's conversations.
// Adapters call it on every hit before returning it.
func (q Query) Allowed() func(conversationID string) bool {
	set := make(map[string]struct{}, len(q.Conversations))
	for _, c := range q.Conversations {
		set[c] = struct{}{}
	}
	return func(c string) bool { _, ok := set[c]; return ok }
}
