// The projection of chat.events and chat.receipts: membership, read
// markers, and the notifications due.

package push

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/schemas"
)

// Item is one decoded record the projection applies: an event of
// chat.events or a read marker of chat.receipts (Value nil: a record the
// projection has nothing to do with).
type Item struct {
	Type  string
	Time  time.Time
	Value any
}

// Projection feeds the store from the consumer group GroupPush over
// chat.events and chat.receipts.
type Projection struct {
	p *Push
}

var (
	_ consumers.Projection[Item] = Projection{}
	_ consumers.Prober           = Projection{}
	_ consumers.Syncer           = Projection{} // Apply does not wait for the disk
)

// relevant reports whether the projection applies records of type typ.
func relevant(typ string) bool {
	switch typ {
	case schemas.TypeConversationCreated, schemas.TypeConversationCreatedV2, schemas.TypeMembersAdded, schemas.TypeMemberLeft,
		schemas.TypeMemberRemoved, schemas.TypeMLSCommitted, schemas.TypeMLSMessageSent, schemas.TypeReceipt, schemas.TypeUserErased:
		return true
	}
	return schemas.IsMessage(typ) || isEvent(typ)
}

// isEvent: every event advances its conversation's last seq (for the
// badge), whatever its type.
func isEvent(typ string) bool {
	switch typ {
	case schemas.TypeRolesChanged, schemas.TypeRenamed, schemas.TypeArchived, schemas.TypeBlocked, schemas.TypeMessageEdited,
		schemas.TypeMessageDeleted, schemas.TypeReactionAdded, schemas.TypeReactionRemoved, schemas.TypeThumbnailAdded,
		schemas.TypeMLSProposed:
		return true
	}
	return false
}

// Decode decodes the records the projection applies; others become an
// empty Item. A record that breaks its schema is an error (dead-lettered).
func (Projection) Decode(r consumers.Record) (Item, error) {
	if !relevant(r.Attrs.Type) {
		return Item{}, nil
	}
	v, err := schemas.Decode(r.Attrs.Type, r.Message.Value)
	if err != nil {
		return Item{}, err
	}
	return Item{Type: r.Attrs.Type, Time: r.Attrs.Time, Value: v}, nil
}

// Probe writes and deletes a key of its own.
func (pr Projection) Probe(context.Context) error {
	if err := pr.p.store.db.Set([]byte(keyProbe), []byte{1}, pebble.Sync); err != nil {
		return err
	}
	return pr.p.store.db.Delete([]byte(keyProbe), pebble.Sync)
}

// Sync makes what Apply wrote durable: the consumer group calls it
// before it commits (consumers.Syncer).
func (pr Projection) Sync(context.Context) error { return pr.p.store.sync() }

// Apply applies a batch in one Pebble batch, durable once Sync returns.
// It is idempotent: a message at or below what is pending or was sent,
// and a marker at or below the one recorded, change nothing.
func (pr Projection) Apply(ctx context.Context, batch []Item) error {
	p := pr.p
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.store.db.NewIndexedBatch()
	defer b.Close()
	now := p.cfg.Now()
	due, erased := false, false
	for _, it := range batch {
		var err error
		var d bool
		switch e := it.Value.(type) {
		case nil:
		case *schemas.UserErasedV1:
			var blanked bool
			blanked, err = applyErasure(b, e)
			erased = erased || blanked
		case *schemas.ReceiptV1:
			d, err = p.applyReceipt(b, e, now)
		default:
			d, err = p.applyEvent(b, it, now)
		}
		if err != nil {
			return err
		}
		due = due || d
	}
	if err := b.Commit(pebble.NoSync); err != nil { // durable at Sync
		return fmt.Errorf("writing the push store: %w", err)
	}
	if erased {
		// The previews blanked are still in the memtable's log and in
		// older tables: flush, then compact the pending entries.
		if err := p.store.db.Flush(); err != nil {
			return fmt.Errorf("erasing from the push store: %w", err)
		}
		end := []byte(prefixPending)
		end[len(end)-1]++
		if err := p.store.db.Compact(ctx, []byte(prefixPending), end, true); err != nil {
			return fmt.Errorf("erasing from the push store: %w", err)
		}
	}
	if due {
		p.wake()
	}
	return nil
}

