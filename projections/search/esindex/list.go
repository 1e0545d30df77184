// Listing what the index holds of a conversation, for verified rebuilds:
// a point in time, paged with search_after.

package esindex

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/parley-chat/parley/projections/search"
)

// listPage is how many documents one listing request returns.
const listPage = 500

// pitKeepAlive is how long Elasticsearch keeps a listing's point in time
// between two of its requests.
const pitKeepAlive = "1m"

var (
	_ search.Lister = (*Index)(nil)
	_ search.Lister = (*Generation)(nil)
)

// Documents implements search.Lister on the index behind the alias.
func (ix *Index) Documents(ctx context.Context, conversation string) ([]search.Doc, error) {
	return ix.documents(ctx, ix.cfg.Alias, conversation)
}

// Documents implements search.Lister on the generation's index.
func (g *Generation) Documents(ctx context.Context, conversation string) ([]search.Doc, error) {
	return g.ix.documents(ctx, g.name, conversation)
}

// documents lists the documents of conversation in target, in seq order,
// as they were when the listing started: it opens a point in time on
// target, pages through a term query on conversation_id sorted by seq
// (with the point in time's implicit _shard_doc tiebreaker) with
// search_after, reading each hit's _version and _source, and closes the
// point in time.
func (ix *Index) documents(ctx context.Context, target, conversation string) (out []search.Doc, err error) {
	what := "listing the documents of " + conversation
	var opened struct {
		ID string `json:"id"`
	}
	if err := ix.do(ctx, what+": opening a point in time", esapi.OpenPointInTimeRequest{Index: []string{target}, KeepAlive: pitKeepAlive}, &opened); err != nil {
		return nil, err
	}
	pit := opened.ID
	defer func() {
		body, _ := json.Marshal(map[string]string{"id": pit})
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ix.cfg.Timeout)
		defer cancel()
		if cerr := ix.do(cctx, what+": closing the point in time", esapi.ClosePointInTimeRequest{Body: bytes.NewReader(body)}, nil); cerr != nil && err == nil {
			ix.log.Warn("closing a point in time", "err", cerr)
		}
	}()
	var after []json.RawMessage
	for {
		req := map[string]any{
			"size":             listPage,
			"query":            map[string]any{"term": map[string]any{"conversation_id": conversation}},
			"pit":              map[string]any{"id": pit, "keep_alive": pitKeepAlive},
			"sort":             []any{map[string]any{"seq": map[string]any{"order": "asc"}}},
			"version":          true,
			"_source":          []string{"seq", "sender_id", "body", "sent_at", "deleted", "files"},
			"track_total_hits": false,
		}
		if after != nil {
			req["search_after"] = after
		}
		body, err := json.Marshal(req)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		var res struct {
			PitID string `json:"pit_id"`
			Hits  struct {
				Hits []struct {
					ID      string            `json:"_id"`
					Version int64             `json:"_version"`
					Source  docSource         `json:"_source"`
					Sort    []json.RawMessage `json:"sort"`
				} `json:"hits"`
			} `json:"hits"`
		}
		if err := ix.do(ctx, what, esapi.SearchRequest{Body: bytes.NewReader(body)}, &res); err != nil {
			return nil, err
		}
		if res.PitID != "" {
			pit = res.PitID // always the latest id, as Elasticsearch asks
		}
		for _, h := range res.Hits.Hits {
			d, err := listedDoc(conversation, h.Version, h.Source)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", what, h.ID, err)
			}
			out = append(out, d)
		}
		if len(res.Hits.Hits) < listPage {
			return out, nil
		}
		after = res.Hits.Hits[len(res.Hits.Hits)-1].Sort
		if len(after) == 0 {
			return nil, fmt.Errorf("%s: a hit without sort values", what)
		}
	}
}

// listedDoc is the search.Doc of a document's _source and version, as
// search.Lister describes it.
func listedDoc(conversation string, version int64, src docSource) (search.Doc, error) {
	if version < 0 {
		return search.Doc{}, fmt.Errorf("version %d", version)
	}
	d := search.Doc{Kind: search.KindDelete, ConversationID: conversation, Seq: src.Seq, Version: uint64(version)}
	if src.Deleted {
		return d, nil
	}
	d.Kind, d.SenderID, d.Files = search.KindIndex, src.SenderID, src.Files
	if src.Body != nil {
		d.Body = *src.Body
	}
	sent, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(src.SentAt))
	if err != nil {
		return search.Doc{}, fmt.Errorf("sent_at: %w", err)
	}
	d.SentAt = sent
	return d, nil
}
