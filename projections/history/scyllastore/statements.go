// Every CQL statement of the store, rendered for its keyspace and
// prepared once.

package scyllastore

import (
	"github.com/parley-chat/parley/schemas/cql"
)

// Statement templates. {{keyspace}} is replaced once, at Open, by the
// validated keyspace name; every value is a bind marker, so gocql
// prepares each statement once per node and routes it by its partition
// key. The tables are described in schemas/cql/0001_history.cql.
const (
	// The key store of crypto-shredding (schemas/cql/0004_content_keys.cql).
	tmplClaimKey      = `INSERT INTO {{keyspace}}.content_keys (user_id, wrapped) VALUES (?, ?) IF NOT EXISTS`
	tmplSelectKey     = `SELECT wrapped FROM {{keyspace}}.content_keys WHERE user_id = ?`
	tmplDeleteKey     = `DELETE FROM {{keyspace}}.content_keys WHERE user_id = ?`
	tmplInsertMessage = `INSERT INTO {{keyspace}}.messages
		(conversation_id, bucket, seq, event_id, type, time_ns, data)
		VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`
	// The row of an event folded into the summary also gets the number
	// of messages through its seq; a replayed event's leaves it as it is.
	tmplInsertCounted = `INSERT INTO {{keyspace}}.messages
		(conversation_id, bucket, seq, event_id, type, time_ns, data, messages_through)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`
	// A message's state is written with the timestamp of the newest
	// event folded into it (its Version) + 1; a redacted body with the
	// timestamp of the event that erased it + 1, above the message's and
	// its edits' own (seq + 1), so that no replay brings a body back.
	tmplSetState = `UPDATE {{keyspace}}.messages USING TIMESTAMP ?
		SET state = ? WHERE conversation_id = ? AND bucket = ? AND seq = ?`
	tmplSetData = `UPDATE {{keyspace}}.messages USING TIMESTAMP ?
		SET data = ? WHERE conversation_id = ? AND bucket = ? AND seq = ?`
	tmplSelectMessage = `SELECT event_id, type, time_ns, data, state
		FROM {{keyspace}}.messages
		WHERE conversation_id = ? AND bucket = ? AND seq = ?`
	// The clustering order is seq DESC: the rows at or below a seq come
	// nearest first.
	tmplSelectCount = `SELECT messages_through FROM {{keyspace}}.messages
		WHERE conversation_id = ? AND bucket = ? AND seq <= ?`

	tmplInsertCreation = `INSERT INTO {{keyspace}}.conversations
		(id, kind, title, created_by, created_at_ns, members)
		VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`
	tmplSetLastSeq = `UPDATE {{keyspace}}.conversations USING TIMESTAMP ?
		SET last_seq = ?, messages = ? WHERE id = ?`
	tmplSetLastActivity = `UPDATE {{keyspace}}.conversations USING TIMESTAMP ?
		SET last_activity_ns = ? WHERE id = ?`
	tmplSetLastMessage = `UPDATE {{keyspace}}.conversations USING TIMESTAMP ?
		SET last_message_seq = ?, last_sender = ?, last_preview = ?,
		last_edited = ?, last_deleted = ?, last_sent_at_ns = ?, preview_version = ?,
		last_files = ?
		WHERE id = ?`
	tmplSetTitle = `UPDATE {{keyspace}}.conversations USING TIMESTAMP ?
		SET title = ? WHERE id = ?`
	// An encrypted conversation's state is written whole, with the
	// timestamp of the last event that changed it (0005).
	tmplSetEncryption = `UPDATE {{keyspace}}.conversations USING TIMESTAMP ?
		SET encrypted = ?, epoch = ?, devices = ?, leaving = ? WHERE id = ?`
	tmplSetArchived = `UPDATE {{keyspace}}.conversations USING TIMESTAMP ?
		SET archived = ? WHERE id = ?`
	tmplSetMember = `UPDATE {{keyspace}}.conversations USING TIMESTAMP ?
		SET members[?] = ? WHERE id = ?`
	tmplAddBlock = `UPDATE {{keyspace}}.conversations USING TIMESTAMP ?
		SET blocked_by = blocked_by + ? WHERE id = ?`
	tmplRemoveBlock = `UPDATE {{keyspace}}.conversations USING TIMESTAMP ?
		SET blocked_by = blocked_by - ? WHERE id = ?`

	// A departure or removal deletes the member's map element and inbox
	// row with its own timestamp (seq+1): older writes stay shadowed, a
	// later re-join (a higher seq) wins.
	tmplDeleteMember = `DELETE members[?] FROM {{keyspace}}.conversations
		USING TIMESTAMP ? WHERE id = ?`
	tmplDeleteInbox = `DELETE FROM {{keyspace}}.conversations_by_user
		USING TIMESTAMP ? WHERE user_id = ? AND conversation_id = ?`

	tmplSelectSummary = `SELECT kind, title, created_by, created_at_ns, members,
		last_seq, last_activity_ns, last_message_seq, last_sender, last_preview,
		archived, blocked_by, messages, last_edited, last_deleted,
		last_sent_at_ns, preview_version, last_files,
		encrypted, epoch, devices, leaving
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

	// Markers are written with timestamp seq + 1: the highest seq wins.
	tmplReceiptRead = `UPDATE {{keyspace}}.receipts USING TIMESTAMP ?
		SET read_seq = ? WHERE conversation_id = ? AND user_id = ?`
	tmplReceiptDelivered = `UPDATE {{keyspace}}.receipts USING TIMESTAMP ?
		SET delivered_seq = ? WHERE conversation_id = ? AND user_id = ?`
	tmplSelectReceipts = `SELECT user_id, read_seq, delivered_seq
		FROM {{keyspace}}.receipts WHERE conversation_id = ?`

	// A backward page walks a bucket from its newest seq down: the
	// table's clustering order. A forward page reads the same slice in
	// ascending order.
	tmplPageBackward = `SELECT seq, event_id, type, time_ns, data, state
		FROM {{keyspace}}.messages
		WHERE conversation_id = ? AND bucket = ? AND seq <= ?
		LIMIT ?`
	tmplPageForward = `SELECT seq, event_id, type, time_ns, data, state
		FROM {{keyspace}}.messages
		WHERE conversation_id = ? AND bucket = ? AND seq >= ? AND seq <= ?
		ORDER BY seq ASC LIMIT ?`

	// Where each user wrote personal content, by erasure reference
	// (schemas/cql/0007_content_authors.cql).
	tmplInsertAuthor  = `INSERT INTO {{keyspace}}.content_authors (author_ref, conversation_id) VALUES (?, ?)`
	tmplSelectAuthors = `SELECT conversation_id FROM {{keyspace}}.content_authors WHERE author_ref = ?`

	tmplSelectMigrations = `SELECT version, checksum
		FROM {{keyspace}}.schema_migrations WHERE component = ?`
	tmplRecordMigration = `INSERT INTO {{keyspace}}.schema_migrations
		(component, version, name, checksum, applied_at)
		VALUES (?, ?, ?, ?, ?) IF NOT EXISTS`
	tmplPing = `SELECT version FROM {{keyspace}}.schema_migrations
		WHERE component = ? LIMIT 1`
	// ScyllaDB has no ALTER TABLE ... ADD IF NOT EXISTS: a migration
	// adding a column asks the schema first (see migrate).
	tmplSelectColumn = `SELECT column_name FROM system_schema.columns
		WHERE keyspace_name = ? AND table_name = ? AND column_name = ?`
)

// statements are the templates rendered for one keyspace.
type statements struct {
	claimKey, selectKey, deleteKey                        string
	insertMessage, insertCounted, setState, setData       string
	selectMessage, selectCount                            string
	insertCreation, setLastSeq, setLastActivity           string
	setLastMessage, setTitle, setArchived, setMember      string
	addBlock, removeBlock, setEncryption                  string
	selectSummary, selectLastSeq                          string
	deleteMember, deleteInbox                             string
	inboxSummary, inboxActivity, inboxLastMessage         string
	inboxReadSeq, selectInbox                             string
	receiptRead, receiptDelivered, selectReceipts         string
	pageBackward, pageForward                             string
	selectMigrations, recordMigration, ping, selectColumn string
	insertAuthor, selectAuthors                           string
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
		claimKey:         r(tmplClaimKey),
		selectKey:        r(tmplSelectKey),
		deleteKey:        r(tmplDeleteKey),
		insertMessage:    r(tmplInsertMessage),
		insertCounted:    r(tmplInsertCounted),
		setState:         r(tmplSetState),
		setData:          r(tmplSetData),
		selectMessage:    r(tmplSelectMessage),
		selectCount:      r(tmplSelectCount),
		insertCreation:   r(tmplInsertCreation),
		setLastSeq:       r(tmplSetLastSeq),
		setLastActivity:  r(tmplSetLastActivity),
		setLastMessage:   r(tmplSetLastMessage),
		setTitle:         r(tmplSetTitle),
		setArchived:      r(tmplSetArchived),
		setEncryption:    r(tmplSetEncryption),
		setMember:        r(tmplSetMember),
		addBlock:         r(tmplAddBlock),
		removeBlock:      r(tmplRemoveBlock),
		selectSummary:    r(tmplSelectSummary),
		selectLastSeq:    r(tmplSelectLastSeq),
		deleteMember:     r(tmplDeleteMember),
		deleteInbox:      r(tmplDeleteInbox),
		inboxSummary:     r(tmplInboxSummary),
		inboxActivity:    r(tmplInboxActivity),
		inboxLastMessage: r(tmplInboxLastMessage),
		inboxReadSeq:     r(tmplInboxReadSeq),
		selectInbox:      r(tmplSelectInbox),
		receiptRead:      r(tmplReceiptRead),
		receiptDelivered: r(tmplReceiptDelivered),
		selectReceipts:   r(tmplSelectReceipts),
		pageBackward:     r(tmplPageBackward),
		pageForward:      r(tmplPageForward),
		selectMigrations: r(tmplSelectMigrations),
		recordMigration:  r(tmplRecordMigration),
		ping:             r(tmplPing),
		selectColumn:     r(tmplSelectColumn),
		insertAuthor:     r(tmplInsertAuthor),
		selectAuthors:    r(tmplSelectAuthors),
	}
	return st, firstErr
}
