// CQL data types: parsing their names, checking, comparing and encoding
// their values.

package cqlfake

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"sort"
	"strings"

	"github.com/datastax/go-cassandra-native-protocol/datatype"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// parseType maps a CQL type name of the subset to its protocol type.
func parseType(name string) (datatype.DataType, error) {
	if i := strings.IndexByte(name, '<'); i >= 0 {
		base, args := name[:i], splitTypeArgs(name[i+1:len(name)-1])
		var ts []datatype.DataType
		for _, a := range args {
			t, err := parseType(a)
			if err != nil {
				return nil, err
			}
			if isCollection(t) {
				return nil, fmt.Errorf("nested collections are not modelled: %s", name)
			}
			ts = append(ts, t)
		}
		switch {
		case base == "map" && len(ts) == 2:
			return datatype.NewMap(ts[0], ts[1]), nil
		case base == "set" && len(ts) == 1:
			return datatype.NewSet(ts[0]), nil
		case base == "list" && len(ts) == 1:
			return datatype.NewList(ts[0]), nil
		}
		return nil, fmt.Errorf("unsupported type %s", name)
	}
	switch name {
	case "text", "varchar":
		return datatype.Varchar, nil
	case "ascii":
		return datatype.Ascii, nil
	case "bigint":
		return datatype.Bigint, nil
	case "int":
		return datatype.Int, nil
	case "timestamp":
		return datatype.Timestamp, nil
	case "blob":
		return datatype.Blob, nil
	case "boolean":
		return datatype.Boolean, nil
	case "uuid":
		return datatype.Uuid, nil
	case "timeuuid":
		return datatype.Timeuuid, nil
	case "inet":
		return datatype.Inet, nil
	}
	return nil, fmt.Errorf("unsupported type %s", name)
}

