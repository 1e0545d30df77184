// Searching Elasticsearch: the query body, sort keys and cursors.

package esindex

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/parley-chat/parley/projections/search"
)

// routingLimit is the most conversations for which a search names their
// routing values, so that Elasticsearch asks only their shards; a search
// of more conversations touches most shards anyway.
const routingLimit = 16

// Snippet settings: one fragment of about 150 characters around the
// match; a body without a highlighted match (cannot happen for a body
// query, but cheap to cover) gives its first 150 characters.
const snippetSize = 150

// esMillis formats a range bound to the millisecond, the precision of a
// date field (Query.Normalize has truncated it already).
const esMillis = "2006-01-02T15:04:05.000Z07:00"

// searchBody returns the request body of q, which must be valid and
// normalized.
func searchBody(q search.Query, text search.Text) map[string]any {
	var must, mustNot []any
	matchAnd := func(t string) any {
		return map[string]any{"match": map[string]any{"body": map[string]any{"query": t, "operator": "and"}}}
	}
	phrase := func(t string) any {
		return map[string]any{"match_phrase": map[string]any{"body": map[string]any{"query": t}}}
	}
	if w := text.Words(); w != "" {
		must = append(must, matchAnd(w))
	}
	for _, c := range text.Clauses {
		switch {
		case c.Phrase && c.Exclude:
			mustNot = append(mustNot, phrase(c.Text))
		case c.Phrase:
			must = append(must, phrase(c.Text))
		case c.Exclude:
			mustNot = append(mustNot, matchAnd(c.Text))
		}
	}
	filter := []any{map[string]any{"terms": map[string]any{"conversation_id": q.Conversations}}}
	if q.Sender != "" {
		filter = append(filter, map[string]any{"term": map[string]any{"sender_id": q.Sender}})
	}
	if !q.From.IsZero() || !q.To.IsZero() {
		r := map[string]any{"format": "strict_date_optional_time"}
		if !q.From.IsZero() {
			r["gte"] = q.From.UTC().Format(esMillis)
		}
		if !q.To.IsZero() {
			r["lt"] = q.To.UTC().Format(esMillis)
		}
		filter = append(filter, map[string]any{"range": map[string]any{"sent_at": r}})
	}
	boolQ := map[string]any{"must": must, "filter": filter}
	if len(mustNot) > 0 {
		boolQ["must_not"] = mustNot
	}
	desc := map[string]any{"order": "desc"}
	sort := []any{
		map[string]any{"sent_at": desc},
		map[string]any{"conversation_id": desc},
		map[string]any{"seq": desc},
	}
	var after []any
	if a := q.After; a != nil {
		after = []any{a.SentAt.UnixMilli(), a.ConversationID, a.Seq}
	}
	if q.Sort == search.SortRelevance {
		sort = append([]any{map[string]any{"_score": desc}}, sort...)
		if after != nil {
			after = append([]any{json.Number(strconv.FormatFloat(q.After.Score, 'g', -1, 64))}, after...)
		}
	}
	body := map[string]any{
		"size":             q.Limit + 1,
		"track_total_hits": false,
		"_source":          []string{"conversation_id", "seq", "sender_id", "sent_at"},
		"query":            map[string]any{"bool": boolQ},
		"sort":             sort,
		"highlight": map[string]any{
			"pre_tags":  []string{"<mark>"},
			"post_tags": []string{"</mark>"},
			"encoder":   "html",
			"fields": map[string]any{"body": map[string]any{
				"number_of_fragments": 1,
				"fragment_size":       snippetSize,
				"no_match_size":       snippetSize,
			}},
		},
	}
	if after != nil {
		body["search_after"] = after
	}
	return body
}

type searchResponse struct {
	Hits struct {
		Hits []struct {
			ID     string       `json:"_id"`
			Score  *json.Number `json:"_score"`
			Source struct {
				ConversationID string      `json:"conversation_id"`
				Seq            json.Number `json:"seq"`
				SenderID       string      `json:"sender_id"`
				SentAt         string      `json:"sent_at"`
			} `json:"_source"`
			Highlight map[string][]string `json:"highlight"`
			Sort      []any               `json:"sort"`
		} `json:"hits"`
	} `json:"hits"`
}

