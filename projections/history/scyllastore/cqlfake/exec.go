// Executing statements: binding values, writes with timestamps and
// TTLs, selects over partitions and clustering ranges, prepared
// statements.

package cqlfake

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/datastax/go-cassandra-native-protocol/datatype"
	"github.com/datastax/go-cassandra-native-protocol/message"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// cqlError is an error the server sends back as an ERROR frame.
type cqlError struct{ msg message.Error }

func (e *cqlError) Error() string { return e.msg.GetErrorMessage() }

func invalidf(format string, args ...any) error {
	return &cqlError{&message.Invalid{ErrorMessage: fmt.Sprintf(format, args...)}}
}

func syntaxError(err error) error {
	return &cqlError{&message.SyntaxError{ErrorMessage: err.Error()}}
}

// asCQLError turns any error into one the server can send.
func asCQLError(err error) message.Error {
	var ce *cqlError
	if errors.As(err, &ce) {
		return ce.msg
	}
	return &message.Invalid{ErrorMessage: err.Error()}
}

// db is the fake's data: keyspaces, tables and their rows, kept in memory
// across Stop and Restart. One mutex serializes every statement, so each
// statement and each BATCH is atomic and isolated (stronger than
// Cassandra, where only single-partition writes are isolated).
type db struct {
	mu        sync.Mutex
	keyspaces map[string]*keyspace
	lastTS    int64
	schemaVer []byte
}

// locked runs f with d.mu held, released even if f panics.
func locked[T any](d *db, f func() (T, error)) (T, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return f()
}

// execOptions are the per-request options of QUERY, EXECUTE and BATCH.
type execOptions struct {
	keyspace     string // the connection's keyspace (USE)
	values       []*primitive.Value
	defaultTS    *int64
	pageSize     int32
	pagingState  []byte
	skipMetadata bool
}

// now returns a server-side write timestamp in microseconds, strictly
// increasing so two writes without a client timestamp never tie.
func (d *db) now() int64 {
	ts := time.Now().UnixMicro()
	if ts <= d.lastTS {
		ts = d.lastTS + 1
	}
	d.lastTS = ts
	return ts
}

func (d *db) table(ks, name, connKS string) (*table, error) {
	if ks == "" {
		ks = connKS
	}
	if ks == "" {
		return nil, invalidf("No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename")
	}
	k, ok := d.keyspaces[ks]
	if !ok {
		return nil, invalidf("Keyspace %s does not exist", ks)
	}
	t, ok := k.tables[name]
	if !ok {
		return nil, invalidf("unconfigured table %s", name)
	}
	return t, nil
}

// bind resolves a term against the bound values.
func bind(t term, typ datatype.DataType, values []*primitive.Value) (bindValue, error) {
	if t.bind < 0 {
		v, err := encodeLiteral(typ, t.lit)
		if err != nil {
			return bindValue{}, invalidf("%v", err)
		}
		return bindValue{v: v, null: v == nil}, nil
	}
	if t.bind >= len(values) {
		return bindValue{}, invalidf("there were %d markers(?) in CQL but %d bound variables", t.bind+1, len(values))
	}
	v := values[t.bind]
	switch v.Type {
	case primitive.ValueTypeNull:
		return bindValue{null: true}, nil
	case primitive.ValueTypeUnset:
		return bindValue{unset: true}, nil
	}
	if err := checkValue(typ, v.Contents); err != nil {
		return bindValue{}, invalidf("%v", err)
	}
	return bindValue{v: v.Contents}, nil
}

// keyValue resolves a term that must be a non-null key component.
func keyValue(t term, c *column, values []*primitive.Value) ([]byte, error) {
	v, err := bind(t, c.typ, values)
	if err != nil {
		return nil, err
	}
	if v.null || v.unset {
		return nil, invalidf("Invalid null or unset value for %s", c.name)
	}
	return v.v, nil
}

// writeTimestamp is USING TIMESTAMP if given, else the client's default
// timestamp, else the server's clock.
func (d *db) writeTimestamp(st *statement, o execOptions) (int64, error) {
	if st.timestamp != nil {
		v, err := bind(*st.timestamp, datatype.Bigint, o.values)
		if err != nil {
			return 0, err
		}
		if v.null {
			return 0, invalidf("Invalid null value of timestamp")
		}
		if !v.unset {
			return int64(binary.BigEndian.Uint64(v.v)), nil
		}
	}
	if o.defaultTS != nil {
		return *o.defaultTS, nil
	}
	return d.now(), nil
}

