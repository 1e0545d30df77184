package scyllastore

import (
	"github.com/parley-chat/parley/schemas/cql"
)

// Statement templates. {{keyspace}} is replaced once, at Open, by the
// validated keyspace name; every value is a bind marker, so gocql
// prepares each statement once per node and routes it by its partition
// key. The tables are described in schemas/cql/0001_history.cql.
const (
	tmplInsertMessage = `INSERT INTO {{keyspace}}.messages
		(conversation_id, bucket, seq, event_id, type, time_ns, data)
		VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`

	tmplInsertCreation = `INSERT INTO {{keyspace}}.conversations
		(id, kind, title, created_by, created_at_ns, members)
		VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`
	tmplSetLastSeq = `UPDATE {{keyspace}}.conversations USING TIMESTAMP ?
		SET last_seq = ? WHERE id = ?`
	tmplSetLastActivity = `UPDATE {{keyspace}}.conversations USING TIMESTAMP ?
		SET last_activity_ns = ? WHERE id = ?`
	tmplSetLastMessage = `UPDATE {{keyspace}}.conversations USING TIMESTAMP ?
		SET last_message_seq = ?, last_sender = ?, last_preview = ? WHERE id = ?`

	// A departure deletes the member's map element and inbox row with the
	// departure's timestamp (seq+1): older writes stay shadowed, a later
	// re-join (a higher seq) wins.
	tmplDeleteMember = `DELETE members[?] FROM {{keyspace}}.conversations
		USING TIMESTAMP ? WHERE id = ?`
	tmplDeleteInbox = `DELETE FROM {{keyspace}}.conversations_by_user
		USING TIMESTAMP ? WHERE user_id = ? AND conversation_id = ?`

	tmplSelectSummary = `SELECT kind, title, created_by, created_at_ns, members,
		last_seq, last_activity_ns, last_message_seq, last_sender, last_preview
		FROM {{keyspace}}.conversations WHERE id = ?`
	tmplSelectLastSeq = `SELECT last_seq FROM {{keyspace}}.conversations WHERE id = ?`

	tmplInboxSummary = `UPDATE {{keyspace}}.conversations_by_user USING TIMESTAMP ?
		SET role = ?, last_seq = ? WHERE user_id = ? AND conversation_id = ?`
	tmplInboxActivity = `UPDATE {{keyspace}}.conversations_by_user USING TIMESTAMP ?
		SET last_activity_ns = ? WHERE user_id = ? AND conversation_id = ?`
	tmplInboxLastMessage = `UPDATE {{keyspace}}.conversations_by_user USING TIMESTAMP ?
		SET last_sender = ?, last_preview = ? WHERE user_id = ? AND conversation_id = ?`
	tmplInboxReadSeq = `UPDATE {{keyspace}}.conversations_by_user USING TIMESTAMP ?
		SET read_seq = ? WHERE user_id = ? AND conversation_id = ?`
	tmplSelectInbox = `SELECT conversation_id, last_activity_ns, read_seq
		FROM {{keyspace}}.conversations_by_user WHERE user_id = ?`

	// A backward page walks a bucket from its newest seq down: the
	// table's clustering order. A forward page reads the same slice in
	// ascending order.
	tmplPageBackward = `SELECT seq, event_id, type, time_ns, data
		FROM {{keyspace}}.messages
		WHERE conversation_id = ? AND bucket = ? AND seq <= ?
		LIMIT ?`
	tmplPageForward = `SELECT seq, event_id, type, time_ns, data
		FROM {{keyspace}}.messages
		WHERE conversation_id = ? AND bucket = ? AND seq >= ? AND seq <= ?
		ORDER BY seq ASC LIMIT ?`

	tmplSelectMigrations = `SELECT version, checksum
		FROM {{keyspace}}.schema_migrations WHERE component = ?`
	tmplRecordMigration = `INSERT INTO {{keyspace}}.schema_migrations
		(component, version, name, checksum, applied_at)
		VALUES (?, ?, ?, ?, ?) IF NOT EXISTS`
	tmplPing = `SELECT version FROM {{keyspace}}.schema_migrations
		WHERE component = ? LIMIT 1`
)

// statements are the templates rendered for one keyspace.
type statements struct {
	insertMessage, insertCreation                               string
	setLastSeq, setLastActivity, setLastMessage                 string
	selectSummary, selectLastSeq                                string
	deleteMember, deleteInbox                                   string
	inboxSummary, inboxActivity, inboxLastMessage, inboxReadSeq string
	selectInbox, pageBackward, pageForward                      string
	selectMigrations, recordMigration, ping                     string
}

func renderStatements(keyspace string) (statements, error) {
	var firstErr error
	r := func(t string) string {
		s, err := cql.Render(t, keyspace, "")
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return s
	}
	st := statements{
		insertMessage:    r(tmplInsertMessage),
		insertCreation:   r(tmplInsertCreation),
		setLastSeq:       r(tmplSetLastSeq),
		setLastActivity:  r(tmplSetLastActivity),
		setLastMessage:   r(tmplSetLastMessage),
		selectSummary:    r(tmplSelectSummary),
		deleteMember:     r(tmplDeleteMember),
		deleteInbox:      r(tmplDeleteInbox),
		selectLastSeq:    r(tmplSelectLastSeq),
		inboxSummary:     r(tmplInboxSummary),
		inboxActivity:    r(tmplInboxActivity),
		inboxLastMessage: r(tmplInboxLastMessage),
		inboxReadSeq:     r(tmplInboxReadSeq),
		selectInbox:      r(tmplSelectInbox),
		pageBackward:     r(tmplPageBackward),
		pageForward:      r(tmplPageForward),
		selectMigrations: r(tmplSelectMigrations),
		recordMigration:  r(tmplRecordMigration),
		ping:             r(tmplPing),
	}
	return st, firstErr
}
