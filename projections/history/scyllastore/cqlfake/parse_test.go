package cqlfake

import "testing"

func TestParseSubset(t *testing.T) {
	t.Parallel()
	for _, q := range []string{
		`SELECT * FROM system.local WHERE key='local' USING TIMEOUT 60000ms`,
		`select "Quoted", c from k.t where p = ? and c <= ? order by c asc limit ? allow filtering`,
		`UPDATE k.t USING TIMESTAMP ? SET v = ?, m[?] = ?, m = m + ?, s = s - ? WHERE p = ? AND c = ?`,
		`DELETE v, m[?] FROM k.t USING TIMESTAMP ? WHERE p = ? AND c = ?`,
		`INSERT INTO t (a, b) VALUES ('it''s', -5) IF NOT EXISTS`,
		`CREATE TABLE IF NOT EXISTS k.t (a text, b map<text, text>, PRIMARY KEY ((a))) WITH comment = 'x' AND compaction = {'class': 'X'}`,
		"CREATE KEYSPACE k WITH replication = {'class': 'SimpleStrategy', 'replication_factor': '1'} AND durable_writes = true; -- done",
		`DROP KEYSPACE IF EXISTS k`,
		`USE "k"`,
		`ALTER TABLE k.t ADD s set<text>`,
		`alter table t add b boolean;`,
	} {
		if _, err := parse(q); err != nil {
			t.Errorf("parse(%q): %v", q, err)
		}
	}
	for _, q := range []string{
		``, `SELECT`, `SELECT * FROM`, `INSERT INTO t (a) VALUES (?, ?)`, `SELECT a FROM t WHERE a LIKE ?`,
		`TRUNCATE t`, `ALTER TABLE k.t DROP v`, `ALTER TABLE k.t ADD`, `ALTER KEYSPACE k WITH durable_writes = false`, `SELECT a FROM t; SELECT b FROM t`, `INSERT INTO t (a) VALUES ('unterminated)`,
	} {
		if _, err := parse(q); err == nil {
			t.Errorf("parse(%q) accepted", q)
		}
	}
}

// FuzzParse checks that no statement text makes the parser panic: the
// fake must answer a statement it does not model with a syntax error.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`SELECT a, writetime(b) FROM k.t WHERE p = ? AND c > 5 ORDER BY c DESC LIMIT 3`,
		`UPDATE t USING TIMESTAMP 1 SET m[?] = ? WHERE p = 'x'`,
		`CREATE TABLE t (a int PRIMARY KEY, b set<text>) WITH CLUSTERING ORDER BY (a DESC)`,
		`INSERT INTO t (a, b) VALUES ({'a': 'b'}, {1, 2})`,
		`/* c */ DELETE FROM t WHERE a = -1 // x`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st, err := parse(s)
		if err == nil && st == nil {
			t.Fatal("nil statement without error")
		}
	})
}
