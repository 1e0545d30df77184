// Search: GET /v1/search, scoped to the caller's conversations and
// re-checked per hit, with query-bound cursors.

package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/schemas"
)

// Searcher runs full-text searches (search.Searcher: the embedded
// blevestore or the Elasticsearch esindex).
type Searcher interface {
	Search(ctx context.Context, q search.Query) (search.Result, error)
}

// Limits of GET /v1/search.
const (
	// searchInboxLimit is how many of the caller's conversations a search
	// without a conversation filter covers: the most recently active
	// ones, from the history store's inbox. Older conversations are
	// searched by naming them in conversation_id, which has no such cap.
	searchInboxLimit = search.MaxConversations
	// maxSearchFilter is the most conversations one conversation_id
	// filter may name.
	maxSearchFilter = 20
	// maxCursorLen bounds a cursor before it is decoded.
	maxCursorLen = 512
	// defaultSearchLimit is the page size when limit is not given.
	defaultSearchLimit = 20
)

var searchParams = []string{"q", "conversation_id", "sender", "from", "to", "sort", "limit", "cursor"}

// searchRequest is a parsed GET /v1/search.
type searchRequest struct {
	text    string
	filter  []string // sorted, unique
	sender  string
	from    time.Time
	to      time.Time
	sort    search.Sort
	limit   int
	cursor  string
	hashKey string
}

// searchResultJSON is one hit of GET /v1/search.
type searchResultJSON struct {
	ConversationID string    `json:"conversation_id"`
	Seq            uint64    `json:"seq"`
	SenderID       string    `json:"sender_id"`
	SentAt         time.Time `json:"sent_at"`
	// Snippet is HTML: the body escaped, matches in <mark>.
	Snippet string `json:"snippet"`
}

type searchResponseJSON struct {
	Results    []searchResultJSON `json:"results"`
	NextCursor string             `json:"next_cursor,omitempty"`
}

// searchHandler serves GET /v1/search with sr; with a nil sr it answers
// that search is unavailable.
//
//	GET /v1/search?q=…&conversation_id=…&sender=…&from=RFC3339&to=RFC3339
//	              &sort=recent|relevance&limit=1..100&cursor=…
//
// Only conversations the caller is a member of at query time are
// searched. Without conversation_id, they are the caller's
// searchInboxLimit most recently active conversations (the history
// store's inbox). With conversation_id (repeatable or comma-separated,
// at most maxSearchFilter), each is checked like any other read of a
// conversation: a conversation the caller is not in is 403 not_member, an
// unknown one 404 conversation_not_found — never an empty result that
// would look like "no matches". The set is enforced by the index query
// and re-checked on every hit against the set and the live membership.
//
// The cursor is opaque: base64url of the last hit's sort position and a
// hash of the caller and the query, so a cursor replayed with another
// query (or by another user) is refused with 400. A query text the
// search syntax refuses is 400 invalid_request, never 500.
func (s *Server) searchHandler(sr Searcher) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if sr == nil {
			writeProblem(w, newError(codeUnavailable, "search is not enabled on this node"))
			return
		}
		ctx := r.Context()
		me := identity(ctx).UserID
		req, e := parseSearchRequest(r, me)
		if e != nil {
			writeProblem(w, s.reject("gateway", e))
			return
		}
		var after *search.Key
		if req.cursor != "" {
			if after, e = decodeCursor(req.cursor, req.hashKey, req.sort); e != nil {
				writeProblem(w, s.reject("gateway", e))
				return
			}
		}
		scope, e := s.searchScope(ctx, me, req.filter)
		if e != nil {
			writeProblem(w, s.reject("gateway", e))
			return
		}
		out := searchResponseJSON{Results: []searchResultJSON{}}
		if len(scope) == 0 {
			writeJSON(w, http.StatusOK, out)
			return
		}
		res, err := sr.Search(ctx, search.Query{
			Text: req.text, Conversations: scope, Sender: req.sender, From: req.from, To: req.to,
			Sort: req.sort, Limit: req.limit, After: after,
		})
		switch {
		case errors.Is(err, search.ErrBadQuery):
			writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, err.Error())))
			return
		case err != nil:
			s.log.Error("searching", "user_id", me, "err", err)
			writeProblem(w, newError(codeUnavailable, "search index unavailable"))
			return
		}
		allowed := s.recheck(ctx, me, scope, res.Hits, len(req.filter) == 0)
		for _, h := range res.Hits {
			if !allowed[h.ConversationID] {
				continue
			}
			out.Results = append(out.Results, searchResultJSON{
				ConversationID: h.ConversationID, Seq: h.Seq, SenderID: h.SenderID, SentAt: h.SentAt.UTC(), Snippet: h.Snippet,
			})
		}
		if res.Next != nil {
			out.NextCursor = encodeCursor(*res.Next, req.hashKey, req.sort)
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// searchScope returns the conversations a search by user covers.
func (s *Server) searchScope(ctx context.Context, user string, filter []string) ([]string, *apiError) {
	if len(filter) > 0 {
		for _, id := range filter {
			if _, e := s.member(ctx, user, id); e != nil {
				return nil, e
			}
		}
		return filter, nil
	}
	convs, err := s.cfg.History.Conversations(ctx, user, searchInboxLimit)
	if err != nil {
		s.log.Error("listing conversations to search", "user_id", user, "err", err)
		return nil, newError(codeUnavailable, "history store unavailable")
	}
	scope := make([]string, 0, len(convs))
	for _, c := range convs {
		if c.IsMember(user) {
			scope = append(scope, c.ID)
		}
	}
	return scope, nil
}

// recheck returns which conversations of the hits user may see: those of
// the scope and, when the scope came from the inbox (which a projection
// builds and may lag), those the live membership check still allows.
func (s *Server) recheck(ctx context.Context, user string, scope []string, hits []search.Hit, live bool) map[string]bool {
	inScope := make(map[string]bool, len(scope))
	for _, c := range scope {
		inScope[c] = true
	}
	allowed := map[string]bool{}
	for _, h := range hits {
		c := h.ConversationID
		if _, seen := allowed[c]; seen {
			continue
		}
		ok := inScope[c]
		if !ok {
			s.log.Error("search index returned a conversation outside the query; dropped", "user_id", user, "conversation_id", c)
		} else if live {
			_, e := s.member(ctx, user, c)
			ok = e == nil
		}
		allowed[c] = ok
	}
	return allowed
}

func parseSearchRequest(r *http.Request, user string) (searchRequest, *apiError) {
	v := r.URL.Query()
	var req searchRequest
	for k, vals := range v {
		if !slices.Contains(searchParams, k) {
			return req, newError(codeInvalidRequest, "unknown parameter "+k+"; known: "+strings.Join(searchParams, ", "))
		}
		if k != "conversation_id" && len(vals) > 1 {
			return req, newError(codeInvalidRequest, k+" is given more than once")
		}
	}
	req.text = v.Get("q")
	if strings.TrimSpace(req.text) == "" {
		return req, newError(codeInvalidRequest, "q is required: the words to search for")
	}
	if _, err := search.ParseText(req.text); err != nil {
		return req, newError(codeInvalidRequest, err.Error())
	}
	for _, val := range v["conversation_id"] {
		for _, id := range strings.Split(val, ",") {
			if !schemas.ValidConversationID(id) {
				return req, newError(codeInvalidRequest, "malformed conversation_id")
			}
			req.filter = append(req.filter, id)
		}
	}
	slices.Sort(req.filter)
	req.filter = slices.Compact(req.filter)
	if len(req.filter) > maxSearchFilter {
		return req, newError(codeInvalidRequest, "conversation_id names more than 20 conversations")
	}
	if req.sender = v.Get("sender"); req.sender != "" && !schemas.ValidUserID(req.sender) {
		return req, newError(codeInvalidRequest, "malformed sender")
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &req.from}, {"to", &req.to}} {
		val := v.Get(p.name)
		if val == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, val)
		if err != nil || !search.InTimeRange(t) {
			return req, newError(codeInvalidRequest, p.name+" must be an RFC 3339 time between 1970 and 2262, e.g. 2025-03-14T15:09:26Z")
		}
		*p.dst = t
	}
	if !req.from.IsZero() && !req.to.IsZero() && !req.from.Truncate(time.Millisecond).Before(req.to.Truncate(time.Millisecond)) {
		return req, newError(codeInvalidRequest, "from must be before to")
	}
	if val := v.Get("sort"); val != "" {
		var err error
		if req.sort, err = search.ParseSort(val); err != nil {
			return req, newError(codeInvalidRequest, "sort must be recent or relevance")
		}
	}
	var e *apiError
	if req.limit, e = intParam(r, "limit", defaultSearchLimit, 1, search.MaxLimit); e != nil {
		return req, e
	}
	req.cursor = v.Get("cursor")
	if len(req.cursor) > maxCursorLen {
		return req, newError(codeInvalidRequest, "cursor is malformed")
	}
	req.hashKey = searchHash(user, req)
	return req, nil
}

