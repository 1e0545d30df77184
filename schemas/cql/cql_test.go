package cql

import (
	"strings"
	"testing"
)

func TestMigrationsLoad(t *testing.T) {
	t.Parallel()
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Name != "0001_history.cql" {
		t.Fatalf("migrations %v, want 0001_history.cql first", ms)
	}
	ks, err := Keyspace()
	if err != nil {
		t.Fatal(err)
	}
	all := ks
	for _, m := range ms {
		all = append(all, m.Statements...)
		if len(m.Checksum) != 64 {
			t.Errorf("%s: checksum %q", m.Name, m.Checksum)
		}
	}
	for _, s := range all {
		if !strings.Contains(s, KeyspacePlaceholder+".") && !strings.HasPrefix(s, "CREATE KEYSPACE IF NOT EXISTS "+KeyspacePlaceholder) {
			t.Errorf("statement does not name its keyspace through the placeholder: %s", s)
		}
		if _, _, add := AddedColumn(s); !add && !strings.Contains(s, "IF NOT EXISTS") {
			t.Errorf("statement is not idempotent (neither IF NOT EXISTS nor a column the store adds once): %s", s)
		}
		if strings.Contains(s, "--") {
			t.Errorf("comment left in statement: %s", s)
		}
	}
}

func TestSplit(t *testing.T) {
	t.Parallel()
	got := Split("-- head; comment\nCREATE a (x int, -- the x;\n y int);\n\n// other\nCREATE b;  ")
	want := []string{"CREATE a (x int,\n y int)", "CREATE b"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Split = %q, want %q", got, want)
	}
}

func TestChecksumIgnoresCommentsAndLayout(t *testing.T) {
	t.Parallel()
	a := checksum(Split("CREATE TABLE t (a int);"))
	b := checksum(Split("-- a comment\nCREATE   TABLE t (\n  a int -- note\n);"))
	c := checksum(Split("CREATE TABLE t (a bigint);"))
	if a != b {
		t.Error("a comment or layout changed the checksum")
	}
	if a == c {
		t.Error("a changed statement kept the checksum")
	}
}

func TestReplication(t *testing.T) {
	t.Parallel()
	got, err := Replication(map[string]string{"class": "NetworkTopologyStrategy", "dc2": "2", "dc1": "3"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "{'class': 'NetworkTopologyStrategy', 'dc1': '3', 'dc2': '2'}"; got != want {
		t.Errorf("Replication = %s, want %s", got, want)
	}
	for _, bad := range []map[string]string{
		{},
		{"class": "SimpleStrategy", "replication_factor": "1'}; DROP KEYSPACE x; --"},
		{"class": "Simple Strategy"},
	} {
		if _, err := Replication(bad); err == nil {
			t.Errorf("Replication(%v) accepted", bad)
		}
	}
}

func TestRender(t *testing.T) {
	t.Parallel()
	got, err := Render("CREATE TABLE {{keyspace}}.t WITH r = {{replication}}", "parley_1", "{'class': 'SimpleStrategy'}")
	if err != nil {
		t.Fatal(err)
	}
	if want := "CREATE TABLE parley_1.t WITH r = {'class': 'SimpleStrategy'}"; got != want {
		t.Errorf("Render = %q", got)
	}
	for _, bad := range []string{"", "Parley", "1abc", "a-b", "a.b", strings.Repeat("a", 49), `a"b`} {
		if _, err := Render("x", bad, ""); err == nil {
			t.Errorf("Render accepted keyspace %q", bad)
		}
	}
}

func TestAddedColumn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		stmt          string
		table, column string
		ok            bool
	}{
		{"ALTER TABLE {{keyspace}}.conversations ADD archived boolean", "conversations", "archived", true},
		{"alter table {{keyspace}}.Messages\n  add State blob", "messages", "state", true},
		{"ALTER TABLE {{keyspace}}.c ADD blocked_by set<text>", "c", "blocked_by", true},
		{"ALTER TABLE {{keyspace}}.c ADD m map<text, text>", "c", "m", true},
		{"ALTER TABLE {{keyspace}}.c ADD (a int, b int)", "", "", false},
		{"ALTER TABLE {{keyspace}}.c ADD a int, b int", "", "", false},
		{"ALTER TABLE other.c ADD a int", "", "", false},
		{"ALTER TABLE {{keyspace}}.c DROP a", "", "", false},
		{"ALTER TABLE {{keyspace}}.c WITH comment = 'x'", "", "", false},
		{"CREATE TABLE IF NOT EXISTS {{keyspace}}.c (a int PRIMARY KEY)", "", "", false},
	} {
		table, column, ok := AddedColumn(tc.stmt)
		if table != tc.table || column != tc.column || ok != tc.ok {
			t.Errorf("AddedColumn(%q) = %q, %q, %v; want %q, %q, %v", tc.stmt, table, column, ok, tc.table, tc.column, tc.ok)
		}
	}
}
