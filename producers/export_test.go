package producers

import (
	"context"
	"time"
)

// SetClock sets the clock the receipt writer notes and dates markers by.
func (r *ReceiptWriter) SetClock(now func() time.Time) { r.now = now }

// FlushDue appends the delivered markers due, as Run does on each tick.
func (r *ReceiptWriter) FlushDue(ctx context.Context) error { return r.flushDue(ctx) }