// execute runs one statement with d.mu held.
func (d *db) execute(st *statement, o execOptions) (message.Message, error) {
	switch st.kind {
	case stmtCreateKeyspace:
		return d.createKeyspace(st)
	case stmtDropKeyspace:
		return d.dropKeyspace(st)
	case stmtCreateTable:
		return d.createTable(st, o.keyspace)
	case stmtDropTable:
		return d.dropTable(st, o.keyspace)
	case stmtAlterAdd:
		return d.alterAdd(st, o.keyspace)
	case stmtUse:
		if _, ok := d.keyspaces[st.keyspace]; !ok {
			return nil, invalidf("Keyspace '%s' does not exist", st.keyspace)
		}
		return &message.SetKeyspaceResult{Keyspace: st.keyspace}, nil
	case stmtSelect:
		return d.selectRows(st, o)
	case stmtInsert, stmtUpdate, stmtDelete:
		m, err := d.mutation(st, o)
		if err != nil {
			return nil, err
		}
		if st.ifNotExists {
			return d.insertIfNotExists(m)
		}
		m.apply()
		return &message.VoidResult{}, nil
	}
	return nil, invalidf("unsupported statement")
}

func (d *db) createKeyspace(st *statement) (message.Message, error) {
	if _, ok := d.keyspaces[st.keyspace]; ok {
		if st.ifNotExists {
			return &message.VoidResult{}, nil
		}
		return nil, &cqlError{&message.AlreadyExists{ErrorMessage: "Keyspace " + st.keyspace + " already exists", Keyspace: st.keyspace}}
	}
	if st.replication["class"] == "" {
		return nil, &cqlError{&message.ConfigError{ErrorMessage: "Missing replication strategy class"}}
	}
	d.keyspaces[st.keyspace] = &keyspace{name: st.keyspace, replication: st.replication, durable: st.durable, tables: map[string]*table{}}
	if err := d.recordKeyspace(st.keyspace, st.durable, st.replication); err != nil {
		return nil, err
	}
	return &message.SchemaChangeResult{ChangeType: primitive.SchemaChangeTypeCreated, Target: primitive.SchemaChangeTargetKeyspace, Keyspace: st.keyspace}, nil
}

func (d *db) dropKeyspace(st *statement) (message.Message, error) {
	if _, ok := d.keyspaces[st.keyspace]; !ok {
		if st.ifExists {
			return &message.VoidResult{}, nil
		}
		return nil, &cqlError{&message.ConfigError{ErrorMessage: "Cannot drop non existing keyspace '" + st.keyspace + "'."}}
	}
	delete(d.keyspaces, st.keyspace)
	d.forgetColumns(st.keyspace, "")
	t := d.keyspaces["system_schema"].tables["keyspaces"]
	(&mutation{t: t, pk: [][]byte{[]byte(st.keyspace)}, ops: []func(*partition, *row){
		func(p *partition, _ *row) { p.del = d.now() },
	}}).apply()
	return &message.SchemaChangeResult{ChangeType: primitive.SchemaChangeTypeDropped, Target: primitive.SchemaChangeTargetKeyspace, Keyspace: st.keyspace}, nil
}

// recordKeyspace writes the keyspace's row of system_schema.keyspaces,
// which gocql reads for its token-aware replica map.
func (d *db) recordKeyspace(name string, durable bool, replication map[string]string) error {
	sys := d.keyspaces["system_schema"]
	if sys == nil || sys.tables["keyspaces"] == nil {
		return nil // bootstrapping: newDB records the system keyspaces
	}
	t := sys.tables["keyspaces"]
	var els [][2][]byte
	for k, v := range replication {
		els = append(els, [2][]byte{[]byte(k), []byte(v)})
	}
	ts := d.now()
	dur := []byte{0}
	if durable {
		dur = []byte{1}
	}
	repl := t.byName["replication"]
	op, err := writeOp(repl, bindValue{v: encodeCollection(repl.typ, els)}, ts)
	if err != nil {
		return err
	}
	(&mutation{t: t, pk: [][]byte{[]byte(name)}, ck: [][]byte{}, ts: ts, ops: []func(*partition, *row){
		func(_ *partition, r *row) {
			if ts > r.marker {
				r.marker = ts
			}
			r.setCell("durable_writes", cell{ts: ts, value: dur})
		},
		op,
	}}).apply()
	return nil
}

