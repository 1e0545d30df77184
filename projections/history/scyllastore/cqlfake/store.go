// The stand-in's storage: keyspaces, tables, partitions and cells with
// write timestamps, as CQL's last-write-wins needs.

package cqlfake

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"sort"

	"github.com/datastax/go-cassandra-native-protocol/datatype"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// noTS is the timestamp of "no write" and "no deletion".
const noTS = math.MinInt64

// cell is one column value (or one collection element) with its write
// timestamp; a dead cell is a tombstone.
type cell struct {
	ts    int64
	value []byte
	dead  bool
}

// supersedes reports whether c wins over o under Cassandra's
// reconciliation: the higher write timestamp wins; on a tie a tombstone
// wins over a live cell, and between live cells the greater value wins,
// so every replica converges to the same cell whatever the arrival order.
func (c cell) supersedes(o cell) bool {
	if c.ts != o.ts {
		return c.ts > o.ts
	}
	if c.dead != o.dead {
		return c.dead
	}
	return bytes.Compare(c.value, o.value) > 0
}

// collection is a multi-cell (non-frozen) collection column: one cell per
// element, plus the timestamp of the last deletion of the whole
// collection, which shadows every element written at or before it.
type collection struct {
	del   int64
	elems map[string]cell // key: serialized element key
}

type row struct {
	ck     [][]byte
	marker int64 // row marker (liveness) timestamp written by INSERT
	del    int64 // row tombstone
	cells  map[string]cell
	colls  map[string]*collection
}

type partition struct {
	key  [][]byte
	del  int64 // partition tombstone
	rows []*row
}

type colKind int

const (
	colPartition colKind = iota
	colClustering
	colRegular
)

type column struct {
	name string
	typ  datatype.DataType
	kind colKind
	pos  int // position within the partition or clustering key
}

type table struct {
	keyspace string
	name     string
	columns  []*column // in SELECT * order
	byName   map[string]*column
	pk       []*column
	ck       []*column
	ckDesc   []bool
	parts    map[string]*partition
}

type keyspace struct {
	name        string
	replication map[string]string
	durable     bool
	tables      map[string]*table
}

// newTable builds a table from a CREATE TABLE statement.
func newTable(ks string, st *statement) (*table, error) {
	t := &table{keyspace: ks, name: st.table, byName: map[string]*column{}, parts: map[string]*partition{}}
	for _, cd := range st.columns {
		typ, err := parseType(cd.typ)
		if err != nil {
			return nil, err
		}
		if _, dup := t.byName[cd.name]; dup {
			return nil, fmt.Errorf("multiple definition of column %s", cd.name)
		}
		t.byName[cd.name] = &column{name: cd.name, typ: typ, kind: colRegular}
	}
	for i, name := range st.partition {
		c, ok := t.byName[name]
		if !ok {
			return nil, fmt.Errorf("unknown partition key column %s", name)
		}
		c.kind, c.pos = colPartition, i
		t.pk = append(t.pk, c)
	}
	for i, name := range st.clustering {
		c, ok := t.byName[name]
		if !ok || c.kind != colRegular {
			return nil, fmt.Errorf("bad clustering column %s", name)
		}
		c.kind, c.pos = colClustering, i
		t.ck = append(t.ck, c)
		t.ckDesc = append(t.ckDesc, false)
	}
	for i, o := range st.order {
		if i >= len(t.ck) || t.ck[i].name != o.col {
			return nil, fmt.Errorf("CLUSTERING ORDER BY must list the clustering columns in order")
		}
		t.ckDesc[i] = o.desc
	}
	for _, c := range append(append([]*column{}, t.pk...), t.ck...) {
		if isCollection(c.typ) {
			return nil, fmt.Errorf("collection %s cannot be part of the primary key", c.name)
		}
	}
	t.orderColumns()
	return t, nil
}

// orderColumns sets the order of SELECT *: the partition key, the
// clustering columns, then the other columns in alphabetical order, as
// Cassandra does.
func (t *table) orderColumns() {
	t.columns = append(append([]*column{}, t.pk...), t.ck...)
	var regular []*column
	for _, c := range t.byName {
		if c.kind == colRegular {
			regular = append(regular, c)
		}
	}
	sort.Slice(regular, func(i, j int) bool { return regular[i].name < regular[j].name })
	t.columns = append(t.columns, regular...)
}

