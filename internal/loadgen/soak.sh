#!/usr/bin/env bash
# A soak run (BENCHMARKS.md, "Soak"): one `parley run` under churn for
# SOAK (default 30m): `parley bench` runs one after another, each with
# fresh users, fresh groups and fresh sockets (connected, sending, closed),
# while the server's RSS, Go heap and goroutines are sampled from /metrics
# every 5 s into OUT_DIR/samples.csv; OUT_DIR/rss.png plots them when
# gnuplot is installed (Debian's gnuplot-nox).
#
#   internal/loadgen/soak.sh [OUT_DIR]        (default /tmp/parley-soak)
#
# PARLEY_CONVERSATION_CACHE defaults to 1000 here, below the conversations
# a soak creates, so that the bounded caches are exercised; BENCH_FLAGS
# replaces each bench run's shape and rate.
#
# The embedded broker (kfake) runs in the same process and keeps an index
# entry per record batch in memory, so the server's heap grows with the
# log even when Parley's roles do not. To tell them apart the script takes
# a heap profile every minute (PARLEY_PPROF_ADDR, default 127.0.0.1:6060)
# and writes OUT_DIR/heap.csv: the heap in use (as sampled by the
# profiler), the part allocated by the embedded broker, and the rest.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mkdir -p "${1:-/tmp/parley-soak}" && cd "${1:-/tmp/parley-soak}" && pwd)
addr=127.0.0.1:8080
soak=${SOAK:-30m}
bench_flags=${BENCH_FLAGS:--shape group -groups 50 -group-size 10 -rate 100 -duration 20s -drain 5s}
export PARLEY_CONVERSATION_CACHE=${PARLEY_CONVERSATION_CACHE:-1000}
export PARLEY_PPROF_ADDR=${PARLEY_PPROF_ADDR:-127.0.0.1:6060}
go build -o "$out/parley" .
rm -rf "$out/data"
"$out/parley" run -data-dir "$out/data" -http-addr "$addr" -log-level warn 2>"$out/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
until curl -sf "$addr/readyz" >/dev/null; do
	kill -0 "$server"
	sleep 0.2
done
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, $(date -u +%FT%TZ), soak $soak, bench $bench_flags, PARLEY_CONVERSATION_CACHE=$PARLEY_CONVERSATION_CACHE" | tee "$out/summary.txt"

# seconds since start, RSS MiB, heap in use MiB, goroutines, bench runs done
echo "seconds,rss_mib,heap_inuse_mib,goroutines,runs" >"$out/samples.csv"
runs_file="$out/runs"
echo 0 >"$runs_file"
start=$(date +%s)
sample() {
	local i=0
	while kill -0 "$server" 2>/dev/null; do
		if [ $((i % 12)) -eq 0 ]; then
			curl -sf "$PARLEY_PPROF_ADDR/debug/pprof/heap" -o "$out/heap-$(printf %05d $(($(date +%s) - start))).pb.gz" || true
		fi
		i=$((i + 1))
		curl -sf "$addr/metrics" | awk -v t="$(($(date +%s) - start))" -v runs="$(cat "$runs_file")" '
			$1 == "process_resident_memory_bytes" { rss = $2 }
			$1 == "go_memstats_heap_inuse_bytes" { heap = $2 }
			$1 == "go_goroutines" { g = $2 }
			END { if (rss) printf "%d,%.1f,%.1f,%d,%d\n", t, rss / 1048576, heap / 1048576, g, runs }' >>"$out/samples.csv" || true
		sleep 5
	done
}
sample &
sampler=$!

case $soak in
*m) seconds=$((${soak%m} * 60)) ;;
*s) seconds=${soak%s} ;;
*) seconds=$soak ;;
esac
end=$((start + seconds))
n=0
while [ "$(date +%s)" -lt "$end" ]; do
	n=$((n + 1))
	# shellcheck disable=SC2086 # bench_flags is a list of flags
	"$out/parley" bench -target "http://$addr" -json "$out/run-$n.json" -log-level warn $bench_flags >"$out/run-$n.txt" 2>&1 || echo "bench run $n failed (see run-$n.txt)" | tee -a "$out/summary.txt"
	echo "$n" >"$runs_file"
done
sleep 6 # one more sample after the last run
kill "$sampler" 2>/dev/null || true
jq -s '{runs: length, sent: (map(.phases[0].sent) | add), acked: (map(.phases[0].acked) | add),
	deliveries: (map(.phases[0].deliveries) | add), expected: (map(.phases[0].expected_deliveries) | add),
	missing: (map(.phases[0].missing) | add), duplicates: (map(.phases[0].duplicate_deliveries) | add),
	gaps: (map(.phases[0].gaps) | add), errors: ([.[].phases[0].errors // {} | to_entries[].value] | add // 0)}' "$out"/run-*.json | tee -a "$out/summary.txt"
{
	echo "first and last samples (seconds, RSS MiB, heap MiB, goroutines, runs):"
	sed -n 2p "$out/samples.csv"
	tail -1 "$out/samples.csv"
} | tee -a "$out/summary.txt"
# minutes, heap in use MiB, of it the embedded broker's, the rest
echo "seconds,heap_mib,broker_mib,roles_mib" >"$out/heap.csv"
for f in "$out"/heap-*.pb.gz; do
	t=$(basename "$f" .pb.gz)
	t=$((10#${t#heap-}))
	# "Showing nodes accounting for FOCUSED, P% of TOTAL total" (FOCUSED
	# is a bare 0 when the broker holds nothing)
	read -r broker all < <(go tool pprof -sample_index=inuse_space -unit=B -top -nodecount=1000000 -focus='twmb/franz-go' "$f" 2>/dev/null |
		awk '/accounting for/ { gsub(/[B,]/, ""); print $5, $8 }') || true
	awk -v t="$t" -v a="$all" -v b="$broker" 'BEGIN { printf "%d,%.1f,%.1f,%.1f\n", t, a / 1048576, b / 1048576, (a - b) / 1048576 }' >>"$out/heap.csv"
done
{
	echo "heap profiles, first and last (seconds, heap MiB, broker MiB, roles MiB):"
	sed -n 2p "$out/heap.csv"
	tail -1 "$out/heap.csv"
} | tee -a "$out/summary.txt"
if command -v gnuplot >/dev/null; then
	gnuplot <<-PLOT
		set terminal pngcairo size 900,420 font ",10"
		set output "$out/rss.png"
		set datafile separator ","
		set key top left
		set xlabel "minutes"
		set ylabel "MiB"
		set y2label "goroutines"
		set y2tics
		set ytics nomirror
		set yrange [0:*]
		set y2range [0:*]
		set title "parley run under churn: RSS, Go heap and goroutines"
		plot "$out/samples.csv" every ::1 using (\$1/60):2 with lines lw 2 title "RSS", \
		     "" every ::1 using (\$1/60):3 with lines title "Go heap in use", \
		     "" every ::1 using (\$1/60):4 axes x1y2 with lines title "goroutines (right)", \
		     "$out/heap.csv" every ::1 using (\$1/60):4 with linespoints title "Go heap of Parley's roles (profiles)", \
		     "$out/heap.csv" every ::1 using (\$1/60):3 with linespoints title "Go heap of the embedded broker (profiles)"
	PLOT
	echo "plot: $out/rss.png"
fi