func (d *db) createTable(st *statement, connKS string) (message.Message, error) {
	ksName := st.keyspace
	if ksName == "" {
		ksName = connKS
	}
	ks, ok := d.keyspaces[ksName]
	if !ok {
		return nil, invalidf("Keyspace %s does not exist", ksName)
	}
	if _, ok := ks.tables[st.table]; ok {
		if st.ifNotExists {
			return &message.VoidResult{}, nil
		}
		return nil, &cqlError{&message.AlreadyExists{ErrorMessage: "Table " + ksName + "." + st.table + " already exists", Keyspace: ksName, Table: st.table}}
	}
	t, err := newTable(ksName, st)
	if err != nil {
		return nil, invalidf("%v", err)
	}
	ks.tables[st.table] = t
	if err := d.recordColumns(t, st.columns); err != nil {
		return nil, err
	}
	return &message.SchemaChangeResult{ChangeType: primitive.SchemaChangeTypeCreated, Target: primitive.SchemaChangeTargetTable, Keyspace: ksName, Object: st.table}, nil
}

// alterAdd adds a regular column to a table; existing rows have it null.
// Adding a column that exists is an error, as in ScyllaDB.
func (d *db) alterAdd(st *statement, connKS string) (message.Message, error) {
	t, err := d.table(st.keyspace, st.table, connKS)
	if err != nil {
		return nil, err
	}
	cd := st.columns[0]
	if _, ok := t.byName[cd.name]; ok {
		return nil, invalidf("Invalid column name %s because it conflicts with an existing column", cd.name)
	}
	typ, err := parseType(cd.typ)
	if err != nil {
		return nil, invalidf("%v", err)
	}
	t.byName[cd.name] = &column{name: cd.name, typ: typ, kind: colRegular}
	t.orderColumns()
	if err := d.recordColumns(t, st.columns); err != nil {
		return nil, err
	}
	return &message.SchemaChangeResult{ChangeType: primitive.SchemaChangeTypeUpdated, Target: primitive.SchemaChangeTargetTable, Keyspace: t.keyspace, Object: t.name}, nil
}

// recordColumns writes rows of system_schema.columns for the columns
// defs of t, which a migration reads to know whether a column exists.
func (d *db) recordColumns(t *table, defs []colDef) error {
	sys := d.keyspaces["system_schema"]
	if sys == nil || sys.tables["columns"] == nil {
		return nil // bootstrapping: the system tables are not listed
	}
	cols := sys.tables["columns"]
	ts := d.now()
	for _, cd := range defs {
		c := t.byName[cd.name]
		kind, pos := "regular", int32(-1)
		switch c.kind {
		case colPartition:
			kind, pos = "partition_key", int32(c.pos)
		case colClustering:
			kind, pos = "clustering", int32(c.pos)
		}
		(&mutation{t: cols, pk: [][]byte{[]byte(t.keyspace)}, ck: [][]byte{[]byte(t.name), []byte(c.name)}, ts: ts, ops: []func(*partition, *row){
			func(_ *partition, r *row) {
				if ts > r.marker {
					r.marker = ts
				}
				r.setCell("kind", cell{ts: ts, value: []byte(kind)})
				r.setCell("position", cell{ts: ts, value: binary.BigEndian.AppendUint32(nil, uint32(pos))})
				r.setCell("type", cell{ts: ts, value: []byte(cd.typ)})
			},
		}}).apply()
	}
	return nil
}

// forgetColumns deletes the rows of system_schema.columns of a dropped
// table, or of every table of a dropped keyspace when table is "".
func (d *db) forgetColumns(keyspace, table string) {
	cols := d.keyspaces["system_schema"].tables["columns"]
	ts := d.now()
	p := cols.partition([][]byte{[]byte(keyspace)}, false)
	if p == nil {
		return
	}
	if table == "" {
		p.del = max(p.del, ts)
		return
	}
	for _, r := range p.rows {
		if string(r.ck[0]) == table {
			r.del = max(r.del, ts)
		}
	}
}