// searchHash identifies the caller and everything of the query but the
// page size and the cursor.
func searchHash(user string, req searchRequest) string {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
	}
	h := sha256.New()
	for _, part := range []string{"parley-search-v1", user, req.text, strings.Join(req.filter, ","), req.sender, ts(req.from), ts(req.to), req.sort.String()} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// cursorJSON is what a cursor encodes.
type cursorJSON struct {
	Version        int      `json:"v"`
	Hash           string   `json:"h"`
	Score          *float64 `json:"s,omitempty"`
	SentAt         string   `json:"t"`
	ConversationID string   `json:"c"`
	Seq            uint64   `json:"n"`
}

func encodeCursor(k search.Key, hash string, order search.Sort) string {
	c := cursorJSON{Version: 1, Hash: hash, SentAt: k.SentAt.UTC().Format(time.RFC3339Nano), ConversationID: k.ConversationID, Seq: k.Seq}
	if order == search.SortRelevance {
		score := k.Score
		c.Score = &score
	}
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s, hash string, order search.Sort) (*search.Key, *apiError) {
	malformed := newError(codeInvalidRequest, "cursor is malformed; use the next_cursor of the previous page as it is")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, malformed
	}
	var c cursorJSON
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() || c.Version != 1 {
		return nil, malformed
	}
	if c.Hash != hash {
		return nil, newError(codeInvalidRequest, "cursor belongs to a different search; repeat the query that returned it")
	}
	t, err := time.Parse(time.RFC3339Nano, c.SentAt)
	if err != nil || !search.InTimeRange(t) || !schemas.ValidConversationID(c.ConversationID) {
		return nil, malformed
	}
	k := &search.Key{SentAt: t, ConversationID: c.ConversationID, Seq: c.Seq}
	if order == search.SortRelevance {
		if c.Score == nil || math.IsNaN(*c.Score) || math.IsInf(*c.Score, 0) {
			return nil, malformed
		}
		k.Score = *c.Score
	}
	return k, nil
}