// Search implements search.Searcher.
func (ix *Index) Search(ctx context.Context, q search.Query) (search.Result, error) {
	if err := ctx.Err(); err != nil {
		return search.Result{}, fmt.Errorf("searching: %w", err)
	}
	if err := q.Validate(); err != nil {
		return search.Result{}, err
	}
	q = q.Normalize()
	if len(q.Conversations) == 0 {
		return search.Result{}, nil
	}
	text, err := search.ParseText(q.Text)
	if err != nil {
		return search.Result{}, err
	}
	body, err := json.Marshal(searchBody(q, text))
	if err != nil {
		return search.Result{}, fmt.Errorf("encoding the search: %w", err)
	}
	req := esapi.SearchRequest{Index: []string{ix.cfg.Alias}, Body: bytes.NewReader(body)}
	if len(q.Conversations) <= routingLimit {
		req.Routing = q.Conversations
	}
	var res searchResponse
	if err := ix.do(ctx, "searching", req, &res); err != nil {
		return search.Result{}, err
	}
	allowed := q.Allowed()
	var out search.Result
	hits := res.Hits.Hits
	if len(hits) > q.Limit {
		hits = hits[:q.Limit]
	}
	for i, h := range hits {
		seq, err1 := strconv.ParseUint(string(h.Source.Seq), 10, 64)
		sent, err2 := time.Parse(time.RFC3339Nano, h.Source.SentAt)
		if err1 != nil || err2 != nil || h.Source.ConversationID == "" {
			return search.Result{}, fmt.Errorf("searching: document %s lacks its fields", h.ID)
		}
		hit := search.Hit{ConversationID: h.Source.ConversationID, Seq: seq, SenderID: h.Source.SenderID, SentAt: sent.UTC()}
		if f := h.Highlight["body"]; len(f) > 0 {
			hit.Snippet = f[0]
		}
		key, err := sortKey(q.Sort, h.Sort)
		if err != nil {
			return search.Result{}, fmt.Errorf("searching: document %s: %w", h.ID, err)
		}
		hit.Key = key
		if q.Sort == search.SortRelevance {
			hit.Score = key.Score
		}
		if i == q.Limit-1 && len(res.Hits.Hits) > q.Limit {
			k := key
			out.Next = &k
		}
		if !allowed(hit.ConversationID) {
			ix.log.Error("search index returned a conversation outside the query; dropped", "conversation_id", hit.ConversationID)
			continue
		}
		out.Hits = append(out.Hits, hit)
	}
	return out, nil
}

// sortKey turns a hit's sort values into a Key: [score,] sent_at millis,
// conversation id, seq.
func sortKey(order search.Sort, vals []any) (search.Key, error) {
	var k search.Key
	num := func(v any, what string) (json.Number, error) {
		n, ok := v.(json.Number)
		if !ok {
			return "", fmt.Errorf("%s sort value %v is not a number", what, v)
		}
		return n, nil
	}
	if order == search.SortRelevance {
		if len(vals) != 4 {
			return k, fmt.Errorf("%d sort values, want 4", len(vals))
		}
		n, err := num(vals[0], "score")
		if err != nil {
			return k, err
		}
		if k.Score, err = n.Float64(); err != nil {
			return k, fmt.Errorf("score sort value %q: %w", n, err)
		}
		vals = vals[1:]
	}
	if len(vals) != 3 {
		return k, fmt.Errorf("%d sort values, want 3", len(vals))
	}
	n, err := num(vals[0], "sent_at")
	if err != nil {
		return k, err
	}
	ms, err := n.Int64()
	if err != nil {
		return k, fmt.Errorf("sent_at sort value %q: %w", n, err)
	}
	conv, ok := vals[1].(string)
	if !ok {
		return k, fmt.Errorf("conversation_id sort value %v is not a string", vals[1])
	}
	if n, err = num(vals[2], "seq"); err != nil {
		return k, err
	}
	seq, err := strconv.ParseUint(string(n), 10, 64)
	if err != nil {
		return k, fmt.Errorf("seq sort value %q: %w", n, err)
	}
	k.SentAt, k.ConversationID, k.Seq = time.UnixMilli(ms).UTC(), conv, seq
	return k, nil
}