func (d *db) dropTable(st *statement, connKS string) (message.Message, error) {
	t, err := d.table(st.keyspace, st.table, connKS)
	if err != nil {
		if st.ifExists {
			return &message.VoidResult{}, nil
		}
		return nil, err
	}
	delete(d.keyspaces[t.keyspace].tables, t.name)
	d.forgetColumns(t.keyspace, t.name)
	return &message.SchemaChangeResult{ChangeType: primitive.SchemaChangeTypeDropped, Target: primitive.SchemaChangeTargetTable, Keyspace: t.keyspace, Object: t.name}, nil
}

// primaryKey extracts the key of the row a write targets from the WHERE
// clause (UPDATE, DELETE). A DELETE may give the partition key alone.
func primaryKey(t *table, rels []relation, values []*primitive.Value, partitionOnly bool) (pk, ck [][]byte, err error) {
	pk = make([][]byte, len(t.pk))
	ck = make([][]byte, len(t.ck))
	nck := 0
	for _, rel := range rels {
		c, ok := t.byName[rel.col]
		if !ok {
			return nil, nil, invalidf("Undefined column name %s", rel.col)
		}
		if rel.op != "=" {
			return nil, nil, invalidf("Only EQ relations are supported for writes in this fake (%s %s)", rel.col, rel.op)
		}
		v, err := keyValue(rel.val, c, values)
		if err != nil {
			return nil, nil, err
		}
		switch c.kind {
		case colPartition:
			pk[c.pos] = v
		case colClustering:
			ck[c.pos] = v
			nck++
		default:
			return nil, nil, invalidf("Non PRIMARY KEY columns found in where clause: %s", c.name)
		}
	}
	for i, v := range pk {
		if v == nil {
			return nil, nil, invalidf("Some partition key parts are missing: %s", t.pk[i].name)
		}
	}
	if nck == 0 && len(t.ck) > 0 && partitionOnly {
		return pk, nil, nil
	}
	for i, v := range ck {
		if v == nil {
			return nil, nil, invalidf("Some clustering keys are missing: %s", t.ck[i].name)
		}
	}
	return pk, ck, nil
}

