package history

import (
	"errors"
	"fmt"
)

// ErrInvalidQuery is returned by Page and Conversations for a query they
// cannot answer, such as a limit below 1.
var ErrInvalidQuery = errors.New("invalid query")

// Validate reports whether q can be answered; the error wraps
// ErrInvalidQuery.
func (q PageQuery) Validate() error {
	if q.Limit < 1 {
		return fmt.Errorf("%w: limit %d, want at least 1", ErrInvalidQuery, q.Limit)
	}
	return nil
}

// ValidateLimit reports whether limit is a valid limit of Conversations;
// the error wraps ErrInvalidQuery.
func ValidateLimit(limit int) error {
	if limit < 1 {
		return fmt.Errorf("%w: limit %d, want at least 1", ErrInvalidQuery, limit)
	}
	return nil
}
