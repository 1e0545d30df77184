package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/projections/delivery"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/projections/search/blevestore"
	"github.com/parley-chat/parley/projections/search/searchtest"
	"github.com/parley-chat/parley/schemas"
	"github.com/parley-chat/parley/schemas/contractcheck"
)

// searchHub answers membership from a fixed set of conversations.
type searchHub struct {
	convs map[string]history.Conversation
}

func (h searchHub) Await(string, string, string) (<-chan delivery.Outcome, func()) {
	panic("searchHub: not used")
}

func (h searchHub) Conversation(_ context.Context, id string) (history.Conversation, error) {
	c, ok := h.convs[id]
	if !ok {
		return c, history.ErrNotFound
	}
	return c, nil
}

func (h searchHub) NewSession(string) Session { return nil }

// searchHistory serves inboxes from the same conversations; its other
// methods are not used by search.
type searchHistory struct {
	history.Reader
	convs map[string]history.Conversation
	// inboxOverride, if set, is what Conversations returns: to play a
	// lagging projection.
	inboxOverride []history.Conversation
	fail          error

	mu     sync.Mutex
	limits []int
}

func (h *searchHistory) Conversations(_ context.Context, user string, limit int) ([]history.Conversation, error) {
	h.mu.Lock()
	h.limits = append(h.limits, limit)
	h.mu.Unlock()
	if h.fail != nil {
		return nil, h.fail
	}
	if h.inboxOverride != nil {
		return h.inboxOverride, nil
	}
	var out []history.Conversation
	for _, c := range h.convs {
		if c.IsMember(user) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b history.Conversation) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

type searchAppender struct{}

func (searchAppender) Enqueue(context.Context, string, string, any, string) (<-chan error, error) {
	written := make(chan error, 1)
	written <- nil
	return written, nil
}

// fakeSearcher records queries and answers with fn.
type fakeSearcher struct {
	mu      sync.Mutex
	queries []search.Query
	fn      func(search.Query) (search.Result, error)
}

func (f *fakeSearcher) Search(_ context.Context, q search.Query) (search.Result, error) {
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.mu.Unlock()
	if f.fn == nil {
		return search.Result{}, nil
	}
	return f.fn(q)
}

func (f *fakeSearcher) last(t *testing.T) search.Query {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queries) == 0 {
		t.Fatal("the searcher was not called")
	}
	return f.queries[len(f.queries)-1]
}

func searchConv(id string, members ...string) history.Conversation {
	c := history.Conversation{State: conversation.State{ID: id, Kind: schemas.KindGroup}}
	for _, m := range members {
		c.Members = append(c.Members, schemas.Member{UserID: m, Role: schemas.RoleMember})
	}
	return c
}

var searchSecret = []byte("search-test-secret-of-at-least-32-bytes")

type searchEnv struct {
	t     *testing.T
	h     http.Handler
	auth  *Authenticator
	hist  *searchHistory
	check *contractcheck.Checker // every response must match openapi.yaml
}

func newSearchEnv(t *testing.T, sr Searcher, convs ...history.Conversation) *searchEnv {
	t.Helper()
	m := map[string]history.Conversation{}
	for _, c := range convs {
		m[c.ID] = c
	}
	auth, err := NewAuthenticator(AuthConfig{Secret: searchSecret})
	if err != nil {
		t.Fatal(err)
	}
	hist := &searchHistory{convs: m}
	s, err := New(Config{Auth: auth, Commands: searchAppender{}, Hub: searchHub{convs: m}, History: hist})
	if err != nil {
		t.Fatal(err)
	}
	check, err := contractcheck.New()
	if err != nil {
		t.Fatal(err)
	}
	return &searchEnv{t: t, h: s.authenticate(s.searchHandler(sr)), auth: auth, hist: hist, check: check}
}

// get runs GET /v1/search?query as user ("" for no token).
func (e *searchEnv) get(user, query string) (int, map[string]any) {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/v1/search?"+query, nil)
	if user != "" {
		tok, err := e.auth.Issue(user, time.Hour, time.Now())
		if err != nil {
			e.t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		e.t.Fatalf("GET %s: non-JSON answer %q", query, rec.Body.String())
	}
	ct := rec.Header().Get("Content-Type")
	if rec.Code >= 400 && ct != "application/problem+json" {
		e.t.Errorf("GET %s: %d with Content-Type %q, want application/problem+json", query, rec.Code, ct)
	}
	if err := e.check.Response(http.MethodGet, req.URL.String(), rec.Code, ct, rec.Body.Bytes()); err != nil {
		e.t.Error(err)
	}
	return rec.Code, out
}

func searchResults(out map[string]any) []map[string]any {
	list, _ := out["results"].([]any)
	res := make([]map[string]any, len(list))
	for i, r := range list {
		res[i] = r.(map[string]any)
	}
	return res
}

func TestSearchScope(t *testing.T) {
	t.Parallel()
	sr := &fakeSearcher{}
	env := newSearchEnv(t, sr, searchConv("g_ab", "alice", "bob"), searchConv("g_a", "alice"), searchConv("g_c", "carol"))

	if st, out := env.get("alice", "q=hello"); st != http.StatusOK || len(searchResults(out)) != 0 {
		t.Fatalf("search: %d %v", st, out)
	}
	if got := sr.last(t).Conversations; !slices.Equal(got, []string{"g_a", "g_ab"}) {
		t.Errorf("alice's search covers %v, want her conversations g_a, g_ab", got)
	}
	if env.hist.limits[0] != search.MaxConversations {
		t.Errorf("the inbox was read with limit %d, want %d", env.hist.limits[0], search.MaxConversations)
	}
	if _, _ = env.get("alice", "q=hello&conversation_id=g_ab"); !slices.Equal(sr.last(t).Conversations, []string{"g_ab"}) {
		t.Errorf("a filter of g_ab searched %v", sr.last(t).Conversations)
	}
	if _, _ = env.get("alice", "q=hello&conversation_id=g_ab,g_a&conversation_id=g_a"); !slices.Equal(sr.last(t).Conversations, []string{"g_a", "g_ab"}) {
		t.Errorf("a repeated filter searched %v", sr.last(t).Conversations)
	}
	calls := len(sr.queries)
	if st, out := env.get("alice", "q=hello&conversation_id=g_c"); st != http.StatusForbidden || out["code"] != schemas.CodeNotMember {
		t.Errorf("a forged filter: %d %v, want 403 not_member", st, out)
	}
	if st, out := env.get("alice", "q=hello&conversation_id=g_ab,g_c"); st != http.StatusForbidden || out["code"] != schemas.CodeNotMember {
		t.Errorf("a filter mixing in a foreign conversation: %d %v, want 403 not_member", st, out)
	}
	if st, out := env.get("alice", "q=hello&conversation_id=g_nope"); st != http.StatusNotFound || out["code"] != schemas.CodeConversationNotFound {
		t.Errorf("an unknown conversation: %d %v, want 404", st, out)
	}
	if len(sr.queries) != calls {
		t.Errorf("refused searches reached the index")
	}
	if st, out := env.get("dave", "q=hello"); st != http.StatusOK || len(searchResults(out)) != 0 || len(sr.queries) != calls {
		t.Errorf("a user without conversations: %d %v, searched %d times; want an empty result without a search", st, out, len(sr.queries)-calls)
	}
	if st, out := env.get("", "q=hello"); st != http.StatusUnauthorized {
		t.Errorf("no token: %d %v", st, out)
	}
}

func TestSearchRechecksEveryHit(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	hit := func(c string, seq uint64) search.Hit {
		return search.Hit{ConversationID: c, Seq: seq, SenderID: "x", SentAt: at, Snippet: "<mark>hi</mark>"}
	}
	sr := &fakeSearcher{fn: func(search.Query) (search.Result, error) {
		// A broken index: hits of a conversation outside the query, and
		// of one the user has left since the inbox was built.
		return search.Result{Hits: []search.Hit{hit("g_a", 2), hit("g_c", 1), hit("g_left", 9), hit("g_a", 1)}}, nil
	}}
	env := newSearchEnv(t, sr, searchConv("g_a", "alice"), searchConv("g_c", "carol"), searchConv("g_left", "bob"))
	env.hist.inboxOverride = []history.Conversation{searchConv("g_a", "alice"), searchConv("g_left", "alice")}
	st, out := env.get("alice", "q=hi")
	if st != http.StatusOK {
		t.Fatalf("%d %v", st, out)
	}
	var got []string
	for _, r := range searchResults(out) {
		got = append(got, fmt.Sprintf("%s/%v", r["conversation_id"], r["seq"]))
	}
	if !slices.Equal(got, []string{"g_a/2", "g_a/1"}) {
		t.Errorf("results %v, want only g_a's", got)
	}
	r := searchResults(out)[0]
	if r["sender_id"] != "x" || r["sent_at"] != "2025-01-02T03:04:05.000000006Z" || r["snippet"] != "<mark>hi</mark>" {
		t.Errorf("result %v lacks the hit's fields", r)
	}
}

func TestSearchRequestValidation(t *testing.T) {
	t.Parallel()
	sr := &fakeSearcher{}
	env := newSearchEnv(t, sr, searchConv("g_a", "alice"))
	bad := map[string]string{
		"no q":                     "",
		"an empty q":               "q=+++",
		"an open quote":            "q=" + url.QueryEscape(`"hello`),
		"only exclusions":          "q=-hello",
		"an unknown parameter":     "q=hi&size=5",
		"q twice":                  "q=hi&q=ho",
		"a malformed conversation": "q=hi&conversation_id=" + url.QueryEscape("a/b"),
		"too many conversations":   "q=hi&conversation_id=" + manyConversations(21),
		"a malformed sender":       "q=hi&sender=" + url.QueryEscape("a b"),
		"a malformed from":         "q=hi&from=yesterday",
		"a from before 1970":       "q=hi&from=1969-12-31T00:00:00Z",
		"from after to":            "q=hi&from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z",
		"an unknown sort":          "q=hi&sort=oldest",
		"limit 0":                  "q=hi&limit=0",
		"limit 101":                "q=hi&limit=101",
		"a garbage cursor":         "q=hi&cursor=%21%21",
		"a long cursor":            "q=hi&cursor=" + strings.Repeat("A", 600),
	}
	for name, query := range bad {
		st, out := env.get("alice", query)
		if st != http.StatusBadRequest || out["code"] != codeInvalidRequest {
			t.Errorf("%s: %d %v, want 400 invalid_request", name, st, out)
		}
	}
	if len(sr.queries) != 0 {
		t.Errorf("invalid requests reached the index: %v", sr.queries)
	}
	st, _ := env.get("alice", "q="+url.QueryEscape(`deploy "release notes" -draft`)+"&sender=bob&from=2025-01-01T00:00:00Z&to=2025-02-01T00:00:00.5Z&sort=relevance&limit=7")
	if st != http.StatusOK {
		t.Fatalf("a valid request: %d", st)
	}
	q := sr.last(t)
	want := search.Query{
		Text: `deploy "release notes" -draft`, Conversations: []string{"g_a"}, Sender: "bob",
		From: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 2, 1, 0, 0, 0, 5e8, time.UTC),
		Sort: search.SortRelevance, Limit: 7,
	}
	if q.Text != want.Text || !slices.Equal(q.Conversations, want.Conversations) || q.Sender != want.Sender ||
		!q.From.Equal(want.From) || !q.To.Equal(want.To) || q.Sort != want.Sort || q.Limit != want.Limit || q.After != nil {
		t.Errorf("query %+v, want %+v", q, want)
	}
	if _, _ = env.get("alice", "q=hi"); sr.last(t).Limit != defaultSearchLimit || sr.last(t).Sort != search.SortRecent {
		t.Errorf("defaults: %+v", sr.last(t))
	}
}