func encodeKey(parts [][]byte) string {
	var b []byte
	for _, p := range parts {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return string(b)
}

func decodeKey(s string) ([][]byte, error) {
	b := []byte(s)
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("bad key")
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if int(n) > len(b) {
			return nil, fmt.Errorf("bad key")
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out, nil
}

// compareCK orders clustering keys in the table's on-disk order.
func (t *table) compareCK(a, b [][]byte) int {
	for i, c := range t.ck {
		r := compareValues(c.typ, a[i], b[i])
		if t.ckDesc[i] {
			r = -r
		}
		if r != 0 {
			return r
		}
	}
	return 0
}

func (t *table) partition(key [][]byte, create bool) *partition {
	k := encodeKey(key)
	p := t.parts[k]
	if p == nil && create {
		p = &partition{key: key, del: noTS}
		t.parts[k] = p
	}
	return p
}

func (t *table) row(p *partition, ck [][]byte, create bool) *row {
	i := sort.Search(len(p.rows), func(i int) bool { return t.compareCK(p.rows[i].ck, ck) >= 0 })
	if i < len(p.rows) && t.compareCK(p.rows[i].ck, ck) == 0 {
		return p.rows[i]
	}
	if !create {
		return nil
	}
	r := &row{ck: ck, marker: noTS, del: noTS, cells: map[string]cell{}, colls: map[string]*collection{}}
	p.rows = append(p.rows, nil)
	copy(p.rows[i+1:], p.rows[i:])
	p.rows[i] = r
	return r
}

// setCell writes a regular cell, keeping whichever of the old and the new
// cell wins reconciliation.
func (r *row) setCell(col string, c cell) {
	if old, ok := r.cells[col]; ok && !c.supersedes(old) {
		return
	}
	r.cells[col] = c
}

func (r *row) coll(col string) *collection {
	c := r.colls[col]
	if c == nil {
		c = &collection{del: noTS, elems: map[string]cell{}}
		r.colls[col] = c
	}
	return c
}

func (c *collection) setElem(key []byte, e cell) {
	if old, ok := c.elems[string(key)]; ok && !e.supersedes(old) {
		return
	}
	c.elems[string(key)] = e
}

func (c *collection) delete(ts int64) {
	if ts > c.del {
		c.del = ts
	}
}

// deletion is the timestamp of the newest deletion covering the row.
func (p *partition) deletion(r *row) int64 {
	if p.del > r.del {
		return p.del
	}
	return r.del
}

// value returns a column's live value in a row and its write timestamp;
// ok is false for a null (never written, deleted or shadowed) value.
func (t *table) value(p *partition, r *row, c *column) (v []byte, ts int64, ok bool) {
	switch c.kind {
	case colPartition:
		return p.key[c.pos], noTS, true
	case colClustering:
		return r.ck[c.pos], noTS, true
	}
	del := p.deletion(r)
	if isCollection(c.typ) {
		coll := r.colls[c.name]
		if coll == nil {
			return nil, noTS, false
		}
		if coll.del > del {
			del = coll.del
		}
		var els [][2][]byte
		for k, e := range coll.elems {
			if !e.dead && e.ts > del {
				els = append(els, [2][]byte{[]byte(k), e.value})
			}
		}
		if len(els) == 0 {
			return nil, noTS, false
		}
		return encodeCollection(c.typ, els), noTS, true
	}
	cl, found := r.cells[c.name]
	if !found || cl.dead || cl.ts <= del {
		return nil, noTS, false
	}
	return cl.value, cl.ts, true
}

// live reports whether a row exists: it has a live row marker or at least
// one live cell. A row written only by UPDATE disappears when all its
// cells are deleted; one written by INSERT stays until a row deletion.
func (t *table) live(p *partition, r *row) bool {
	del := p.deletion(r)
	if r.marker > del {
		return true
	}
	for _, c := range r.cells {
		if !c.dead && c.ts > del {
			return true
		}
	}
	for _, coll := range r.colls {
		d := del
		if coll.del > d {
			d = coll.del
		}
		for _, e := range coll.elems {
			if !e.dead && e.ts > d {
				return true
			}
		}
	}
	return false
}

// bindValue is a resolved value: regular, null or unset.
type bindValue struct {
	v     []byte
	null  bool
	unset bool
}

// mutation is a resolved write to one row (or partition).
type mutation struct {
	t   *table
	pk  [][]byte
	ck  [][]byte // nil for a partition deletion
	ts  int64
	ops []func(p *partition, r *row)
}

func (m *mutation) apply() {
	p := m.t.partition(m.pk, true)
	if m.ck == nil {
		for _, op := range m.ops {
			op(p, nil)
		}
		return
	}
	r := m.t.row(p, m.ck, true)
	for _, op := range m.ops {
		op(p, r)
	}
}

// writeOp returns the operation writing value v into column c at ts,
// with Cassandra's semantics: a null writes a tombstone, and assigning a
// whole collection first deletes the old one (a collection tombstone at
// ts-1) so the new elements replace rather than merge.
func writeOp(c *column, v bindValue, ts int64) (func(p *partition, r *row), error) {
	if v.unset {
		return nil, nil
	}
	if !isCollection(c.typ) {
		if v.null {
			return func(_ *partition, r *row) { r.setCell(c.name, cell{ts: ts, dead: true}) }, nil
		}
		if err := checkValue(c.typ, v.v); err != nil {
			return nil, fmt.Errorf("column %s: %w", c.name, err)
		}
		val := v.v
		return func(_ *partition, r *row) { r.setCell(c.name, cell{ts: ts, value: val}) }, nil
	}
	if v.null {
		return func(_ *partition, r *row) { r.coll(c.name).delete(ts) }, nil
	}
	els, err := decodeCollection(c.typ, v.v)
	if err != nil {
		return nil, fmt.Errorf("column %s: %w", c.name, err)
	}
	return func(_ *partition, r *row) {
		coll := r.coll(c.name)
		coll.delete(ts - 1)
		for _, e := range els {
			coll.setElem(e[0], cell{ts: ts, value: e[1]})
		}
	}, nil
}

// appendOp adds (col = col + v) or removes (col = col - v) elements.
func appendOp(c *column, v bindValue, ts int64, remove bool) (func(p *partition, r *row), error) {
	if v.unset {
		return nil, nil
	}
	if !isCollection(c.typ) {
		return nil, fmt.Errorf("invalid operation for non-collection column %s", c.name)
	}
	if v.null {
		return nil, nil
	}
	if remove && c.typ.Code() == primitive.DataTypeCodeMap {
		// map - set<key>: the value is a set of keys.
		kt, _ := elemTypes(c.typ)
		keys, err := decodeCollection(datatype.NewSet(kt), v.v)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c.name, err)
		}
		return func(_ *partition, r *row) {
			coll := r.coll(c.name)
			for _, k := range keys {
				coll.setElem(k[0], cell{ts: ts, dead: true})
			}
		}, nil
	}
	if c.typ.Code() == primitive.DataTypeCodeList {
		return nil, fmt.Errorf("list append and remove are not modelled")
	}
	els, err := decodeCollection(c.typ, v.v)
	if err != nil {
		return nil, fmt.Errorf("column %s: %w", c.name, err)
	}
	return func(_ *partition, r *row) {
		coll := r.coll(c.name)
		for _, e := range els {
			coll.setElem(e[0], cell{ts: ts, value: e[1], dead: remove})
		}
	}, nil
}

// elemOp writes col[key] = v (a null v deletes the element).
func elemOp(c *column, key, v bindValue, ts int64) (func(p *partition, r *row), error) {
	if c.typ.Code() != primitive.DataTypeCodeMap {
		return nil, fmt.Errorf("element assignment is only modelled for maps, not %s", c.name)
	}
	if key.null || key.unset {
		return nil, fmt.Errorf("invalid null map key for %s", c.name)
	}
	if v.unset {
		return nil, nil
	}
	kt, vt := elemTypes(c.typ)
	if err := checkValue(kt, key.v); err != nil {
		return nil, err
	}
	e := cell{ts: ts, value: v.v, dead: v.null}
	if !v.null {
		if err := checkValue(vt, v.v); err != nil {
			return nil, err
		}
	}
	k := key.v
	return func(_ *partition, r *row) { r.coll(c.name).setElem(k, e) }, nil
}
