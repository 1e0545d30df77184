// Erasing a user's messages from the index.

package esindex

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/elastic/go-elasticsearch/v8/esutil"

	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/schemas"
)

// erasePage is how many documents Erase reads per request.
const erasePage = 1000

// Erase implements search.Eraser. The index keeps sender ids, not their
// erasure references, so Erase refreshes the alias and reads every
// document in (conversation_id, seq) order with search_after, hashing
// each sender (schemas.ErasureRef): a scan of the index per erasure,
// which erasures are rare enough to afford. The erased user's messages
// sent at or before e.At are indexed again as search.ErasedDoc, with
// their version and version_type external_gte, so that only a newer
// change of the document (a deletion) wins over the blanking.
func (ix *Index) Erase(ctx context.Context, e search.Erasure) error {
	return ix.erase(ctx, e, ix.cfg.Alias)
}

// Erase implements search.Eraser on the generation.
func (g *Generation) Erase(ctx context.Context, e search.Erasure) error {
	return g.ix.erase(ctx, e, g.name)
}

func (ix *Index) erase(ctx context.Context, e search.Erasure, target string) error {
	if err := ix.refresh(ctx, target); err != nil {
		return fmt.Errorf("erasing: %w", err)
	}
	asc := map[string]any{"order": "asc"}
	var after []any
	var docs []search.Doc
	for {
		body := map[string]any{
			"size":             erasePage,
			"track_total_hits": false,
			"_source":          []string{"conversation_id", "seq", "sender_id", "sent_at", "files", "deleted"},
			"query":            map[string]any{"match_all": map[string]any{}},
			"sort":             []any{map[string]any{"conversation_id": asc}, map[string]any{"seq": asc}},
		}
		if after != nil {
			body["search_after"] = after
		}
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("erasing: %w", err)
		}
		var res struct {
			Hits struct {
				Hits []struct {
					ID     string    `json:"_id"`
					Source docSource `json:"_source"`
					Sort   []any     `json:"sort"`
				} `json:"hits"`
			} `json:"hits"`
		}
		if err := ix.do(ctx, "listing documents to erase", esapi.SearchRequest{Index: []string{target}, Body: bytes.NewReader(b)}, &res); err != nil {
			return fmt.Errorf("erasing: %w", err)
		}
		for _, h := range res.Hits.Hits {
			s := h.Source
			if s.Deleted || s.SenderID == "" || schemas.ErasureRef(s.SenderID) != e.SubjectRef {
				continue
			}
			sent, err := time.Parse(time.RFC3339Nano, s.SentAt)
			if err != nil {
				return fmt.Errorf("erasing: %s: %w", h.ID, err)
			}
			if sent.After(e.At) {
				continue
			}
			docs = append(docs, search.ErasedDoc(search.Doc{Kind: search.KindIndex, ConversationID: s.ConversationID, Seq: s.Seq,
				SenderID: s.SenderID, Files: s.Files, SentAt: sent}))
		}
		if len(res.Hits.Hits) < erasePage {
			break
		}
		after = res.Hits.Hits[len(res.Hits.Hits)-1].Sort
	}
	if len(docs) == 0 {
		return nil
	}
	versions, err := ix.versions(ctx, docs, target)
	if err != nil {
		return fmt.Errorf("erasing: %w", err)
	}
	var (
		mu       sync.Mutex
		failures []error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 5 {
			failures = append(failures, err)
		}
	}
	for _, d := range docs {
		v, ok := versions[d.ID()]
		if !ok {
			continue // gone since
		}
		text := d.Text()
		src, err := json.Marshal(docSource{ConversationID: d.ConversationID, Seq: d.Seq, SenderID: d.SenderID, Body: &text,
			SentAt: d.SentAt.UTC().Format(time.RFC3339Nano), Files: d.Files})
		if err != nil {
			return fmt.Errorf("erasing: %w", err)
		}
		err = ix.bi.Add(ctx, esutil.BulkIndexerItem{
			Index: target, Action: "index", DocumentID: d.ID(), Routing: d.ConversationID,
			Version: &v, VersionType: "external_gte", Body: bytes.NewReader(src),
			OnFailure: func(_ context.Context, item esutil.BulkIndexerItem, res esutil.BulkIndexerResponseItem, err error) {
				switch {
				case err != nil:
					fail(fmt.Errorf("%s: %w", item.DocumentID, err))
				case res.Status == http.StatusConflict:
					// Changed since (a deletion): nothing of hers is left.
				default:
					fail(fmt.Errorf("%s: %d %s: %s", item.DocumentID, res.Status, res.Error.Type, res.Error.Reason))
				}
			},
		})
		if err != nil {
			return fmt.Errorf("erasing %s: %w", d.ID(), err)
		}
	}
	if err := ix.bi.Flush(ctx); err != nil {
		return fmt.Errorf("erasing: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		return fmt.Errorf("erasing %d documents: %w", len(docs), errors.Join(failures...))
	}
	return nil
}

// versions reads the current version of each of docs (_mget, real-time).
func (ix *Index) versions(ctx context.Context, docs []search.Doc, target string) (map[string]int64, error) {
	type getDoc struct {
		ID      string `json:"_id"`
		Routing string `json:"routing"`
	}
	var req struct {
		Docs []getDoc `json:"docs"`
	}
	for _, d := range docs {
		req.Docs = append(req.Docs, getDoc{ID: d.ID(), Routing: d.ConversationID})
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var res struct {
		Docs []struct {
			ID      string `json:"_id"`
			Found   bool   `json:"found"`
			Version int64  `json:"_version"`
		} `json:"docs"`
	}
	if err := ix.do(ctx, "reading the versions of documents to erase", esapi.MgetRequest{Index: target, Body: strings.NewReader(string(body))}, &res); err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(res.Docs))
	for _, d := range res.Docs {
		if d.Found {
			out[d.ID] = d.Version
		}
	}
	return out, nil
}
