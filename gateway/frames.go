// The client's frames: decoding a text frame and checking it against the
// fields of its type, as schemas/asyncapi.yaml's frame schemas describe them.

package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// clientFrame is any frame a client sends; Type says which fields count.
type clientFrame struct {
	Type           string
	ID             string
	Token          string
	ConversationID string
	CommandID      string
	Body           string
	Conversations  map[string]uint64
	DeviceID       string
	Status         string
	UserIDs        []string
	ReplyTo        uint64
	Seq            *uint64
	Emoji          string
	Attachments    []attachmentRequest
}

// maxRequestID is the longest request id, in characters.
const maxRequestID = 64

// frameSpec is what a client frame type carries beside type and id.
type frameSpec struct {
	needsID bool
	fields  []frameField
}

// frameField is one field of a frame type.
type frameField struct {
	name     string
	required bool
	// minSeq is the least value of a seq field (seq, reply_to).
	minSeq uint64
}

// clientFrames lists every frame type a client may send and its fields:
// the frame schemas of asyncapi.yaml, whose additionalProperties are
// false. Patterns and limits of values (ids, body size, emoji) are
// checked where the request is served.
var clientFrames = map[string]frameSpec{
	"auth":    {needsID: true, fields: []frameField{{name: "token", required: true}, {name: "device_id"}}},
	"ping":    {needsID: true},
	"send":    {needsID: true, fields: []frameField{{name: "conversation_id", required: true}, {name: "command_id", required: true}, {name: "body", required: true}, {name: "reply_to"}, {name: "attachments"}}},
	"edit":    {needsID: true, fields: []frameField{{name: "conversation_id", required: true}, {name: "command_id", required: true}, {name: "seq", required: true, minSeq: 1}, {name: "body", required: true}}},
	"delete":  {needsID: true, fields: []frameField{{name: "conversation_id", required: true}, {name: "command_id", required: true}, {name: "seq", required: true, minSeq: 1}}},
	"react":   {needsID: true, fields: []frameField{{name: "conversation_id", required: true}, {name: "command_id", required: true}, {name: "seq", required: true, minSeq: 1}, {name: "emoji", required: true}}},
	"unreact": {needsID: true, fields: []frameField{{name: "conversation_id", required: true}, {name: "command_id", required: true}, {name: "seq", required: true, minSeq: 1}, {name: "emoji", required: true}}},
	"read":    {needsID: true, fields: []frameField{{name: "conversation_id", required: true}, {name: "seq"}}},
	"resume":  {needsID: true, fields: []frameField{{name: "conversations", required: true}}},
	"typing":  {fields: []frameField{{name: "conversation_id", required: true}}},
	// presence_set is answered only when refused; its id is optional.
	"presence_set":   {fields: []frameField{{name: "status", required: true}}},
	"presence_watch": {needsID: true, fields: []frameField{{name: "user_ids", required: true}}},
}

// decodeFrame decodes a client's text frame and checks it against the
// fields of its type. On error the frame returned holds only the id the
// error frame echoes ("" when there is none to echo), and the error is
// the one to answer with:
//
//   - not a JSON object: bad_frame, without id;
//   - an id that is not a string of 1 to 64 characters: invalid_request,
//     without id;
//   - otherwise the error echoes the frame's id: invalid_request for a
//     missing or non-string type, unknown_type for a type no client frame
//     has, invalid_request for a missing id, a missing field, a field of
//     the wrong JSON type or out of range, or a field the type does not
//     have.
func decodeFrame(data []byte) (clientFrame, *apiError) {
	var buf [16]member
	obj, isObject := objectMembers(data, buf[:0])
	if !isObject {
		var v any
		var syntax *json.SyntaxError
		if err := json.Unmarshal(data, &v); errors.As(err, &syntax) {
			return clientFrame{}, newError(codeBadFrame, "malformed JSON: "+syntax.Error())
		}
		return clientFrame{}, newError(codeBadFrame, "a frame must be a JSON object")
	}
	var f clientFrame
	if r, ok := obj.get("id"); ok {
		id, ok := jsonString(r)
		if !ok || id == "" || utf8.RuneCountInString(id) > maxRequestID {
			return clientFrame{}, newError(codeInvalidRequest, "id must be a string of 1 to 64 characters")
		}
		f.ID = id
	}
	fail := func(code, msg string) (clientFrame, *apiError) {
		return clientFrame{ID: f.ID}, newError(code, msg)
	}
	r, ok := obj.get("type")
	if !ok {
		return fail(codeInvalidRequest, "a frame needs a type")
	}
	typ, ok := jsonString(r)
	if !ok {
		return fail(codeInvalidRequest, "type must be a string")
	}
	spec, ok := clientFrames[typ]
	if !ok {
		return fail(codeUnknownType, "unknown frame type "+quoted(typ))
	}
	if spec.needsID && f.ID == "" {
		return fail(codeInvalidRequest, "a "+typ+" frame needs an id")
	}
	for _, fd := range spec.fields {
		r, ok := obj.get(fd.name)
		if !ok {
			if fd.required {
				return fail(codeInvalidRequest, "a "+typ+" frame needs "+fd.name)
			}
			continue
		}
		if msg := f.set(fd, r); msg != "" {
			return fail(codeInvalidRequest, msg)
		}
	}
	var extra []string
	for _, m := range obj {
		if name := string(m.name); name != "type" && name != "id" && !slices.ContainsFunc(spec.fields, func(fd frameField) bool { return fd.name == name }) {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return fail(codeInvalidRequest, "a "+typ+" frame has no field "+quoted(extra[0]))
	}
	f.Type = typ
	return f, nil
}

// member is one member of a JSON object: its name and its value's JSON.
type member struct {
	name  []byte // unescaped
	value json.RawMessage
}

// members are the members of a JSON object, in their order.
type members []member

// get returns the value of the member named name; the last one, as in
// encoding/json, if there are several.
func (ms members) get(name string) (json.RawMessage, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if string(ms[i].name) == name {
			return ms[i].value, true
		}
	}
	return nil, false
}