func TestSearchIndexErrors(t *testing.T) {
	t.Parallel()
	var fail error
	sr := &fakeSearcher{fn: func(search.Query) (search.Result, error) { return search.Result{}, fail }}
	env := newSearchEnv(t, sr, searchConv("g_a", "alice"))
	fail = fmt.Errorf("adapter: %w: limit", search.ErrBadQuery)
	if st, out := env.get("alice", "q=hi"); st != http.StatusBadRequest || out["code"] != codeInvalidRequest {
		t.Errorf("ErrBadQuery from the index: %d %v, want 400 invalid_request", st, out)
	}
	fail = errors.New("connection refused")
	if st, out := env.get("alice", "q=hi"); st != http.StatusServiceUnavailable || out["retryable"] != true {
		t.Errorf("an index failure: %d %v, want 503 retryable", st, out)
	}
	env.hist.fail = errors.New("store down")
	if st, _ := env.get("alice", "q=hi"); st != http.StatusServiceUnavailable {
		t.Errorf("a history failure: %d, want 503", st)
	}
	noIndex := newSearchEnv(t, nil, searchConv("g_a", "alice"))
	if st, out := noIndex.get("alice", "q=hi"); st != http.StatusServiceUnavailable {
		t.Errorf("no index configured: %d %v, want 503", st, out)
	}
}

