// The key store of crypto-shredding on ScyllaDB: the Store is also a
// contentkeys.Store, over the content_keys table of its keyspace.

package scyllastore

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/gocql/gocql"

	"github.com/parley-chat/parley/internal/contentkeys"
)

var _ contentkeys.Store = (*Store)(nil)

// Claim stores wrapped as user's data key unless user has one, with a
// lightweight transaction, and returns the key user has.
func (s *Store) Claim(ctx context.Context, user string, wrapped []byte) (_ []byte, err error) {
	defer s.healOn(&err)
	prev := map[string]any{}
	applied, err := s.session().Query(s.q.claimKey, user, wrapped).WithContext(ctx).MapScanCAS(prev)
	if err != nil {
		return nil, fmt.Errorf("scyllastore: claiming the data key of %s: %w", user, err)
	}
	if applied {
		return bytes.Clone(wrapped), nil
	}
	cur, ok := prev["wrapped"].([]byte)
	if !ok || len(cur) == 0 {
		return nil, fmt.Errorf("scyllastore: claiming the data key of %s: not applied, and no key in its place", user)
	}
	return cur, nil
}

// Get returns user's wrapped data key, or an error wrapping
// contentkeys.ErrNoKey.
func (s *Store) Get(ctx context.Context, user string) (_ []byte, err error) {
	defer s.healOn(&err)
	var wrapped []byte
	err = s.session().Query(s.q.selectKey, user).WithContext(ctx).Scan(&wrapped)
	if errors.Is(err, gocql.ErrNotFound) || (err == nil && len(wrapped) == 0) {
		return nil, fmt.Errorf("scyllastore: %s: %w", user, contentkeys.ErrNoKey)
	}
	if err != nil {
		return nil, fmt.Errorf("scyllastore: reading the data key of %s: %w", user, err)
	}
	return wrapped, nil
}

// Delete removes user's data key (a row tombstone; see
// schemas/cql/0004_content_keys.cql for when its bytes leave the disks).
func (s *Store) Delete(ctx context.Context, user string) (err error) {
	defer s.healOn(&err)
	if err := s.session().Query(s.q.deleteKey, user).WithContext(ctx).Exec(); err != nil {
		return fmt.Errorf("scyllastore: deleting the data key of %s: %w", user, err)
	}
	return nil
}
