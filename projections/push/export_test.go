package push

// DueIndexLen returns how many keys the due index holds, for tests that
// check it keeps step with the pending and clearing entries.
func (p *Push) DueIndexLen() (int, error) {
	n := 0
	err := scan(p.store.db, prefixDue, func(_, _ []byte) (bool, error) { n++; return true, nil })
	return n, err
}