// objectMembers appends the members of data to buf, or returns false if
// data is not valid JSON or not an object. The values share data's
// bytes: a frame is split without copying it.
func objectMembers(data []byte, buf members) (members, bool) {
	if !json.Valid(data) {
		return nil, false
	}
	// data is valid JSON: the scan below needs no error checks.
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return nil, false
	}
	i = skipSpace(data, i+1)
	if data[i] == '}' {
		return buf, true
	}
	for {
		end := stringEnd(data, i)
		name := data[i+1 : end-1]
		if slices.Contains(name, '\\') {
			var n string
			if json.Unmarshal(data[i:end], &n) != nil {
				return nil, false
			}
			name = []byte(n)
		}
		i = skipSpace(data, skipSpace(data, end)+1) // past the colon
		vend := valueEnd(data, i)
		buf = append(buf, member{name: name, value: data[i:vend]})
		i = skipSpace(data, vend)
		if data[i] == '}' {
			return buf, true
		}
		i = skipSpace(data, i+1) // past the comma
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that starts at i.
func stringEnd(data []byte, i int) int {
	for j := i + 1; ; j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
}

// valueEnd returns the index just past the value that starts at i.
func valueEnd(data []byte, i int) int {
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for j := i; ; j++ {
			switch data[j] {
			case '"':
				j = stringEnd(data, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
	}
	j := i
	for j < len(data) && !strings.ContainsRune(",}] \t\n\r", rune(data[j])) {
		j++
	}
	return j
}

// set decodes field fd of f from r, or says what is wrong with it.
func (f *clientFrame) set(fd frameField, r json.RawMessage) string {
	var ok bool
	switch fd.name {
	case "token":
		f.Token, ok = jsonString(r)
	case "device_id":
		f.DeviceID, ok = jsonString(r)
	case "conversation_id":
		f.ConversationID, ok = jsonString(r)
	case "command_id":
		f.CommandID, ok = jsonString(r)
	case "body":
		f.Body, ok = jsonString(r)
	case "emoji":
		f.Emoji, ok = jsonString(r)
	case "status":
		f.Status, ok = jsonString(r)
	case "seq", "reply_to":
		n, msg := wholeNumber(fd.name, r, fd.minSeq)
		if msg != "" {
			return msg
		}
		if fd.name == "seq" {
			f.Seq = &n
		} else {
			f.ReplyTo = n
		}
		return ""
	case "user_ids":
		return f.setUserIDs(r)
	case "conversations":
		return f.setConversations(r)
	case "attachments":
		return f.setAttachments(r)
	}
	if !ok {
		return fd.name + " must be a string"
	}
	return ""
}

func (f *clientFrame) setUserIDs(r json.RawMessage) string {
	var list []json.RawMessage
	if len(r) == 0 || r[0] != '[' || json.Unmarshal(r, &list) != nil {
		return "user_ids must be a list of strings"
	}
	f.UserIDs = make([]string, len(list))
	for i, e := range list {
		s, ok := jsonString(e)
		if !ok {
			return "user_ids must be a list of strings"
		}
		f.UserIDs[i] = s
	}
	return ""
}

func (f *clientFrame) setAttachments(r json.RawMessage) string {
	const msg = "attachments must be a list of objects with upload_id and optionally name, size, content_type and sha256"
	if len(r) == 0 || r[0] != '[' {
		return msg
	}
	dec := json.NewDecoder(bytes.NewReader(r))
	dec.DisallowUnknownFields()
	if dec.Decode(&f.Attachments) != nil {
		return msg
	}
	for _, a := range f.Attachments {
		if a.UploadID == "" {
			return msg
		}
	}
	return ""
}

func (f *clientFrame) setConversations(r json.RawMessage) string {
	var m map[string]json.RawMessage
	if len(r) == 0 || r[0] != '{' || json.Unmarshal(r, &m) != nil {
		return "conversations must be an object of conversation ids and seqs"
	}
	f.Conversations = make(map[string]uint64, len(m))
	for conv, v := range m {
		n, msg := wholeNumber("the seq of conversation "+quoted(conv), v, 0)
		if msg != "" {
			return "conversations: " + msg
		}
		f.Conversations[conv] = n
	}
	return ""
}

// jsonString returns the string r holds, or false if r is not a string.
func jsonString(r json.RawMessage) (string, bool) {
	if len(r) < 2 || r[0] != '"' {
		return "", false
	}
	// Most strings have no escapes: their bytes are the string's.
	if in := r[1 : len(r)-1]; !slices.Contains(in, '\\') && utf8.Valid(in) {
		return string(in), true
	}
	var s string
	return s, json.Unmarshal(r, &s) == nil
}

// maxSeq is the largest seq a frame may carry: 2^53-1, the largest
// integer every JSON client holds exactly.
const maxSeq = 1<<53 - 1

// wholeNumber returns the integer the JSON number r holds, from min to
// maxSeq, or says what is wrong with it. As in JSON Schema, a number
// whose fraction is zero (17.0, 1.7e1) is an integer.
func wholeNumber(name string, r json.RawMessage, min uint64) (uint64, string) {
	n, err := strconv.ParseUint(string(r), 10, 64)
	ok := err == nil
	if !ok {
		var whole, neg bool
		n, whole, neg, err = parseJSONInteger(string(r))
		ok = whole && err == nil && (!neg || n == 0)
	}
	if !ok || n < min || n > maxSeq {
		return 0, fmt.Sprintf("%s must be a whole number from %d to %d", name, min, uint64(maxSeq))
	}
	return n, ""
}

// errRange says an integer does not fit in 64 bits.
var errRange = errors.New("out of range")

// parseJSONInteger parses a JSON number (or any other JSON value, which
// is not one). whole says whether it is an integer; neg whether it has a
// minus sign; err is errRange for an integer beyond 64 bits.
func parseJSONInteger(s string) (n uint64, whole, neg bool, err error) {
	if s == "" {
		return 0, false, false, nil
	}
	if s[0] == '-' {
		neg, s = true, s[1:]
	}
	mant, exp, _ := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := intPart + frac
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, false, neg, nil
	}
	point := len(intPart) // how many of digits come before the point
	if exp != "" {
		// Far beyond 20 digits either way, every exponent means the same:
		// clamped, it cannot overflow point.
		e, perr := strconv.Atoi(exp)
		if perr != nil {
			e = 1000
			if strings.HasPrefix(exp, "-") {
				e = -1000
			}
		}
		point += min(max(e, -1000), 1000)
	}
	trimmed := strings.TrimLeft(digits, "0")
	point -= len(digits) - len(trimmed)
	digits = trimmed
	if point < len(digits) && strings.Trim(digits[max(point, 0):], "0") != "" {
		return 0, false, neg, nil // a non-zero fraction
	}
	if point <= 0 || digits == "" {
		return 0, true, neg, nil
	}
	if point > 20 {
		return 0, true, neg, errRange
	}
	if point > len(digits) {
		digits += strings.Repeat("0", point-len(digits))
	}
	n, err = strconv.ParseUint(digits[:point], 10, 64)
	if err != nil {
		return 0, true, neg, errRange
	}
	return n, true, neg, nil
}

// quoted quotes a client's string for a message, cut to 64 bytes.
func quoted(s string) string {
	if len(s) > 64 {
		s = strings.ToValidUTF8(s[:64], "") + "…"
	}
	return strconv.Quote(s)
}
