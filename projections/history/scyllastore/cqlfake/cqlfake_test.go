package cqlfake_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/parley-chat/parley/projections/history/scyllastore/cqlfake"
)

// session connects gocql to a fresh server and creates keyspace k with a
// table t (p text, c bigint, v text, w bigint, m map<text,text>) keyed by
// ((p), c) with c descending.
func session(t *testing.T) (*cqlfake.Server, *gocql.Session) {
	t.Helper()
	srv := cqlfake.Start(t)
	c := gocql.NewCluster(srv.Host())
	c.Port = srv.Port()
	c.ProtoVersion = 4
	c.Timeout = 5 * time.Second
	c.ConnectTimeout = 5 * time.Second
	// Tests restart the node: try it again soon, not after gocql's
	// default minute (which made TestStopAfter flaky).
	c.ReconnectInterval = 200 * time.Millisecond
	c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy())
	s, err := c.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	exec(t, s, `CREATE KEYSPACE k WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`)
	exec(t, s, `CREATE TABLE k.t (p text, c bigint, v text, w bigint, m map<text, text>,
		PRIMARY KEY ((p), c)) WITH CLUSTERING ORDER BY (c DESC) AND comment = 'test'`)
	return srv, s
}

// afterRestart returns a session that reaches srv after a Restart: s,
// once the driver has reconnected it, or — when gocql keeps the host
// marked up without a connection pool, which it can do for a node that
// announces nothing (the stand-in pushes no STATUS_CHANGE events) — a
// new session on the same node.
func afterRestart(t *testing.T, srv *cqlfake.Server, s *gocql.Session, probe func(*gocql.Session) error) *gocql.Session {
	t.Helper()
	if within(5*time.Second, func() bool { return probe(s) == nil }) {
		return s
	}
	c := gocql.NewCluster(srv.Host())
	c.Port = srv.Port()
	c.ProtoVersion = 4
	c.Timeout = 5 * time.Second
	fresh, err := c.CreateSession()
	if err != nil {
		t.Fatalf("no answer after restart, and no new session either: %v", err)
	}
	t.Cleanup(fresh.Close)
	t.Log("the driver did not reconnect its session; using a new one")
	return fresh
}