// mutation resolves an INSERT, UPDATE or DELETE into row operations.
func (d *db) mutation(st *statement, o execOptions) (*mutation, error) {
	t, err := d.table(st.keyspace, st.table, o.keyspace)
	if err != nil {
		return nil, err
	}
	ts, err := d.writeTimestamp(st, o)
	if err != nil {
		return nil, err
	}
	m := &mutation{t: t, ts: ts}
	add := func(op func(*partition, *row), err error) error {
		if err != nil {
			return invalidf("%v", err)
		}
		if op != nil {
			m.ops = append(m.ops, op)
		}
		return nil
	}
	switch st.kind {
	case stmtInsert:
		m.pk = make([][]byte, len(t.pk))
		m.ck = make([][]byte, len(t.ck))
		m.ops = append(m.ops, func(_ *partition, r *row) {
			if ts > r.marker {
				r.marker = ts
			}
		})
		for i, name := range st.insertCols {
			c, ok := t.byName[name]
			if !ok {
				return nil, invalidf("Undefined column name %s", name)
			}
			switch c.kind {
			case colPartition:
				if m.pk[c.pos], err = keyValue(st.values[i], c, o.values); err != nil {
					return nil, err
				}
			case colClustering:
				if m.ck[c.pos], err = keyValue(st.values[i], c, o.values); err != nil {
					return nil, err
				}
			default:
				v, err := bind(st.values[i], c.typ, o.values)
				if err != nil {
					return nil, err
				}
				if err := add(writeOp(c, v, ts)); err != nil {
					return nil, err
				}
			}
		}
		for i, v := range m.pk {
			if v == nil {
				return nil, invalidf("Some partition key parts are missing: %s", t.pk[i].name)
			}
		}
		for i, v := range m.ck {
			if v == nil {
				return nil, invalidf("Some clustering keys are missing: %s", t.ck[i].name)
			}
		}
	case stmtUpdate:
		if m.pk, m.ck, err = primaryKey(t, st.where, o.values, false); err != nil {
			return nil, err
		}
		for _, a := range st.assignments {
			c, ok := t.byName[a.col]
			if !ok {
				return nil, invalidf("Undefined column name %s", a.col)
			}
			if c.kind != colRegular {
				return nil, invalidf("PRIMARY KEY part %s found in SET part", c.name)
			}
			switch {
			case a.key != nil:
				kt, vt := elemTypes(c.typ)
				if kt == nil || vt == nil {
					return nil, invalidf("Invalid operation for non-map column %s", c.name)
				}
				k, err := bind(*a.key, kt, o.values)
				if err != nil {
					return nil, err
				}
				v, err := bind(a.value, vt, o.values)
				if err != nil {
					return nil, err
				}
				if err := add(elemOp(c, k, v, ts)); err != nil {
					return nil, err
				}
			case a.append || a.remove:
				typ := c.typ
				if a.remove && c.typ.Code() == primitive.DataTypeCodeMap {
					kt, _ := elemTypes(c.typ)
					typ = datatype.NewSet(kt)
				}
				v, err := bind(a.value, typ, o.values)
				if err != nil {
					return nil, err
				}
				if err := add(appendOp(c, v, ts, a.remove)); err != nil {
					return nil, err
				}
			default:
				v, err := bind(a.value, c.typ, o.values)
				if err != nil {
					return nil, err
				}
				if err := add(writeOp(c, v, ts)); err != nil {
					return nil, err
				}
			}
		}
	case stmtDelete:
		if m.pk, m.ck, err = primaryKey(t, st.where, o.values, len(st.selectors) == 0); err != nil {
			return nil, err
		}
		if len(st.selectors) == 0 {
			if m.ck == nil {
				m.ops = append(m.ops, func(p *partition, _ *row) {
					if ts > p.del {
						p.del = ts
					}
				})
			} else {
				m.ops = append(m.ops, func(_ *partition, r *row) {
					if ts > r.del {
						r.del = ts
					}
				})
			}
		}
		for _, s := range st.selectors {
			c, ok := t.byName[s.col]
			if !ok || c.kind != colRegular {
				return nil, invalidf("Invalid column %s in DELETE", s.col)
			}
			if s.key != nil {
				kt, _ := elemTypes(c.typ)
				if c.typ.Code() != primitive.DataTypeCodeMap {
					return nil, invalidf("Invalid element deletion for non-map column %s", c.name)
				}
				k, err := bind(*s.key, kt, o.values)
				if err != nil {
					return nil, err
				}
				if err := add(elemOp(c, k, bindValue{null: true}, ts)); err != nil {
					return nil, err
				}
				continue
			}
			if err := add(writeOp(c, bindValue{null: true}, ts)); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// insertIfNotExists is the lightweight transaction of INSERT … IF NOT
// EXISTS: it applies only if the row does not exist, and answers with the
// [applied] column and, when not applied, the existing row.
func (d *db) insertIfNotExists(m *mutation) (message.Message, error) {
	t := m.t
	applied := &message.ColumnMetadata{Keyspace: t.keyspace, Table: t.name, Name: "[applied]", Type: datatype.Boolean}
	if p := t.partition(m.pk, false); p != nil {
		if r := t.row(p, m.ck, false); r != nil && t.live(p, r) {
			cols := []*message.ColumnMetadata{applied}
			out := message.Row{{0}}
			for _, c := range t.columns {
				cols = append(cols, &message.ColumnMetadata{Keyspace: t.keyspace, Table: t.name, Name: c.name, Type: c.typ})
				v, _, _ := t.value(p, r, c)
				out = append(out, v)
			}
			return &message.RowsResult{Metadata: &message.RowsMetadata{ColumnCount: int32(len(cols)), Columns: cols}, Data: message.RowSet{out}}, nil
		}
	}
	m.apply()
	return &message.RowsResult{
		Metadata: &message.RowsMetadata{ColumnCount: 1, Columns: []*message.ColumnMetadata{applied}},
		Data:     message.RowSet{{{1}}},
	}, nil
}

// clusteringFilter holds the clustering restrictions of a SELECT: an
// equality prefix and at most one slice on the next column.
type clusteringFilter struct {
	eq     [][]byte
	col    *column
	bounds []relation // resolved: op and value in val.lit.text is unused
	vals   [][]byte
}

func (f *clusteringFilter) match(r *row) bool {
	for i, v := range f.eq {
		if !bytes.Equal(r.ck[i], v) {
			return false
		}
	}
	for i, b := range f.bounds {
		c := compareValues(f.col.typ, r.ck[f.col.pos], f.vals[i])
		switch b.op {
		case "<":
			if c >= 0 {
				return false
			}
		case "<=":
			if c > 0 {
				return false
			}
		case ">":
			if c <= 0 {
				return false
			}
		case ">=":
			if c < 0 {
				return false
			}
		case "=":
			if c != 0 {
				return false
			}
		}
	}
	return true
}

// pagingState is where a paged SELECT resumes: after row ck of partition
// pk, with remaining rows of the LIMIT left (-1: no limit).
type pagingState struct {
	remaining int32
	pk        string
	ck        string
}

func (s pagingState) encode() []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(s.remaining))
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.pk)))
	b = append(b, s.pk...)
	return append(b, s.ck...)
}