func splitTypeArgs(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '<':
			depth++
		case '>':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func isCollection(t datatype.DataType) bool {
	switch t.Code() {
	case primitive.DataTypeCodeMap, primitive.DataTypeCodeSet, primitive.DataTypeCodeList:
		return true
	}
	return false
}

// elemTypes returns the key and value types of a collection: for a map
// its key and value, for a set its element and nil, for a list an int
// index (the fake keys list cells by position) and its element.
func elemTypes(t datatype.DataType) (key, value datatype.DataType) {
	switch c := t.(type) {
	case *datatype.Map:
		return c.KeyType, c.ValueType
	case *datatype.Set:
		return c.ElementType, nil
	case *datatype.List:
		return datatype.Int, c.ElementType
	}
	return nil, nil
}

// compareValues orders two serialized values of type t as Cassandra does
// for clustering and collection keys: signed integers and timestamps
// numerically, text, blobs, inets and booleans bytewise. UUIDs are
// compared bytewise too, which differs from Cassandra's time-first order
// for timeuuid (not used by the statements the fake models).
func compareValues(t datatype.DataType, a, b []byte) int {
	switch t.Code() {
	case primitive.DataTypeCodeBigint, primitive.DataTypeCodeTimestamp, primitive.DataTypeCodeCounter:
		if len(a) == 8 && len(b) == 8 {
			x, y := int64(binary.BigEndian.Uint64(a)), int64(binary.BigEndian.Uint64(b))
			return cmpInt(x, y)
		}
	case primitive.DataTypeCodeInt:
		if len(a) == 4 && len(b) == 4 {
			x, y := int32(binary.BigEndian.Uint32(a)), int32(binary.BigEndian.Uint32(b))
			return cmpInt(int64(x), int64(y))
		}
	}
	return bytes.Compare(a, b)
}

func cmpInt(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// checkValue validates the serialized form of a bind value, so a driver
// bug (a 4-byte value for a bigint, say) is a protocol error here just as
// on a real node.
func checkValue(t datatype.DataType, v []byte) error {
	want := -1
	switch t.Code() {
	case primitive.DataTypeCodeBigint, primitive.DataTypeCodeTimestamp, primitive.DataTypeCodeCounter:
		want = 8
	case primitive.DataTypeCodeInt:
		want = 4
	case primitive.DataTypeCodeBoolean:
		want = 1
	case primitive.DataTypeCodeUuid, primitive.DataTypeCodeTimeuuid:
		want = 16
	case primitive.DataTypeCodeMap, primitive.DataTypeCodeSet, primitive.DataTypeCodeList:
		_, err := decodeCollection(t, v)
		return err
	}
	if want >= 0 && len(v) != want {
		return fmt.Errorf("expected %d bytes for %s, got %d", want, t.AsCql(), len(v))
	}
	return nil
}

// encodeLiteral serializes a literal written in a statement as type t.
func encodeLiteral(t datatype.DataType, l literal) ([]byte, error) {
	if l.kind == tokIdent && l.text == "null" {
		return nil, nil
	}
	switch t.Code() {
	case primitive.DataTypeCodeVarchar, primitive.DataTypeCodeAscii:
		if l.kind != tokString {
			return nil, fmt.Errorf("expected a string for %s", t.AsCql())
		}
		return []byte(l.text), nil
	case primitive.DataTypeCodeBigint, primitive.DataTypeCodeTimestamp:
		n, err := intLiteral(l)
		if err != nil {
			return nil, err
		}
		return binary.BigEndian.AppendUint64(nil, uint64(n)), nil
	case primitive.DataTypeCodeInt:
		n, err := intLiteral(l)
		if err != nil || n < math.MinInt32 || n > math.MaxInt32 {
			return nil, fmt.Errorf("bad int literal %q", l.text)
		}
		return binary.BigEndian.AppendUint32(nil, uint32(int32(n))), nil
	case primitive.DataTypeCodeBoolean:
		if l.text == "true" {
			return []byte{1}, nil
		}
		return []byte{0}, nil
	case primitive.DataTypeCodeInet:
		ip := net.ParseIP(l.text)
		if ip == nil {
			return nil, fmt.Errorf("bad inet %q", l.text)
		}
		if v4 := ip.To4(); v4 != nil {
			return v4, nil
		}
		return ip, nil
	case primitive.DataTypeCodeMap:
		kt, vt := elemTypes(t)
		var els [][2][]byte
		for _, kv := range l.mapKV {
			k, err := encodeLiteral(kt, kv[0])
			if err != nil {
				return nil, err
			}
			v, err := encodeLiteral(vt, kv[1])
			if err != nil {
				return nil, err
			}
			els = append(els, [2][]byte{k, v})
		}
		return encodeCollection(t, els), nil
	case primitive.DataTypeCodeSet:
		et, _ := elemTypes(t)
		var els [][2][]byte
		for _, e := range l.set {
			k, err := encodeLiteral(et, e)
			if err != nil {
				return nil, err
			}
			els = append(els, [2][]byte{k, nil})
		}
		return encodeCollection(t, els), nil
	}
	return nil, fmt.Errorf("literals of type %s are not modelled", t.AsCql())
}

// decodeCollection splits a serialized collection (protocol v3+ format)
// into (key, value) pairs: map entries, set elements with a nil value, or
// list elements keyed by their position.
func decodeCollection(t datatype.DataType, b []byte) ([][2][]byte, error) {
	readBytes := func() ([]byte, error) {
		if len(b) < 4 {
			return nil, fmt.Errorf("truncated collection")
		}
		n := int32(binary.BigEndian.Uint32(b))
		b = b[4:]
		if n < 0 {
			return nil, fmt.Errorf("null element in collection")
		}
		if int(n) > len(b) {
			return nil, fmt.Errorf("truncated collection")
		}
		v := b[:n]
		b = b[n:]
		return v, nil
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("truncated collection")
	}
	n := int(int32(binary.BigEndian.Uint32(b)))
	b = b[4:]
	if n < 0 || n > len(b) {
		return nil, fmt.Errorf("bad collection size %d", n)
	}
	out := make([][2][]byte, 0, n)
	for i := 0; i < n; i++ {
		k, err := readBytes()
		if err != nil {
			return nil, err
		}
		switch t.Code() {
		case primitive.DataTypeCodeMap:
			v, err := readBytes()
			if err != nil {
				return nil, err
			}
			out = append(out, [2][]byte{k, v})
		case primitive.DataTypeCodeSet:
			out = append(out, [2][]byte{k, nil})
		default:
			out = append(out, [2][]byte{binary.BigEndian.AppendUint32(nil, uint32(i)), k})
		}
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d trailing bytes after collection", len(b))
	}
	return out, nil
}

// encodeCollection serializes (key, value) pairs, sorted by key, as a
// collection of type t.
func encodeCollection(t datatype.DataType, els [][2][]byte) []byte {
	kt, _ := elemTypes(t)
	sort.SliceStable(els, func(i, j int) bool { return compareValues(kt, els[i][0], els[j][0]) < 0 })
	out := binary.BigEndian.AppendUint32(nil, uint32(len(els)))
	put := func(v []byte) {
		out = binary.BigEndian.AppendUint32(out, uint32(len(v)))
		out = append(out, v...)
	}
	for _, e := range els {
		switch t.Code() {
		case primitive.DataTypeCodeMap:
			put(e[0])
			put(e[1])
		case primitive.DataTypeCodeSet:
			put(e[0])
		default:
			put(e[1])
		}
	}
	return out
}

// bigint serializes n as a CQL bigint.
func bigint(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }
