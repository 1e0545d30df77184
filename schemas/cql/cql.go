// Package cql is the CQL schema of Parley's ScyllaDB stores, as code: the
// .cql files beside this file, embedded in the binary, and the parsing
// that turns them into statements.
//
// keyspace.cql creates the keyspace and the schema_migrations ledger; it
// runs at every start and is never recorded. The numbered files
// (NNNN_name.cql) are migrations: each runs once per keyspace, in order,
// and is recorded in schema_migrations with its checksum. An applied
// migration is never edited (its checksum would no longer match and the
// store refuses to start); a change of schema is a new file with the
// next number. Every statement of a migration must be idempotent (CREATE
// ... IF NOT EXISTS): two processes starting at once may both run it
// before one of them records it. (Concurrent CREATE TABLE IF NOT EXISTS
// is safe on ScyllaDB with Raft-based schema management, the default
// since 5.4; on older ScyllaDB or on Cassandra, let one process create a
// new keyspace before starting the others.)
//
// The files use two placeholders, {{keyspace}} and {{replication}}, which
// Render replaces; the files' comments say why each key is what it is.
//
// The package has no state and is safe for concurrent use.
package cql

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

//go:embed *.cql
var files embed.FS

// Placeholders in the .cql files.
const (
	KeyspacePlaceholder    = "{{keyspace}}"
	ReplicationPlaceholder = "{{replication}}"
)

// Migration is one numbered .cql file.
type Migration struct {
	Version int    // NNNN of the file name
	Name    string // the file name
	// Statements are the file's statements, comments removed, with
	// placeholders still in them.
	Statements []string
	// Checksum is the hex SHA-256 of the statements with layout removed:
	// it changes when a statement changes, not when a comment does.
	Checksum string
}

var migrationName = regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.cql$`)

// Keyspace returns the statements of keyspace.cql: the keyspace and the
// migration ledger, with placeholders.
func Keyspace() ([]string, error) {
	b, err := files.ReadFile("keyspace.cql")
	if err != nil {
		return nil, fmt.Errorf("reading keyspace.cql: %w", err)
	}
	return Split(string(b)), nil
}

// Migrations returns the numbered migrations in version order. Versions
// start at 1 and have no gaps.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, fmt.Errorf("listing migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		v, _ := strconv.Atoi(m[1])
		b, err := files.ReadFile(e.Name())
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", e.Name(), err)
		}
		stmts := Split(string(b))
		if len(stmts) == 0 {
			return nil, fmt.Errorf("migration %s has no statements", e.Name())
		}
		out = append(out, Migration{Version: v, Name: e.Name(), Statements: stmts, Checksum: checksum(stmts)})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d (versions start at 1 without gaps)", m.Name, m.Version, i+1)
		}
	}
	return out, nil
}

// Split splits CQL text into statements: it removes -- and // comments
// (to the end of the line) and splits at semicolons. The .cql files keep
// semicolons and comment markers out of string literals, which is all
// this needs.
func Split(text string) []string {
	var b strings.Builder
	for line := range strings.SplitSeq(text, "\n") {
		if i := commentStart(line); i >= 0 {
			line = line[:i]
		}
		b.WriteString(strings.TrimRight(line, " \t\r"))
		b.WriteByte('\n')
	}
	var out []string
	for s := range strings.SplitSeq(b.String(), ";") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func commentStart(line string) int {
	i, j := strings.Index(line, "--"), strings.Index(line, "//")
	switch {
	case i < 0:
		return j
	case j < 0:
		return i
	}
	return min(i, j)
}

func checksum(stmts []string) string {
	h := sha256.New()
	for _, s := range stmts {
		h.Write([]byte(normalize(s)))
		h.Write([]byte{';'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// normalize removes layout from a statement: runs of white space become
// one space, and none is kept next to punctuation.
func normalize(s string) string {
	const punct = "(),;<>={}[]:"
	fields := strings.Fields(s)
	var b strings.Builder
	for i, f := range fields {
		if i > 0 && !strings.ContainsRune(punct, rune(f[0])) && !strings.ContainsRune(punct, rune(fields[i-1][len(fields[i-1])-1])) {
			b.WriteByte(' ')
		}
		b.WriteString(f)
	}
	return b.String()
}

var addColumn = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+` + regexp.QuoteMeta(KeyspacePlaceholder) +
	`\.([a-z][a-z0-9_]*)\s+ADD\s+([a-z][a-z0-9_]*)\s+[a-z][a-z0-9_]*(<[a-z0-9_<>, ]*>)?$`)

// AddedColumn reports whether stmt (as Split returns it) adds one column
// to a table of the keyspace, ALTER TABLE {{keyspace}}.table ADD column
// type, and which. Names are returned in lower case, as CQL folds
// unquoted identifiers.
func AddedColumn(stmt string) (table, column string, ok bool) {
	m := addColumn.FindStringSubmatch(strings.TrimSpace(stmt))
	if m == nil {
		return "", "", false
	}
	return strings.ToLower(m[1]), strings.ToLower(m[2]), true
}

var keyspaceName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)

// ValidKeyspace reports whether name can be a keyspace name here:
// lower-case letters, digits and underscores, starting with a letter, at
// most 48 characters. Unquoted CQL identifiers are case-insensitive, so
// upper case is refused rather than silently folded.
func ValidKeyspace(name string) bool { return keyspaceName.MatchString(name) }

var replicationWord = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// Replication renders a replication map as a CQL map literal, e.g.
// {'class': 'NetworkTopologyStrategy', 'dc1': '3'}, with "class" first
// and the other options sorted. Keys and values must be plain words
// (letters, digits, '_', '.', '-'), so nothing can escape the literal.
func Replication(options map[string]string) (string, error) {
	if options["class"] == "" {
		return "", fmt.Errorf("replication has no class")
	}
	keys := make([]string, 0, len(options))
	for k, v := range options {
		if !replicationWord.MatchString(k) || !replicationWord.MatchString(v) {
			return "", fmt.Errorf("replication option %q: %q is not a plain word", k, v)
		}
		if k != "class" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	parts := []string{"'class': '" + options["class"] + "'"}
	for _, k := range keys {
		parts = append(parts, "'"+k+"': '"+options[k]+"'")
	}
	return "{" + strings.Join(parts, ", ") + "}", nil
}

// Render replaces the placeholders of a statement. keyspace must satisfy
// ValidKeyspace and replication come from Replication; Render checks the
// first and trusts the second.
func Render(stmt, keyspace, replication string) (string, error) {
	if !ValidKeyspace(keyspace) {
		return "", fmt.Errorf("invalid keyspace name %q", keyspace)
	}
	stmt = strings.ReplaceAll(stmt, KeyspacePlaceholder, keyspace)
	return strings.ReplaceAll(stmt, ReplicationPlaceholder, replication), nil
}