func decodePagingState(b []byte) (pagingState, error) {
	if len(b) < 8 {
		return pagingState{}, &cqlError{&message.ProtocolError{ErrorMessage: "Invalid value for the paging state"}}
	}
	s := pagingState{remaining: int32(binary.BigEndian.Uint32(b))}
	n := int(binary.BigEndian.Uint32(b[4:]))
	if n > len(b)-8 {
		return pagingState{}, &cqlError{&message.ProtocolError{ErrorMessage: "Invalid value for the paging state"}}
	}
	s.pk = string(b[8 : 8+n])
	s.ck = string(b[8+n:])
	return s, nil
}

// projection is one output column of a SELECT.
type projection struct {
	col       *column
	writetime bool
	meta      *message.ColumnMetadata
}

func (t *table) projections(st *statement) ([]projection, error) {
	var out []projection
	if st.star {
		for _, c := range t.columns {
			out = append(out, projection{col: c, meta: &message.ColumnMetadata{Keyspace: t.keyspace, Table: t.name, Name: c.name, Type: c.typ}})
		}
		return out, nil
	}
	for _, s := range st.selectors {
		c, ok := t.byName[s.col]
		if !ok {
			return nil, invalidf("Undefined column name %s", s.col)
		}
		p := projection{col: c, writetime: s.writetime, meta: &message.ColumnMetadata{Keyspace: t.keyspace, Table: t.name, Name: c.name, Type: c.typ}}
		if s.writetime {
			if c.kind != colRegular || isCollection(c.typ) {
				return nil, invalidf("Cannot use selection function writeTime on %s", c.name)
			}
			p.meta = &message.ColumnMetadata{Keyspace: t.keyspace, Table: t.name, Name: "writetime(" + c.name + ")", Type: datatype.Bigint}
		}
		out = append(out, p)
	}
	return out, nil
}

// selectRows runs a SELECT: either on one partition (the whole partition
// key restricted by equality) with optional clustering restrictions and
// ORDER BY, or a scan of every partition (no WHERE), in paging order.
func (d *db) selectRows(st *statement, o execOptions) (message.Message, error) {
	t, err := d.table(st.keyspace, st.table, o.keyspace)
	if err != nil {
		return nil, err
	}
	projs, err := t.projections(st)
	if err != nil {
		return nil, err
	}
	pk := make([][]byte, len(t.pk))
	npk := 0
	eq := map[int][]byte{}
	var slice *column
	var bounds []relation
	var boundVals [][]byte
	for _, rel := range st.where {
		c, ok := t.byName[rel.col]
		if !ok {
			return nil, invalidf("Undefined column name %s", rel.col)
		}
		v, err := keyValue(rel.val, c, o.values)
		if err != nil {
			return nil, err
		}
		switch c.kind {
		case colPartition:
			if rel.op != "=" {
				return nil, invalidf("Only EQ relations are supported on the partition key (%s)", c.name)
			}
			pk[c.pos] = v
			npk++
		case colClustering:
			if rel.op == "=" && slice == nil {
				eq[c.pos] = v
				continue
			}
			if slice != nil && slice != c {
				return nil, invalidf("Clustering column %s cannot be restricted (preceding column is restricted by a non-EQ relation)", c.name)
			}
			slice = c
			bounds = append(bounds, rel)
			boundVals = append(boundVals, v)
		default:
			return nil, invalidf("Cannot execute this query as it might involve data filtering and thus may have unpredictable performance (column %s)", c.name)
		}
	}
	if npk != 0 && npk != len(t.pk) {
		return nil, invalidf("Partition key parts are missing")
	}
	if npk == 0 && (len(eq) > 0 || slice != nil) {
		return nil, invalidf("Clustering restrictions need the partition key in this fake")
	}
	filter := &clusteringFilter{col: slice, bounds: bounds, vals: boundVals}
	for i := 0; i < len(eq); i++ {
		v, ok := eq[i]
		if !ok {
			return nil, invalidf("PRIMARY KEY column %s cannot be restricted as preceding column is not restricted", t.ck[i].name)
		}
		filter.eq = append(filter.eq, v)
	}
	if slice != nil && slice.pos != len(filter.eq) {
		return nil, invalidf("PRIMARY KEY column %s cannot be restricted as preceding column is not restricted", slice.name)
	}

	reverse := false
	for i, ob := range st.orderBy {
		if npk == 0 {
			return nil, invalidf("ORDER BY is only supported when the partition key is restricted by an EQ or an IN.")
		}
		if i >= len(t.ck) || t.ck[i].name != ob.col {
			return nil, invalidf("Order by currently only supports the ordering of columns following their declared order in the PRIMARY KEY")
		}
		r := ob.desc != t.ckDesc[i]
		if i > 0 && r != reverse {
			return nil, invalidf("Unsupported order by relation")
		}
		reverse = r
	}

	remaining := int32(-1)
	if st.limit != nil {
		v, err := bind(*st.limit, datatype.Int, o.values)
		if err != nil {
			return nil, err
		}
		if !v.null && !v.unset {
			remaining = int32(binary.BigEndian.Uint32(v.v))
			if remaining <= 0 {
				return nil, invalidf("LIMIT must be strictly positive")
			}
		}
	}
	var resume *pagingState
	if o.pagingState != nil {
		ps, err := decodePagingState(o.pagingState)
		if err != nil {
			return nil, err
		}
		resume, remaining = &ps, ps.remaining
	}

	var parts []*partition
	if npk > 0 {
		if p := t.partition(pk, false); p != nil {
			parts = append(parts, p)
		}
	} else {
		keys := make([]string, 0, len(t.parts))
		for k := range t.parts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			parts = append(parts, t.parts[k])
		}
	}

	rows := message.RowSet{}
	var last pagingState
	more := false
scan:
	for _, p := range parts {
		pkey := encodeKey(p.key)
		if resume != nil && npk == 0 && pkey < resume.pk {
			continue
		}
		var resumeCK [][]byte
		if resume != nil && pkey == resume.pk {
			if resumeCK, err = decodeKey(resume.ck); err != nil || len(resumeCK) != len(t.ck) {
				return nil, &cqlError{&message.ProtocolError{ErrorMessage: "Invalid value for the paging state"}}
			}
		}
		for i := range p.rows {
			r := p.rows[i]
			if reverse {
				r = p.rows[len(p.rows)-1-i]
			}
			if resumeCK != nil {
				c := t.compareCK(r.ck, resumeCK)
				if (!reverse && c <= 0) || (reverse && c >= 0) {
					continue
				}
			}
			if !filter.match(r) || !t.live(p, r) {
				continue
			}
			if remaining == 0 {
				break scan
			}
			if o.pageSize > 0 && int32(len(rows)) == o.pageSize {
				more = true
				break scan
			}
			out := make(message.Row, len(projs))
			for j, pr := range projs {
				v, ts, ok := t.value(p, r, pr.col)
				switch {
				case !ok:
					out[j] = nil
				case pr.writetime:
					out[j] = bigint(ts)
				default:
					out[j] = v
				}
			}
			rows = append(rows, out)
			if remaining > 0 {
				remaining--
			}
			last = pagingState{pk: pkey, ck: encodeKey(r.ck)}
		}
	}
	meta := &message.RowsMetadata{ColumnCount: int32(len(projs))}
	if !o.skipMetadata {
		for _, pr := range projs {
			meta.Columns = append(meta.Columns, pr.meta)
		}
	}
	if more {
		last.remaining = remaining
		meta.PagingState = last.encode()
	}
	return &message.RowsResult{Metadata: meta, Data: rows}, nil
}

