// The verified rebuild of the files projection's records: chat.events
// into a fresh in-memory record store, compared per conversation with
// the records in the live file store.

package rebuild

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/internal/files"
	"github.com/parley-chat/parley/internal/kafkalog"
	pfiles "github.com/parley-chat/parley/projections/files"
	"github.com/parley-chat/parley/schemas"
)

// FilesReader is the live file store as the comparison reads it
// (s3store.Store).
type FilesReader interface {
	// Get returns an error wrapping files.ErrNotFound for a missing key.
	Get(ctx context.Context, key string, limit int64) ([]byte, error)
	List(ctx context.Context, prefix string, fn func(key string, modified time.Time) error) error
}

// FilesConfig configures Files.
type FilesConfig struct {
	Config
	// Names resolves the topic and group. Default: no prefix.
	Names kafkalog.Names
	// Live is the file store the live files projection writes. Required.
	Live FilesReader
}

// recordLimit is the largest record of the files projection read: an
// attached marker is a seq, a message's list at most a message's
// attachments.
const recordLimit = 64 << 10

// Files rebuilds the files projection's records (the attached markers
// and the lists of each message's uploads, pfiles.AttachedPrefix and
// pfiles.MessagesPrefix) from the first offset of chat.events up to its
// end when it starts into a fresh store in memory, then compares the
// live file store's records with them, per conversation: which uploads
// are attached to which message, and which messages' files were deleted.
// The uploads and thumbnails themselves are not compared: they come from
// the users and the thumbnail role, not from the log; and the live store
// is listed whole, so records of a conversation the log never names are
// differences too.
func Files(ctx context.Context, cfg FilesConfig) (Report, error) {
	start := time.Now()
	cfg.Config = cfg.withDefaults()
	if cfg.Kafka == nil || cfg.Live == nil {
		return Report{}, errors.New("rebuild files: a Kafka cluster and the live file store are required")
	}
	fresh := &recordStore{objects: map[string][]byte{}}
	conv := func(op pfiles.Op) string { return op.ConversationID }
	rep, _, err := replayAll(ctx, cfg.Config, "the files projection's records", []Source{
		{Topic: cfg.Names.Topic(schemas.TopicEvents), Group: cfg.Names.Group(schemas.GroupFiles)},
	}, collect(cfg.Config, pfiles.Projection{Store: fresh}, conv))
	if err != nil {
		return rep, fmt.Errorf("rebuild files: %w", err)
	}
	live, err := filesSums(ctx, cfg.Live)
	if err != nil {
		return rep, fmt.Errorf("rebuild files: the live store: %w", err)
	}
	rebuilt, err := filesSums(ctx, fresh)
	if err != nil {
		return rep, fmt.Errorf("rebuild files: the rebuilt records: %w", err)
	}
	all := map[string]bool{}
	for k := range live {
		all[k] = true
	}
	for k := range rebuilt {
		all[k] = true
	}
	rep.Keys = len(all)
	rep.Differences = Compare(live, rebuilt)
	rep.Took = time.Since(start)
	cfg.Logger.Info("files projection's records rebuilt and compared", "records", rep.Records, "keys", rep.Keys, "differences", len(rep.Differences), "live_behind", rep.LiveBehind)
	return rep, nil
}

// fileRecord is one record of the files projection, as checksummed.
type fileRecord struct {
	Key  string `json:"key"`
	Body string `json:"body"`
}

// filesSums returns the checksum of each conversation's records in r
// ("conversation/ID"): its attached markers and message lists, by key,
// with their bodies.
func filesSums(ctx context.Context, r FilesReader) (Checksums, error) {
	byConv := map[string][]fileRecord{}
	for _, prefix := range []string{pfiles.AttachedPrefix, pfiles.MessagesPrefix} {
		var listed []string
		if err := r.List(ctx, prefix, func(key string, _ time.Time) error {
			listed = append(listed, key)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("listing %s: %w", prefix, err)
		}
		for _, key := range listed {
			conv, _, _ := strings.Cut(strings.TrimPrefix(key, prefix), "/")
			body, err := r.Get(ctx, key, recordLimit)
			if errors.Is(err, files.ErrNotFound) {
				continue // deleted since it was listed
			}
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", key, err)
			}
			byConv[conv] = append(byConv[conv], fileRecord{Key: key, Body: string(body)})
		}
	}
	sums := Checksums{}
	for conv, recs := range byConv {
		slices.SortFunc(recs, func(a, b fileRecord) int { return strings.Compare(a.Key, b.Key) })
		var err error
		if sums["conversation/"+conv], err = checksum(recs); err != nil {
			return nil, err
		}
	}
	return sums, nil
}

// recordStore is the fresh store the files projection is rebuilt into:
// its records in memory (a few bytes each), nothing else, since the
// rebuild uploads nothing.
type recordStore struct {
	mu      sync.Mutex
	objects map[string][]byte
}

var _ pfiles.Store = (*recordStore)(nil)

func (s *recordStore) Put(_ context.Context, key, _ string, body []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[key] = slices.Clone(body)
	return nil
}

func (s *recordStore) Get(_ context.Context, key string, limit int64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, files.ErrNotFound)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", key, limit)
	}
	return slices.Clone(b), nil
}

func (s *recordStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objects, key)
	return nil
}

func (s *recordStore) List(_ context.Context, prefix string, fn func(key string, modified time.Time) error) error {
	s.mu.Lock()
	var ks []string
	for k := range s.objects {
		if strings.HasPrefix(k, prefix) {
			ks = append(ks, k)
		}
	}
	s.mu.Unlock()
	slices.Sort(ks)
	for _, k := range ks {
		if err := fn(k, time.Time{}); err != nil {
			return err
		}
	}
	return nil
}