func exec(t *testing.T, s *gocql.Session, q string, args ...any) {
	t.Helper()
	if err := s.Query(q, args...).Exec(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func cs(t *testing.T, s *gocql.Session, q string, args ...any) []int64 {
	t.Helper()
	iter := s.Query(q, args...).Iter()
	var out []int64
	var c int64
	for iter.Scan(&c) {
		out = append(out, c)
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

func TestClusteringOrderAndSlices(t *testing.T) {
	t.Parallel()
	_, s := session(t)
	for _, c := range []int64{5, -3, 1, 10, 2} {
		exec(t, s, `INSERT INTO k.t (p, c, v) VALUES (?, ?, ?)`, "a", c, "x")
	}
	exec(t, s, `INSERT INTO k.t (p, c, v) VALUES (?, ?, ?)`, "b", 7, "other partition")
	for _, tc := range []struct {
		q    string
		args []any
		want []int64
	}{
		{`SELECT c FROM k.t WHERE p = ?`, []any{"a"}, []int64{10, 5, 2, 1, -3}},
		{`SELECT c FROM k.t WHERE p = ? ORDER BY c ASC`, []any{"a"}, []int64{-3, 1, 2, 5, 10}},
		{`SELECT c FROM k.t WHERE p = ? AND c < ?`, []any{"a", 5}, []int64{2, 1, -3}},
		{`SELECT c FROM k.t WHERE p = ? AND c >= ? AND c <= ? ORDER BY c ASC LIMIT ?`, []any{"a", 1, 10, 3}, []int64{1, 2, 5}},
		{`SELECT c FROM k.t WHERE p = ? AND c = ?`, []any{"a", 2}, []int64{2}},
		{`SELECT c FROM k.t WHERE p = 'b'`, nil, []int64{7}},
		{`SELECT c FROM k.t WHERE p = ?`, []any{"none"}, nil},
	} {
		if got := cs(t, s, tc.q, tc.args...); !slices.Equal(got, tc.want) {
			t.Errorf("%s %v: %v, want %v", tc.q, tc.args, got, tc.want)
		}
	}
}

func TestLastWriteWinsPerCell(t *testing.T) {
	t.Parallel()
	_, s := session(t)
	read := func() (v string, w int64, wt int64) {
		t.Helper()
		var vp *string
		var wp, wtp *int64
		if err := s.Query(`SELECT v, w, writetime(v) FROM k.t WHERE p = ? AND c = ?`, "a", 1).Scan(&vp, &wp, &wtp); err != nil {
			t.Fatal(err)
		}
		if vp != nil {
			v = *vp
		}
		if wp != nil {
			w = *wp
		}
		if wtp != nil {
			wt = *wtp
		}
		return v, w, wt
	}
	exec(t, s, `INSERT INTO k.t (p, c, v, w) VALUES (?, ?, ?, ?) USING TIMESTAMP ?`, "a", 1, "ten", 10, int64(10))
	// An older write of one cell changes nothing.
	exec(t, s, `UPDATE k.t USING TIMESTAMP ? SET v = ? WHERE p = ? AND c = ?`, int64(9), "nine", "a", 1)
	if v, w, wt := read(); v != "ten" || w != 10 || wt != 10 {
		t.Fatalf("after an older write: %q %d at %d", v, w, wt)
	}
	// A newer write of one cell changes that cell only.
	exec(t, s, `UPDATE k.t USING TIMESTAMP ? SET v = ? WHERE p = ? AND c = ?`, int64(11), "eleven", "a", 1)
	if v, w, _ := read(); v != "eleven" || w != 10 {
		t.Fatalf("after a newer write: %q %d", v, w)
	}
	// Equal timestamps: the greater value wins, in either order.
	exec(t, s, `UPDATE k.t USING TIMESTAMP ? SET w = ? WHERE p = ? AND c = ?`, int64(20), 7, "a", 1)
	exec(t, s, `UPDATE k.t USING TIMESTAMP ? SET w = ? WHERE p = ? AND c = ?`, int64(20), 3, "a", 1)
	if _, w, _ := read(); w != 7 {
		t.Fatalf("tie: w = %d, want the greater value 7", w)
	}
	// Equal timestamps: a deletion wins over a value.
	exec(t, s, `DELETE w FROM k.t USING TIMESTAMP ? WHERE p = ? AND c = ?`, int64(20), "a", 1)
	if _, w, _ := read(); w != 0 {
		t.Fatalf("tie with a deletion: w = %d, want null", w)
	}
	// A row deletion shadows older writes, even ones arriving later.
	exec(t, s, `DELETE FROM k.t USING TIMESTAMP ? WHERE p = ? AND c = ?`, int64(30), "a", 1)
	exec(t, s, `INSERT INTO k.t (p, c, v) VALUES (?, ?, ?) USING TIMESTAMP ?`, "a", 1, "late", int64(29))
	if got := cs(t, s, `SELECT c FROM k.t WHERE p = ?`, "a"); len(got) != 0 {
		t.Fatalf("row deleted at 30 and written at 29 reads as %v", got)
	}
	exec(t, s, `INSERT INTO k.t (p, c, v) VALUES (?, ?, ?) USING TIMESTAMP ?`, "a", 1, "again", int64(31))
	if v, _, _ := read(); v != "again" {
		t.Fatalf("after a newer insert: %q", v)
	}
}

func TestMapCells(t *testing.T) {
	t.Parallel()
	_, s := session(t)
	read := func() map[string]string {
		t.Helper()
		var m map[string]string
		if err := s.Query(`SELECT m FROM k.t WHERE p = ? AND c = ?`, "a", 1).Scan(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	exec(t, s, `INSERT INTO k.t (p, c, m) VALUES (?, ?, ?) USING TIMESTAMP ?`, "a", 1, map[string]string{"x": "1", "y": "1"}, int64(10))
	exec(t, s, `UPDATE k.t USING TIMESTAMP ? SET m = m + ? WHERE p = ? AND c = ?`, int64(11), map[string]string{"z": "2"}, "a", 1)
	exec(t, s, `UPDATE k.t USING TIMESTAMP ? SET m[?] = ? WHERE p = ? AND c = ?`, int64(5), "x", "old", "a", 1)
	exec(t, s, `DELETE m[?] FROM k.t USING TIMESTAMP ? WHERE p = ? AND c = ?`, "y", int64(12), "a", 1)
	if got, want := read(), map[string]string{"x": "1", "z": "2"}; !maps.Equal(got, want) {
		t.Fatalf("map %v, want %v", got, want)
	}
	// Assigning a whole map replaces it (elements written before).
	exec(t, s, `UPDATE k.t USING TIMESTAMP ? SET m = ? WHERE p = ? AND c = ?`, int64(13), map[string]string{"q": "3"}, "a", 1)
	if got, want := read(), map[string]string{"q": "3"}; !maps.Equal(got, want) {
		t.Fatalf("map %v, want %v", got, want)
	}
}

func TestInsertIfNotExists(t *testing.T) {
	t.Parallel()
	_, s := session(t)
	prev := map[string]any{}
	applied, err := s.Query(`INSERT INTO k.t (p, c, v) VALUES (?, ?, ?) IF NOT EXISTS`, "a", 1, "first").MapScanCAS(prev)
	if err != nil || !applied {
		t.Fatalf("first insert: applied %v, %v", applied, err)
	}
	prev = map[string]any{}
	applied, err = s.Query(`INSERT INTO k.t (p, c, v) VALUES (?, ?, ?) IF NOT EXISTS`, "a", 1, "second").MapScanCAS(prev)
	if err != nil || applied {
		t.Fatalf("second insert: applied %v, %v", applied, err)
	}
	if prev["v"] != "first" {
		t.Errorf("not applied, existing row %v, want v = first", prev)
	}
}

func TestPaging(t *testing.T) {
	t.Parallel()
	_, s := session(t)
	for c := range int64(10) {
		exec(t, s, `INSERT INTO k.t (p, c) VALUES (?, ?)`, "a", c)
	}
	// Automatic paging with a LIMIT across pages.
	if got := cs(t, s, `SELECT c FROM k.t WHERE p = ? LIMIT 7`, "a"); !slices.Equal(got, []int64{9, 8, 7, 6, 5, 4, 3}) {
		t.Errorf("paged with limit: %v", got)
	}
	// Manual paging: each page has at most 3 rows and a paging state
	// until the last.
	var all []int64
	var state []byte
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		iter := s.Query(`SELECT c FROM k.t WHERE p = ?`, "a").PageSize(3).PageState(state).Iter()
		n := iter.NumRows()
		var c int64
		for iter.Scan(&c) {
			all = append(all, c)
		}
		state = iter.PageState()
		if err := iter.Close(); err != nil {
			t.Fatal(err)
		}
		if n > 3 {
			t.Fatalf("page of %d rows", n)
		}
		if len(state) == 0 {
			break
		}
	}
	if !slices.Equal(all, []int64{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}) {
		t.Errorf("manual pages: %v", all)
	}
}

func TestRestartKeepsDataNotPreparedStatements(t *testing.T) {
	t.Parallel()
	srv, s := session(t)
	exec(t, s, `INSERT INTO k.t (p, c, v) VALUES (?, ?, ?)`, "a", 1, "kept")
	prepares := srv.Stats().Prepares
	srv.Stop()
	if srv.Running() {
		t.Fatal("running after Stop")
	}
	if err := s.Query(`SELECT v FROM k.t WHERE p = ? AND c = ?`, "a", 1).Exec(); err == nil {
		t.Fatal("a query to a stopped node succeeded")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	var v string
	s = afterRestart(t, srv, s, func(s *gocql.Session) error {
		return s.Query(`SELECT v FROM k.t WHERE p = ? AND c = ?`, "a", 1).Scan(&v)
	})
	if err := s.Query(`SELECT v FROM k.t WHERE p = ? AND c = ?`, "a", 1).Scan(&v); err != nil {
		t.Fatalf("no answer after restart: %v", err)
	}
	if v != "kept" {
		t.Errorf("after restart v = %q", v)
	}
	if srv.Stats().Prepares == prepares {
		t.Error("the driver did not have to prepare again after the restart")
	}
}

func TestStopAfter(t *testing.T) {
	t.Parallel()
	srv, s := session(t)
	srv.StopAfter(2)
	exec(t, s, `INSERT INTO k.t (p, c) VALUES (?, ?)`, "a", 1)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := s.Query(`INSERT INTO k.t (p, c) VALUES (?, ?)`, "a", 2).WithContext(ctx).Exec()
	if err == nil {
		t.Fatal("the request the node died on succeeded")
	}
	waitFor(t, 20*time.Second, "the node to stop", func() bool { return !srv.Running() })
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	var got []int64
	read := func(s *gocql.Session) error {
		iter := s.Query(`SELECT c FROM k.t WHERE p = ?`, "a").Iter()
		got = nil
		var c int64
		for iter.Scan(&c) {
			got = append(got, c)
		}
		return iter.Close()
	}
	s = afterRestart(t, srv, s, read)
	if err := read(s); err != nil {
		t.Fatalf("no answer after restart: %v", err)
	}
	if !slices.Equal(got, []int64{1}) {
		t.Errorf("rows %v, want only the one written before the node died", got)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	_, s := session(t)
	for _, tc := range []struct {
		q    string
		args []any
		want string
	}{
		{`SELECT c FROM k.nope WHERE p = ?`, []any{"a"}, "unconfigured table"},
		{`SELECT c FROM nope.t WHERE p = ?`, []any{"a"}, "does not exist"},
		{`SELEC c FROM k.t`, nil, "unsupported statement"},
		{`SELECT c FROM k.t WHERE v = ?`, []any{"a"}, "filtering"},
		{`INSERT INTO k.t (p, v) VALUES (?, ?)`, []any{"a", "x"}, "clustering"},
		{`INSERT INTO k.t (p, c) VALUES (?, ?) IF NOT EXISTS USING TIMESTAMP 5`, []any{"a", 1}, "timestamp"},
	} {
		err := s.Query(tc.q, tc.args...).Exec()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.q, err, tc.want)
		}
		var reqErr gocql.RequestError
		if err != nil && !errors.As(err, &reqErr) {
			t.Errorf("%s: error %T is not a server error", tc.q, err)
		}
	}
	exec(t, s, `DROP KEYSPACE k`)
	if err := s.Query(`SELECT c FROM k.t WHERE p = ?`, "a").Exec(); err == nil {
		t.Error("a dropped keyspace still answers")
	}
}

// TestAlterAdd adds a column to a table with rows: old rows have it null,
// new writes set it, adding it again is an error, and
// system_schema.columns lists the columns of the keyspace's tables until
// the table or keyspace is dropped.
func TestAlterAdd(t *testing.T) {
	t.Parallel()
	_, s := session(t)
	exec(t, s, `INSERT INTO k.t (p, c, v) VALUES ('a', 1, 'old')`)
	column := func(table, col string) bool {
		t.Helper()
		var name string
		err := s.Query(`SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ? AND column_name = ?`,
			"k", table, col).Scan(&name)
		if errors.Is(err, gocql.ErrNotFound) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		return name == col
	}
	if !column("t", "p") || !column("t", "m") || column("t", "flag") {
		t.Fatal("system_schema.columns does not list the columns of k.t")
	}
	exec(t, s, `ALTER TABLE k.t ADD flag boolean`)
	if !column("t", "flag") {
		t.Error("system_schema.columns does not list the added column")
	}
	if err := s.Query(`ALTER TABLE k.t ADD flag boolean`).Exec(); err == nil || !strings.Contains(err.Error(), "conflicts with an existing column") {
		t.Errorf("adding an existing column: %v, want a conflict", err)
	}
	exec(t, s, `UPDATE k.t USING TIMESTAMP 5 SET flag = ? WHERE p = 'a' AND c = 2`, true)
	iter := s.Query(`SELECT c, v, flag FROM k.t WHERE p = 'a'`).Iter()
	var (
		c    int64
		v    *string
		flag *bool
		got  []string
	)
	for iter.Scan(&c, &v, &flag) {
		got = append(got, strings.Join([]string{strings.Repeat("#", int(c)), deref(v), boolString(flag)}, "/"))
		v, flag = nil, nil
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"##//true", "#/old/null"}; !slices.Equal(got, want) {
		t.Errorf("rows %q, want %q", got, want)
	}
	exec(t, s, `DROP TABLE k.t`)
	if column("t", "flag") {
		t.Error("system_schema.columns lists a column of a dropped table")
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func boolString(b *bool) string {
	switch {
	case b == nil:
		return "null"
	case *b:
		return "true"
	}
	return "false"
}

// within polls cond until it holds (true) or timeout passes (false).
func within(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// waitFor polls cond until it holds, failing the test if timeout passes
// first.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !within(timeout, cond) {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}
