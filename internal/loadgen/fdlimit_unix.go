//go:build unix

package loadgen

import (
	"fmt"
	"syscall"
)

// checkFDLimit refuses a run that cannot open its sockets. Go raises the
// soft limit to the hard one at start-up, so only the hard limit (ulimit
// -Hn) can be too low.
func checkFDLimit(sockets int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil // unknown: let the dials report it
	}
	need := uint64(sockets) + 256
	if lim.Cur < need {
		return fmt.Errorf("%d sockets need about %d file descriptors but the limit is %d: raise it (ulimit -n %d)", sockets, need, lim.Cur, need)
	}
	return nil
}
