// How many Go processors a server process runs with.

package app

// Procs returns the GOMAXPROCS a server process (parley run and the
// processes of single roles) sets when the environment does not set
// GOMAXPROCS itself, given cpus, the runtime's default (the CPUs the
// process may use, container limits included); ok is false when the
// environment sets it, and the operator's value stands.
//
// Go's scheduler gives a goroutine up to 10 ms before it preempts it and
// has no priorities, so with as many processors as CPUs a latency-bound
// goroutine (a socket's reader, the decider, a broker connection) waits
// behind CPU-bound ones — the search index building a segment or merging,
// a store compacting, the collector marking — on every hop of a message;
// and when another process takes a CPU, the kernel parks a thread that
// holds a processor, and what is queued on it waits with it. With four
// processors per CPU the kernel, which wakes a thread that was waiting in
// favour of one that has been running, interleaves them in a fraction of
// that. On 2 CPUs at 2,000 messages a second this took the send→deliver
// p99 from 75–91 ms to 42–47 ms idle and from 334–358 ms to 62–63 ms with
// one CPU taken by another process, for ~0.15 cores more (BENCHMARKS.md,
// "More processors than CPUs"). Beyond 32 it stays at cpus: a machine that
// large is rarely short of CPU for the few latency-bound goroutines.
func Procs(getenv func(string) string, cpus int) (n int, ok bool) {
	if getenv("GOMAXPROCS") != "" {
		return 0, false
	}
	return max(cpus, min(4*cpus, 32)), true
}
