package app

import (
	"log/slog"

	"golang.org/x/sys/unix"
)

// openFilesLow is the open-files limit below which a node warns as it
// starts: every socket takes a file descriptor, and on the embedded
// default the broker's connections and the stores' files take about 300
// more, so such a node turns connections away long before its CPU or
// memory is used.
const openFilesLow = 4096

// checkOpenFiles returns the process's open-files limit as Go left it
// (it raises the soft limit to the hard one as a program starts), and
// warns when it is below openFilesLow; 0 if it cannot be read.
func checkOpenFiles(log *slog.Logger) uint64 {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		log.Warn("reading the open files limit", "err", err)
		return 0
	}
	if l.Cur < openFilesLow {
		log.Warn("the open files limit is low: every socket takes one, and the embedded broker and stores about 300; raise it (ulimit -n, or LimitNOFILE= in a systemd unit)",
			"open_files_limit", l.Cur, "want_at_least", openFilesLow)
	}
	return l.Cur
}