// prepared is a prepared statement: its parsed form, the keyspace it was
// prepared in and the metadata PREPARE answered with.
type prepared struct {
	st       *statement
	keyspace string
	vars     *message.VariablesMetadata
	result   *message.RowsMetadata
}

// prepare resolves the bind markers' column specifications and the
// partition key indexes (which gocql uses for token-aware routing).
func (d *db) prepare(st *statement, connKS string) (*prepared, error) {
	pr := &prepared{st: st, keyspace: connKS, vars: &message.VariablesMetadata{}, result: &message.RowsMetadata{}}
	specs := make([]*message.ColumnMetadata, st.nBinds)
	switch st.kind {
	case stmtInsert, stmtUpdate, stmtDelete, stmtSelect:
	default:
		if st.nBinds > 0 {
			return nil, invalidf("bind markers are not allowed in this statement")
		}
		return pr, nil
	}
	t, err := d.table(st.keyspace, st.table, connKS)
	if err != nil {
		return nil, err
	}
	spec := func(tm term, name string, typ datatype.DataType) {
		if tm.bind >= 0 {
			specs[tm.bind] = &message.ColumnMetadata{Keyspace: t.keyspace, Table: t.name, Name: name, Type: typ}
		}
	}
	col := func(name string) (*column, error) {
		c, ok := t.byName[name]
		if !ok {
			return nil, invalidf("Undefined column name %s", name)
		}
		return c, nil
	}
	pkBind := make([]int, len(t.pk))
	for i := range pkBind {
		pkBind[i] = -1
	}
	if st.timestamp != nil {
		spec(*st.timestamp, "[timestamp]", datatype.Bigint)
	}
	if st.limit != nil {
		spec(*st.limit, "[limit]", datatype.Int)
	}
	for i, name := range st.insertCols {
		c, err := col(name)
		if err != nil {
			return nil, err
		}
		spec(st.values[i], c.name, c.typ)
		if c.kind == colPartition {
			pkBind[c.pos] = st.values[i].bind
		}
	}
	for _, a := range st.assignments {
		c, err := col(a.col)
		if err != nil {
			return nil, err
		}
		switch {
		case a.key != nil:
			kt, vt := elemTypes(c.typ)
			if kt == nil || vt == nil {
				return nil, invalidf("Invalid operation for non-map column %s", c.name)
			}
			spec(*a.key, "key("+c.name+")", kt)
			spec(a.value, "value("+c.name+")", vt)
		case a.remove && c.typ.Code() == primitive.DataTypeCodeMap:
			kt, _ := elemTypes(c.typ)
			spec(a.value, c.name, datatype.NewSet(kt))
		default:
			spec(a.value, c.name, c.typ)
		}
	}
	for _, s := range st.selectors {
		if s.key != nil {
			c, err := col(s.col)
			if err != nil {
				return nil, err
			}
			kt, _ := elemTypes(c.typ)
			spec(*s.key, "key("+c.name+")", kt)
		}
	}
	for _, rel := range st.where {
		c, err := col(rel.col)
		if err != nil {
			return nil, err
		}
		spec(rel.val, c.name, c.typ)
		if c.kind == colPartition && rel.op == "=" {
			pkBind[c.pos] = rel.val.bind
		}
	}
	for i, s := range specs {
		if s == nil {
			return nil, invalidf("bind marker %d is not modelled", i)
		}
	}
	pr.vars.Columns = specs
	complete := true
	for _, b := range pkBind {
		if b < 0 {
			complete = false
		}
	}
	if complete {
		for _, b := range pkBind {
			pr.vars.PkIndices = append(pr.vars.PkIndices, uint16(b))
		}
	}
	if st.kind == stmtSelect {
		projs, err := t.projections(st)
		if err != nil {
			return nil, err
		}
		pr.result.ColumnCount = int32(len(projs))
		for _, p := range projs {
			pr.result.Columns = append(pr.result.Columns, p.meta)
		}
	}
	return pr, nil
}