func TestSearchCursor(t *testing.T) {
	t.Parallel()
	next := search.Key{Score: 1.2345678, SentAt: time.Date(2025, 3, 1, 0, 0, 0, 7, time.UTC), ConversationID: "g_a", Seq: 42}
	sr := &fakeSearcher{fn: func(q search.Query) (search.Result, error) {
		if q.After != nil {
			return search.Result{}, nil
		}
		return search.Result{Hits: []search.Hit{{ConversationID: "g_a", Seq: 42}}, Next: &next}, nil
	}}
	env := newSearchEnv(t, sr, searchConv("g_a", "alice"), searchConv("g_b", "alice"))
	for _, order := range []string{"recent", "relevance"} {
		base := "q=hi&conversation_id=g_a&sort=" + order
		_, out := env.get("alice", base)
		cursor, _ := out["next_cursor"].(string)
		if cursor == "" {
			t.Fatalf("%s: no next_cursor in %v", order, out)
		}
		if _, err := base64.RawURLEncoding.DecodeString(cursor); err != nil {
			t.Errorf("%s: cursor %q is not base64url: %v", order, cursor, err)
		}
		st, out := env.get("alice", base+"&limit=5&cursor="+cursor)
		if st != http.StatusOK || out["next_cursor"] != nil {
			t.Fatalf("%s: the second page: %d %v", order, st, out)
		}
		got := sr.last(t).After
		want := next
		if order == "recent" {
			want.Score = 0
		}
		if got == nil || *got != want && !(got.SentAt.Equal(want.SentAt) && got.Score == want.Score && got.ConversationID == want.ConversationID && got.Seq == want.Seq) {
			t.Errorf("%s: the cursor gave After %+v, want %+v", order, got, want)
		}
		for name, other := range map[string]string{
			"another text":         "q=ho&conversation_id=g_a&sort=" + order,
			"another conversation": "q=hi&conversation_id=g_b&sort=" + order,
			"another sort":         "q=hi&conversation_id=g_a&sort=" + map[string]string{"recent": "relevance", "relevance": "recent"}[order],
			"another sender":       base + "&sender=bob",
			"a time range":         base + "&from=2025-01-01T00:00:00Z",
		} {
			if st, out := env.get("alice", other+"&cursor="+cursor); st != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["detail"]), "different search") {
				t.Errorf("%s: the cursor replayed with %s: %d %v, want 400", order, name, st, out)
			}
		}
		if st, _ := env.get("bob", base+"&cursor="+cursor); st == http.StatusOK {
			t.Errorf("%s: another user replayed the cursor", order)
		}
	}
}

