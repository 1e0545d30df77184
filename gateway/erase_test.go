package gateway

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/contentkeys/pebblekeys"
	"github.com/parley-chat/parley/schemas"
	"github.com/parley-chat/parley/schemas/contractcheck"
)

// keyEraser erases with a real keyring and remembers who asked, as the
// app's eraser does before it appends the audit record.
type keyEraser struct {
	keys *contentkeys.Keyring
	mu   sync.Mutex
	by   []string
}

func (e *keyEraser) Erase(ctx context.Context, user, by string) (time.Time, error) {
	if err := e.keys.Erase(ctx, user); err != nil {
		return time.Time{}, err
	}
	e.mu.Lock()
	e.by = append(e.by, by)
	e.mu.Unlock()
	return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), nil
}

// Only an administrator erases, a valid user id, on a deployment that
// seals content; every answer is the documented one.
func TestEraseUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := pebblekeys.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	kek := make([]byte, contentkeys.KEKSize)
	_, _ = rand.Read(kek)
	keys, err := contentkeys.New(store, kek)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := keys.Seal(ctx, "carol", "ev-1", "g_1", []byte("carol's words"))
	if err != nil {
		t.Fatal(err)
	}
	auth, err := NewAuthenticator(AuthConfig{Secret: searchSecret})
	if err != nil {
		t.Fatal(err)
	}
	check, err := contractcheck.New()
	if err != nil {
		t.Fatal(err)
	}
	eraser := &keyEraser{keys: keys}
	newServer := func(e Eraser) *Server {
		s, err := New(Config{Auth: auth, Commands: searchAppender{}, Hub: searchHub{}, History: &searchHistory{}, Erasure: e, Admins: []string{"olga"}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sealing, notSealing := newServer(eraser), newServer(nil)
	post := func(s *Server, user, target string) (int, map[string]any) {
		t.Helper()
		tok, err := auth.Issue(user, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/users/"+target+"/erase", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if err := check.Response(http.MethodPost, req.URL.String(), rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes()); err != nil {
			t.Error(err)
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("non-JSON answer %q", rec.Body.String())
		}
		return rec.Code, out
	}
	for _, tc := range []struct {
		name         string
		s            *Server
		user, target string
		status       int
		code         string
	}{
		{"a user who is no administrator", sealing, "bob", "carol", http.StatusForbidden, "forbidden"},
		{"an invalid user id", sealing, "olga", "not%20a%20user", http.StatusBadRequest, "invalid_request"},
		{"a deployment that does not seal", notSealing, "olga", "carol", http.StatusServiceUnavailable, "unavailable"},
	} {
		status, out := post(tc.s, tc.user, tc.target)
		if status != tc.status || out["code"] != tc.code {
			t.Errorf("%s: %d %v; want %d %s", tc.name, status, out, tc.status, tc.code)
		}
	}
	if _, body := post(notSealing, "olga", "carol"); body["retryable"] != false {
		t.Errorf("503 without sealing says retryable: %v", body)
	}
	if _, err := keys.Open(ctx, "carol", "ev-1", "g_1", sealed); err != nil {
		t.Fatalf("a refused erasure destroyed the key: %v", err)
	}

	status, out := post(sealing, "olga", "carol")
	if status != http.StatusOK || out["user_id"] != "carol" || out["subject_ref"] != schemas.ErasureRef("carol") || out["erased_at"] != "2026-03-01T12:00:00Z" {
		t.Fatalf("olga erasing carol: %d %v", status, out)
	}
	if _, err := keys.Open(ctx, "carol", "ev-1", "g_1", sealed); !errors.Is(err, contentkeys.ErrUnreadable) {
		t.Errorf("after the erasure, carol's content opens: %v", err)
	}
	if len(eraser.by) != 1 || eraser.by[0] != "olga" {
		t.Errorf("erasures by %v; want one, by olga", eraser.by)
	}
}