// applyEvent folds an event of chat.events; for a message, it marks the
// other members' devices due a notification. It reports whether it did.
func (p *Push) applyEvent(b *pebble.Batch, it Item, now time.Time) (bool, error) {
	v := it.Value
	var c convState
	conv, seq := position(v)
	if conv == "" {
		return false, nil
	}
	if _, err := getJSON(b, key(prefixConv, conv), &c); err != nil {
		return false, err
	}
	if seq <= c.LastSeq && c.LastSeq != 0 || seq == 0 && len(c.Members) > 0 {
		return false, nil // applied before
	}
	c.LastSeq = max(c.LastSeq, seq)
	setMember := func(user string, in bool) error {
		i, found := slices.BinarySearch(c.Members, user)
		switch {
		case in && !found:
			c.Members = slices.Insert(c.Members, i, user)
			return b.Set(key(prefixMember, user, conv), nil, nil)
		case !in && found:
			c.Members = slices.Delete(c.Members, i, i+1)
			return b.Delete(key(prefixMember, user, conv), nil)
		}
		return nil
	}
	var err error
	due := false
	switch e := v.(type) {
	case *schemas.ConversationCreatedV1:
		for _, m := range e.Members {
			err = errorsJoin(err, setMember(m.UserID, true))
		}
	case *schemas.ConversationCreatedV2:
		c.Encrypted = e.Encrypted
		for _, m := range e.Members {
			err = errorsJoin(err, setMember(m.UserID, true))
		}
	case *schemas.MLSCommittedV1:
		for _, m := range e.MembersAdded {
			err = errorsJoin(err, setMember(m.UserID, true))
		}
		for _, u := range e.MembersRemoved {
			err = errorsJoin(err, setMember(u, false))
		}
	case *schemas.MembersAddedV1:
		for _, m := range e.Members {
			err = errorsJoin(err, setMember(m.UserID, true))
		}
	case *schemas.MemberLeftV1:
		err = setMember(e.UserID, false)
	case *schemas.MemberRemovedV1:
		err = setMember(e.MemberID, false)
	default:
		if m, ok := pushMessage(v); ok {
			// Unread counts messages, as the inbox does; sending one marks
			// the conversation read up to it for its sender.
			err = b.Set(messageKey(conv, seq), nil, nil)
			if err == nil {
				due, err = p.notifyMembers(b, c, m, it.Time, now)
			}
			if err == nil {
				var cleared bool
				cleared, err = p.markRead(b, m.SenderID, conv, seq, it.Time, now)
				due = due || cleared
			}
		}
	}
	if err != nil {
		return false, err
	}
	return due, setJSON(b, key(prefixConv, conv), c)
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// position returns the conversation and seq of v, a decoded record the
// projection applies (a read marker's seq is the seq read); "" for any
// other.
func position(v any) (string, uint64) {
	if m, ok := pushMessage(v); ok {
		return m.ConversationID, m.Seq
	}
	switch e := v.(type) {
	case *schemas.ReceiptV1:
		return e.ConversationID, e.Seq
	case *schemas.ConversationCreatedV1:
		return e.ConversationID, e.Seq
	case *schemas.ConversationCreatedV2:
		return e.ConversationID, e.Seq
	case *schemas.MLSCommittedV1:
		return e.ConversationID, e.Seq
	case *schemas.MembersAddedV1:
		return e.ConversationID, e.Seq
	case *schemas.MemberLeftV1:
		return e.ConversationID, e.Seq
	case *schemas.MemberRemovedV1:
		return e.ConversationID, e.Seq
	case *schemas.RolesChangedV1:
		return e.ConversationID, e.Seq
	case *schemas.RenamedV1:
		return e.ConversationID, e.Seq
	case *schemas.ArchivedV1:
		return e.ConversationID, e.Seq
	case *schemas.BlockedV1:
		return e.ConversationID, e.Seq
	case *schemas.MessageEditedV1:
		return e.ConversationID, e.Seq
	case *schemas.MessageDeletedV1:
		return e.ConversationID, e.Seq
	case *schemas.ReactionV1:
		return e.ConversationID, e.Seq
	case *schemas.ThumbnailAddedV1:
		return e.ConversationID, e.Seq
	case *schemas.MLSProposedV1:
		return e.ConversationID, e.Seq
	}
	return "", 0
}

// pushMessage returns the message of v, a version of chat.message.sent or
// an end-to-end encrypted message, whose ciphertext the server cannot
// read: it notifies with no body.
func pushMessage(v any) (*schemas.Message, bool) {
	if m, ok := v.(*schemas.MLSMessageSentV1); ok {
		return &schemas.Message{ConversationID: m.ConversationID, Seq: m.Seq, SenderID: m.SenderID, CommandID: m.CommandID, SentAt: m.SentAt}, true
	}
	return schemas.AsMessage(v)
}

// notifyMembers marks every registered device of every member but the
// sender due a notification of m, coalesced with what is pending for it.
func (p *Push) notifyMembers(b *pebble.Batch, c convState, m *schemas.Message, at, now time.Time) (bool, error) {
	if now.Sub(at) > p.cfg.MaxAge {
		return false, nil // too old to be worth a notification (a rebuild)
	}
	preview := ""
	if !endToEndEncrypted(c) && p.cfg.PreviewRunes > 0 {
		preview = Preview(m.Body, p.cfg.PreviewRunes)
	}
	due := false
	for _, user := range c.Members {
		if user == m.SenderID {
			continue
		}
		devices := p.settings.Devices(user)
		if len(devices) == 0 {
			continue // nothing to notify: no store read for it
		}
		read, err := getUint(b, key(prefixRead, user, m.ConversationID))
		if err != nil {
			return false, err
		}
		if m.Seq <= read {
			continue
		}
		mentioned := Mentions(m.Body, user)
		for _, device := range devices {
			var s sent
			if _, err := getJSON(b, key(prefixSent, user, device, m.ConversationID), &s); err != nil {
				return false, err
			}
			if m.Seq <= s.Seq {
				continue
			}
			var pd pending
			found, err := getJSON(b, key(prefixPending, user, device, m.ConversationID), &pd)
			if err != nil {
				return false, err
			}
			if found && m.Seq <= pd.LastSeq {
				continue
			}
			var old *pending
			if found {
				o := pd
				old = &o
			}
			if !found {
				pd.Due = now
				if next := s.At.Add(p.cfg.Window); next.After(now) {
					pd.Due = next
				}
			}
			pd.LastSeq, pd.Count, pd.SenderID, pd.Preview, pd.EventTime = m.Seq, pd.Count+1, m.SenderID, preview, at
			pd.Mentioned = pd.Mentioned || mentioned
			if err := putDue(b, prefixPending, user, device, m.ConversationID, old, pd); err != nil {
				return false, err
			}
			due = due || !pd.Due.After(now)
		}
	}
	return due, nil
}

// applyReceipt records a read marker (see markRead).
func (p *Push) applyReceipt(b *pebble.Batch, r *schemas.ReceiptV1, now time.Time) (bool, error) {
	if r.Kind != schemas.ReceiptRead {
		return false, nil
	}
	return p.markRead(b, r.UserID, r.ConversationID, r.Seq, r.At, now)
}

// markRead records that user has read conv up to seq (at at): what the
// user has read needs no notification any more, and the user's devices
// notified of it get a clear. It reports whether a clear is due.
func (p *Push) markRead(b *pebble.Batch, user, conv string, seq uint64, at, now time.Time) (bool, error) {
	r := schemas.ReceiptV1{UserID: user, ConversationID: conv, Seq: seq, At: at}
	rk := key(prefixRead, r.UserID, r.ConversationID)
	read, err := getUint(b, rk)
	if err != nil {
		return false, err
	}
	if r.Seq <= read {
		return false, nil
	}
	if err := b.Set(rk, binary.BigEndian.AppendUint64(nil, r.Seq), nil); err != nil {
		return false, err
	}
	fresh := now.Sub(r.At) <= p.cfg.MaxAge
	due := false
	for _, device := range p.settings.Devices(r.UserID) {
		var pd pending
		found, err := getJSON(b, key(prefixPending, r.UserID, device, r.ConversationID), &pd)
		if err != nil {
			return false, err
		}
		if found {
			if pd.LastSeq <= r.Seq {
				err = deleteDue(b, prefixPending, r.UserID, device, r.ConversationID, pd)
			} else {
				old := pd
				pd.Count = min(pd.Count, int(pd.LastSeq-r.Seq))
				err = putDue(b, prefixPending, r.UserID, device, r.ConversationID, &old, pd)
			}
			if err != nil {
				return false, err
			}
		}
		sk := key(prefixSent, r.UserID, device, r.ConversationID)
		var s sent
		found, err = getJSON(b, sk, &s)
		if err != nil {
			return false, err
		}
		if !found || s.Cleared || s.Seq > r.Seq || !fresh {
			continue
		}
		s.Cleared = true
		if err := setJSON(b, sk, s); err != nil {
			return false, err
		}
		var prev clearing
		had, err := getJSON(b, key(prefixClear, r.UserID, device, r.ConversationID), &prev)
		if err != nil {
			return false, err
		}
		var old *clearing
		if had {
			old = &prev
		}
		if err := putDue(b, prefixClear, r.UserID, device, r.ConversationID, old, clearing{ReadSeq: r.Seq, Due: now}); err != nil {
			return false, err
		}
		due = true
	}
	return due, nil
}

// applyErasure blanks the preview of every pending notification whose
// newest message was sent by the erased user (chat.user.erased.v1 names
// them by schemas.ErasureRef) at or before the erasure: the notification
// still goes, with no body, as for an end-to-end encrypted conversation.
// Notifications sent already are out of reach. It reports whether it
// blanked one.
func applyErasure(b *pebble.Batch, e *schemas.UserErasedV1) (bool, error) {
	type entry struct {
		k []byte
		v pending
	}
	var blank []entry
	err := scan(b, prefixPending, func(k, v []byte) (bool, error) {
		var pd pending
		if err := json.Unmarshal(v, &pd); err != nil {
			return false, fmt.Errorf("erasing: a pending notification: %w", err)
		}
		if pd.Preview != "" && !pd.EventTime.After(e.ErasedAt) && schemas.ErasureRef(pd.SenderID) == e.SubjectRef {
			pd.Preview = ""
			blank = append(blank, entry{bytes.Clone(k), pd})
		}
		return true, nil
	})
	if err != nil {
		return false, err
	}
	for _, en := range blank {
		if err := setJSON(b, en.k, en.v); err != nil {
			return false, err
		}
	}
	return len(blank) > 0, nil
}

// Preview is the start of body, at most n runes, cut at a word boundary
// when there is one in the second half, with "…" when cut.
func Preview(body string, n int) string {
	body = strings.Join(strings.Fields(body), " ")
	if utf8.RuneCountInString(body) <= n {
		return body
	}
	all := []rune(body)
	cut := string(all[:n])
	if all[n] == ' ' {
		return cut + "…" // the cut falls between words
	}
	if i := strings.LastIndexByte(cut, ' '); i > len(cut)/2 {
		return cut[:i] + "…"
	}
	return cut + "…"
}

// Mentions reports whether body mentions user: "@user" not followed by
// a character a user id may contain.
func Mentions(body, user string) bool {
	at := "@" + user
	for i := 0; ; {
		j := strings.Index(body[i:], at)
		if j < 0 {
			return false
		}
		end := i + j + len(at)
		if end == len(body) || !schemas.ValidUserID(body[end:end+1]) {
			return true
		}
		i = end
	}
}

// endToEndEncrypted reports whether the messages of conversation c are
// end-to-end encrypted (created with chat.conversation.created.v2's
// encrypted flag): then no text of theirs leaves the server in a
// notification, which carries the conversation, seq, sender and count
// only.
func endToEndEncrypted(c convState) bool { return c.Encrypted }
