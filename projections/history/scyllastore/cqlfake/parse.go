// The CQL lexer and parser for the statements the stand-in accepts.

package cqlfake

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// tokKind is the kind of a lexical token.
type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokQuotedIdent
	tokString
	tokNumber
	tokPunct
	tokBind
)

type token struct {
	kind tokKind
	text string // identifiers are lower-cased unless quoted
}

// lex splits a statement into tokens. It knows the CQL lexical rules the
// subset needs: identifiers (case-insensitive unless double-quoted),
// single-quoted strings with doubled-quote escapes, integers, bind markers, comments
// and punctuation.
func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '-' && i+1 < len(src) && src[i+1] == '-',
			c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("unterminated comment")
			}
			i += end + 4
		case c == '\'':
			var b strings.Builder
			i++
			for {
				if i >= len(src) {
					return nil, fmt.Errorf("unterminated string literal")
				}
				if src[i] == '\'' {
					if i+1 < len(src) && src[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(src[i])
				i++
			}
			toks = append(toks, token{tokString, b.String()})
		case c == '"':
			end := strings.IndexByte(src[i+1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated quoted identifier")
			}
			toks = append(toks, token{tokQuotedIdent, src[i+1 : i+1+end]})
			i += end + 2
		case c == '?':
			toks = append(toks, token{tokBind, "?"})
			i++
		case isDigit(c) || (c == '-' && i+1 < len(src) && isDigit(src[i+1]) && prevAllowsSign(toks)):
			j := i + 1
			for j < len(src) && (isDigit(src[j]) || src[j] == '.') {
				j++
			}
			toks = append(toks, token{tokNumber, src[i:j]})
			i = j
		case c == '_' || unicode.IsLetter(rune(c)):
			j := i + 1
			for j < len(src) && (src[j] == '_' || isDigit(src[j]) || unicode.IsLetter(rune(src[j]))) {
				j++
			}
			toks = append(toks, token{tokIdent, strings.ToLower(src[i:j])})
			i = j
		case c == '<' || c == '>':
			if i+1 < len(src) && src[i+1] == '=' {
				toks = append(toks, token{tokPunct, src[i : i+2]})
				i += 2
				continue
			}
			toks = append(toks, token{tokPunct, string(c)})
			i++
		case strings.IndexByte("(),;=.*{}[]:+-", c) >= 0:
			toks = append(toks, token{tokPunct, string(c)})
			i++
		default:
			return nil, fmt.Errorf("unexpected character %q", c)
		}
	}
	return append(toks, token{kind: tokEOF}), nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// prevAllowsSign reports whether a '-' at this point starts a negative
// number rather than being the minus operator.
func prevAllowsSign(toks []token) bool {
	if len(toks) == 0 {
		return true
	}
	p := toks[len(toks)-1]
	return p.kind == tokPunct && p.text != ")" && p.text != "]" && p.text != "}"
}

// stmtKind is the kind of a statement of the subset.
type stmtKind int

const (
	stmtCreateKeyspace stmtKind = iota + 1
	stmtDropKeyspace
	stmtCreateTable
	stmtDropTable
	stmtAlterAdd
	stmtUse
	stmtInsert
	stmtUpdate
	stmtDelete
	stmtSelect
)

// term is a value in a statement: a bind marker or a literal.
type term struct {
	bind int // index of the bind marker, or -1 for a literal
	lit  literal
}

// literal is a constant written in the statement text.
type literal struct {
	kind  tokKind // tokString, tokNumber, tokIdent (true/false/null)
	text  string
	mapKV [][2]literal // for a map literal
	set   []literal    // for a set or list literal
	isMap bool
	isSet bool
}

type colDef struct {
	name string
	typ  string
}

type assignment struct {
	col    string
	key    *term // col[key] = value
	value  term
	append bool // col = col + value
	remove bool // col = col - value
}

type relation struct {
	col string
	op  string // = < <= > >=
	val term
}

type selector struct {
	col       string
	writetime bool
	key       *term // DELETE col[key]
}

type ordering struct {
	col  string
	desc bool
}

// statement is a parsed statement of the subset.
type statement struct {
	kind        stmtKind
	text        string
	ifNotExists bool
	ifExists    bool
	keyspace    string // may be empty for a table statement: the connection's
	table       string

	// CREATE KEYSPACE
	replication map[string]string
	durable     bool

	// CREATE TABLE; ALTER TABLE ... ADD (one column)
	columns    []colDef
	partition  []string
	clustering []string
	order      []ordering

	// INSERT
	insertCols []string
	values     []term

	// UPDATE
	assignments []assignment

	// INSERT, UPDATE, DELETE
	timestamp *term

	// DELETE, SELECT
	selectors []selector
	star      bool

	where   []relation
	orderBy []ordering
	limit   *term

	nBinds int
}

type parser struct {
	toks  []token
	pos   int
	binds int
}

// parse parses one statement of the subset. Anything outside it is a
// syntax error, so a statement the adapter starts to send and the fake
// does not model fails loudly instead of being silently ignored.
func parse(src string) (*statement, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	st, err := p.statement()
	if err != nil {
		return nil, err
	}
	p.accept(";")
	if p.peek().kind != tokEOF {
		return nil, fmt.Errorf("unexpected %q after statement", p.peek().text)
	}
	st.text = src
	st.nBinds = p.binds
	return st, nil
}

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

// accept consumes the next token if it is the keyword or punctuation s.
func (p *parser) accept(s string) bool {
	t := p.peek()
	if (t.kind == tokIdent || t.kind == tokPunct) && t.text == s {
		p.pos++
		return true
	}
	return false
}

func (p *parser) expect(words ...string) error {
	for _, w := range words {
		if !p.accept(w) {
			return fmt.Errorf("expected %q, found %q", strings.ToUpper(w), p.peek().text)
		}
	}
	return nil
}

func (p *parser) ident() (string, error) {
	t := p.next()
	if t.kind != tokIdent && t.kind != tokQuotedIdent {
		return "", fmt.Errorf("expected identifier, found %q", t.text)
	}
	return t.text, nil
}

// tableName parses [keyspace.]table.
func (p *parser) tableName() (ks, table string, err error) {
	a, err := p.ident()
	if err != nil {
		return "", "", err
	}
	if p.accept(".") {
		b, err := p.ident()
		return a, b, err
	}
	return "", a, nil
}

func (p *parser) statement() (*statement, error) {
	switch {
	case p.accept("create"):
		if p.accept("keyspace") {
			return p.createKeyspace()
		}
		if p.accept("table") || p.accept("columnfamily") {
			return p.createTable()
		}
	case p.accept("drop"):
		st := &statement{}
		switch {
		case p.accept("keyspace"):
			st.kind = stmtDropKeyspace
		case p.accept("table"):
			st.kind = stmtDropTable
		default:
			return nil, fmt.Errorf("unsupported DROP %q", p.peek().text)
		}
		if p.accept("if") {
			if err := p.expect("exists"); err != nil {
				return nil, err
			}
			st.ifExists = true
		}
		var err error
		if st.kind == stmtDropKeyspace {
			st.keyspace, err = p.ident()
		} else {
			st.keyspace, st.table, err = p.tableName()
		}
		return st, err
	case p.accept("alter"):
		if p.accept("table") || p.accept("columnfamily") {
			return p.alterTable()
		}
		return nil, fmt.Errorf("unsupported ALTER %q", p.peek().text)
	case p.accept("use"):
		ks, err := p.ident()
		return &statement{kind: stmtUse, keyspace: ks}, err
	case p.accept("insert"):
		return p.insert()
	case p.accept("update"):
		return p.update()
	case p.accept("delete"):
		return p.delete()
	case p.accept("select"):
		return p.selectStmt()
	}
	return nil, fmt.Errorf("unsupported statement starting with %q", p.peek().text)
}

func (p *parser) ifNotExists() (bool, error) {
	if !p.accept("if") {
		return false, nil
	}
	return true, p.expect("not", "exists")
}

func (p *parser) createKeyspace() (*statement, error) {
	st := &statement{kind: stmtCreateKeyspace, durable: true}
	var err error
	if st.ifNotExists, err = p.ifNotExists(); err != nil {
		return nil, err
	}
	if st.keyspace, err = p.ident(); err != nil {
		return nil, err
	}
	if err := p.expect("with"); err != nil {
		return nil, err
	}
	for {
		name, err := p.ident()
		if err != nil {
			return nil, err
		}
		if err := p.expect("="); err != nil {
			return nil, err
		}
		lit, err := p.literal()
		if err != nil {
			return nil, err
		}
		switch name {
		case "replication":
			if !lit.isMap {
				return nil, fmt.Errorf("replication must be a map")
			}
			st.replication = map[string]string{}
			for _, kv := range lit.mapKV {
				st.replication[kv[0].text] = kv[1].text
			}
		case "durable_writes":
			st.durable = lit.text == "true"
		default:
			return nil, fmt.Errorf("unsupported keyspace option %q", name)
		}
		if !p.accept("and") {
			break
		}
	}
	if st.replication == nil {
		return nil, fmt.Errorf("missing replication")
	}
	return st, nil
}

func (p *parser) typeName() (string, error) {
	base, err := p.ident()
	if err != nil {
		return "", err
	}
	if !p.accept("<") {
		return base, nil
	}
	var args []string
	for {
		a, err := p.typeName()
		if err != nil {
			return "", err
		}
		args = append(args, a)
		if !p.accept(",") {
			break
		}
	}
	if err := p.expect(">"); err != nil {
		return "", err
	}
	return base + "<" + strings.Join(args, ",") + ">", nil
}

func (p *parser) createTable() (*statement, error) {
	st := &statement{kind: stmtCreateTable}
	var err error
	if st.ifNotExists, err = p.ifNotExists(); err != nil {
		return nil, err
	}
	if st.keyspace, st.table, err = p.tableName(); err != nil {
		return nil, err
	}
	if err := p.expect("("); err != nil {
		return nil, err
	}
	for {
		if p.accept("primary") {
			if err := p.expect("key", "("); err != nil {
				return nil, err
			}
			if p.accept("(") {
				for {
					c, err := p.ident()
					if err != nil {
						return nil, err
					}
					st.partition = append(st.partition, c)
					if !p.accept(",") {
						break
					}
				}
				if err := p.expect(")"); err != nil {
					return nil, err
				}
			} else {
				c, err := p.ident()
				if err != nil {
					return nil, err
				}
				st.partition = []string{c}
			}
			for p.accept(",") {
				c, err := p.ident()
				if err != nil {
					return nil, err
				}
				st.clustering = append(st.clustering, c)
			}
			if err := p.expect(")"); err != nil {
				return nil, err
			}
		} else {
			cd, err := p.columnDef()
			if err != nil {
				return nil, err
			}
			st.columns = append(st.columns, cd)
			if p.accept("primary") {
				if err := p.expect("key"); err != nil {
					return nil, err
				}
				st.partition = []string{cd.name}
			}
		}
		if !p.accept(",") {
			break
		}
	}
	if err := p.expect(")"); err != nil {
		return nil, err
	}
	if len(st.partition) == 0 {
		return nil, fmt.Errorf("no primary key")
	}
	if p.accept("with") {
		for {
			if p.accept("clustering") {
				if err := p.expect("order", "by", "("); err != nil {
					return nil, err
				}
				for {
					c, err := p.ident()
					if err != nil {
						return nil, err
					}
					o := ordering{col: c}
					if p.accept("desc") {
						o.desc = true
					} else {
						p.accept("asc")
					}
					st.order = append(st.order, o)
					if !p.accept(",") {
						break
					}
				}
				if err := p.expect(")"); err != nil {
					return nil, err
				}
			} else {
				// Table options (comment, compaction, …) are accepted
				// and ignored: the fake has no storage engine to tune.
				if _, err := p.ident(); err != nil {
					return nil, err
				}
				if err := p.expect("="); err != nil {
					return nil, err
				}
				if _, err := p.literal(); err != nil {
					return nil, err
				}
			}
			if !p.accept("and") {
				break
			}
		}
	}
	return st, nil
}

// alterTable parses ALTER TABLE [ks.]table ADD column type, the only
// ALTER of the subset.
func (p *parser) alterTable() (*statement, error) {
	st := &statement{kind: stmtAlterAdd}
	var err error
	if st.keyspace, st.table, err = p.tableName(); err != nil {
		return nil, err
	}
	if err := p.expect("add"); err != nil {
		return nil, fmt.Errorf("only ALTER TABLE ... ADD is modelled: %w", err)
	}
	cd, err := p.columnDef()
	if err != nil {
		return nil, err
	}
	st.columns = []colDef{cd}
	return st, nil
}

// columnDef parses a column's name and type.
func (p *parser) columnDef() (colDef, error) {
	name, err := p.ident()
	if err != nil {
		return colDef{}, err
	}
	typ, err := p.typeName()
	if err != nil {
		return colDef{}, err
	}
	return colDef{name, typ}, nil
}

func (p *parser) term() (term, error) {
	if p.peek().kind == tokBind {
		p.next()
		t := term{bind: p.binds}
		p.binds++
		return t, nil
	}
	lit, err := p.literal()
	return term{bind: -1, lit: lit}, err
}

func (p *parser) literal() (literal, error) {
	t := p.next()
	switch {
	case t.kind == tokString || t.kind == tokNumber:
		return literal{kind: t.kind, text: t.text}, nil
	case t.kind == tokIdent && (t.text == "true" || t.text == "false" || t.text == "null"):
		return literal{kind: tokIdent, text: t.text}, nil
	case t.kind == tokPunct && t.text == "{":
		lit := literal{}
		if p.accept("}") {
			lit.isMap = true
			return lit, nil
		}
		for {
			k, err := p.literal()
			if err != nil {
				return lit, err
			}
			if p.accept(":") {
				v, err := p.literal()
				if err != nil {
					return lit, err
				}
				lit.isMap = true
				lit.mapKV = append(lit.mapKV, [2]literal{k, v})
			} else {
				lit.isSet = true
				lit.set = append(lit.set, k)
			}
			if !p.accept(",") {
				break
			}
		}
		if lit.isMap && lit.isSet {
			return lit, fmt.Errorf("mixed map and set literal")
		}
		return lit, p.expect("}")
	}
	return literal{}, fmt.Errorf("expected a value, found %q", t.text)
}

func (p *parser) using(st *statement) error {
	if !p.accept("using") {
		return nil
	}
	for {
		switch {
		case p.accept("timestamp"):
			t, err := p.term()
			if err != nil {
				return err
			}
			st.timestamp = &t
		case p.accept("timeout"):
			if err := p.duration(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unsupported USING %q", p.peek().text)
		}
		if !p.accept("and") {
			return nil
		}
	}
}

func (p *parser) insert() (*statement, error) {
	st := &statement{kind: stmtInsert}
	if err := p.expect("into"); err != nil {
		return nil, err
	}
	var err error
	if st.keyspace, st.table, err = p.tableName(); err != nil {
		return nil, err
	}
	if err := p.expect("("); err != nil {
		return nil, err
	}
	for {
		c, err := p.ident()
		if err != nil {
			return nil, err
		}
		st.insertCols = append(st.insertCols, c)
		if !p.accept(",") {
			break
		}
	}
	if err := p.expect(")", "values", "("); err != nil {
		return nil, err
	}
	for {
		t, err := p.term()
		if err != nil {
			return nil, err
		}
		st.values = append(st.values, t)
		if !p.accept(",") {
			break
		}
	}
	if err := p.expect(")"); err != nil {
		return nil, err
	}
	if len(st.values) != len(st.insertCols) {
		return nil, fmt.Errorf("%d columns but %d values", len(st.insertCols), len(st.values))
	}
	if st.ifNotExists, err = p.ifNotExists(); err != nil {
		return nil, err
	}
	if err := p.using(st); err != nil {
		return nil, err
	}
	if st.ifNotExists && st.timestamp != nil {
		return nil, fmt.Errorf("cannot provide custom timestamp for conditional updates")
	}
	return st, nil
}

func (p *parser) update() (*statement, error) {
	st := &statement{kind: stmtUpdate}
	var err error
	if st.keyspace, st.table, err = p.tableName(); err != nil {
		return nil, err
	}
	if err := p.using(st); err != nil {
		return nil, err
	}
	if err := p.expect("set"); err != nil {
		return nil, err
	}
	for {
		col, err := p.ident()
		if err != nil {
			return nil, err
		}
		a := assignment{col: col}
		if p.accept("[") {
			k, err := p.term()
			if err != nil {
				return nil, err
			}
			a.key = &k
			if err := p.expect("]"); err != nil {
				return nil, err
			}
		}
		if err := p.expect("="); err != nil {
			return nil, err
		}
		if a.key == nil && p.peek().kind == tokIdent && p.peek().text == col {
			p.next()
			switch {
			case p.accept("+"):
				a.append = true
			case p.accept("-"):
				a.remove = true
			default:
				return nil, fmt.Errorf("expected + or - after %s", col)
			}
		}
		if a.value, err = p.term(); err != nil {
			return nil, err
		}
		st.assignments = append(st.assignments, a)
		if !p.accept(",") {
			break
		}
	}
	if st.where, err = p.where(); err != nil {
		return nil, err
	}
	return st, nil
}

func (p *parser) delete() (*statement, error) {
	st := &statement{kind: stmtDelete}
	for !p.accept("from") {
		col, err := p.ident()
		if err != nil {
			return nil, err
		}
		s := selector{col: col}
		if p.accept("[") {
			k, err := p.term()
			if err != nil {
				return nil, err
			}
			s.key = &k
			if err := p.expect("]"); err != nil {
				return nil, err
			}
		}
		st.selectors = append(st.selectors, s)
		p.accept(",")
	}
	var err error
	if st.keyspace, st.table, err = p.tableName(); err != nil {
		return nil, err
	}
	if err := p.using(st); err != nil {
		return nil, err
	}
	if st.where, err = p.where(); err != nil {
		return nil, err
	}
	return st, nil
}

func (p *parser) where() ([]relation, error) {
	if !p.accept("where") {
		return nil, nil
	}
	var rels []relation
	for {
		col, err := p.ident()
		if err != nil {
			return nil, err
		}
		op := p.next()
		if op.kind != tokPunct || !strings.Contains("= < <= > >=", op.text) {
			return nil, fmt.Errorf("unsupported operator %q", op.text)
		}
		v, err := p.term()
		if err != nil {
			return nil, err
		}
		rels = append(rels, relation{col, op.text, v})
		if !p.accept("and") {
			return rels, nil
		}
	}
}

func (p *parser) selectStmt() (*statement, error) {
	st := &statement{kind: stmtSelect}
	if p.accept("*") {
		st.star = true
	} else {
		for {
			col, err := p.ident()
			if err != nil {
				return nil, err
			}
			s := selector{col: col}
			if col == "writetime" && p.accept("(") {
				if s.col, err = p.ident(); err != nil {
					return nil, err
				}
				s.writetime = true
				if err := p.expect(")"); err != nil {
					return nil, err
				}
			}
			st.selectors = append(st.selectors, s)
			if !p.accept(",") {
				break
			}
		}
	}
	if err := p.expect("from"); err != nil {
		return nil, err
	}
	var err error
	if st.keyspace, st.table, err = p.tableName(); err != nil {
		return nil, err
	}
	if st.where, err = p.where(); err != nil {
		return nil, err
	}
	if p.accept("order") {
		if err := p.expect("by"); err != nil {
			return nil, err
		}
		for {
			c, err := p.ident()
			if err != nil {
				return nil, err
			}
			o := ordering{col: c}
			if p.accept("desc") {
				o.desc = true
			} else {
				p.accept("asc")
			}
			st.orderBy = append(st.orderBy, o)
			if !p.accept(",") {
				break
			}
		}
	}
	if p.accept("limit") {
		t, err := p.term()
		if err != nil {
			return nil, err
		}
		st.limit = &t
	}
	if p.accept("allow") {
		if err := p.expect("filtering"); err != nil {
			return nil, err
		}
	}
	if p.accept("using") {
		if err := p.expect("timeout"); err != nil {
			return nil, err
		}
		if err := p.duration(); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// duration parses (and ignores) a duration literal such as 60000ms, the
// argument of ScyllaDB's USING TIMEOUT, which gocql appends to its
// metadata queries. The fake answers at once, so there is nothing to time
// out.
func (p *parser) duration() error {
	if p.peek().kind == tokBind {
		p.next()
		p.binds++
		return nil
	}
	for p.peek().kind == tokNumber {
		p.next()
		if p.peek().kind == tokIdent {
			p.next()
		}
	}
	return nil
}

// intLiteral returns a number literal as an int64.
func intLiteral(l literal) (int64, error) {
	if l.kind != tokNumber {
		return 0, fmt.Errorf("expected an integer, found %q", l.text)
	}
	return strconv.ParseInt(l.text, 10, 64)
}