func manyConversations(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("g_%d", i)
	}
	return strings.Join(ids, ",")
}

// FuzzDecodeCursor checks that no cursor a client sends makes the
// decoder panic or yield a key the index would refuse.
func FuzzDecodeCursor(f *testing.F) {
	hash := "00112233445566778899aabb"
	f.Add(encodeCursor(search.Key{SentAt: time.Unix(1, 0), ConversationID: "g", Seq: 1}, hash, search.SortRecent))
	f.Add(encodeCursor(search.Key{Score: 2, SentAt: time.Unix(1, 0), ConversationID: "g", Seq: 1}, hash, search.SortRelevance))
	f.Add("e30")
	f.Add("!!")
	f.Fuzz(func(t *testing.T, s string) {
		for _, order := range []search.Sort{search.SortRecent, search.SortRelevance} {
			k, e := decodeCursor(s, hash, order)
			if e != nil {
				if e.Status != http.StatusBadRequest {
					t.Fatalf("status %d for a bad cursor", e.Status)
				}
				continue
			}
			q := search.Query{Text: "x", Conversations: []string{"g"}, Limit: 1, Sort: order, After: k}
			if err := q.Validate(); err != nil {
				t.Fatalf("cursor %q decoded to a key the index refuses: %v", s, err)
			}
		}
	})
}

// TestSearchThroughBleve serves search from a real embedded index:
// members find their messages, others find nothing of them.
func TestSearchThroughBleve(t *testing.T) {
	t.Parallel()
	idx, err := blevestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	var docs []search.Doc
	for i := range 25 {
		docs = append(docs, searchtest.Msg("g_ab", uint64(i+1), "alice", fmt.Sprintf("launch plan part %d", i), searchtest.At(i)))
	}
	docs = append(docs, searchtest.Msg("g_c", 1, "carol", "carol's secret launch plan", searchtest.At(100)))
	if err := idx.Index(t.Context(), docs); err != nil {
		t.Fatal(err)
	}
	env := newSearchEnv(t, idx, searchConv("g_ab", "alice", "bob"), searchConv("g_c", "carol"))

	var seen []string
	query := "q=launch&limit=10"
	for page := 0; ; page++ {
		st, out := env.get("bob", query)
		if st != http.StatusOK || page > 5 {
			t.Fatalf("page %d: %d %v", page, st, out)
		}
		for _, r := range searchResults(out) {
			if r["conversation_id"] != "g_ab" {
				t.Fatalf("bob found %v", r)
			}
			if !strings.Contains(r["snippet"].(string), "<mark>launch</mark>") {
				t.Errorf("snippet %q", r["snippet"])
			}
			seen = append(seen, fmt.Sprint(r["seq"]))
		}
		cursor, _ := out["next_cursor"].(string)
		if cursor == "" {
			break
		}
		query = "q=launch&limit=10&cursor=" + cursor
	}
	if len(seen) != 25 || seen[0] != "25" || seen[24] != "1" {
		t.Errorf("bob paged through %v, want seqs 25 down to 1", seen)
	}
	if st, out := env.get("carol", "q=launch"); st != http.StatusOK || len(searchResults(out)) != 1 || searchResults(out)[0]["conversation_id"] != "g_c" {
		t.Errorf("carol: %d %v, want only her message", st, out)
	}
	if st, _ := env.get("carol", "q=launch&conversation_id=g_ab"); st != http.StatusForbidden {
		t.Errorf("carol with a forged filter: %d, want 403", st)
	}
	if st, out := env.get("mallory", "q=launch"); st != http.StatusOK || len(searchResults(out)) != 0 {
		t.Errorf("a stranger: %d %v, want nothing", st, out)
	}
	if st, _ := env.get("bob", "q="+url.QueryEscape(`launch "plan`)); st != http.StatusBadRequest {
		t.Errorf("a syntax error: %d, want 400", st)
	}
}
