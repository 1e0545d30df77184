#!/usr/bin/env bash
# A soak run (BENCHMARKS.md, "Soak"): Parley under churn for SOAK (default
# 30m): `parley bench` runs one after another, each with fresh users,
# fresh groups and fresh sockets (connected, sending, closed).
#
# Two processes: `parley broker` (the embedded broker alone) and `parley
# run -kafka-brokers` with every role, so that the memory of Parley's
# roles is measured apart from the embedded broker's, whose index grows
# with the log by design (README, "What Parley does not guarantee"); with
# a Kafka cluster the roles are all there is. Every 5 s the RSS, Go heap
# and goroutines of both are sampled from their /metrics, and the roles'
# RSS split into anonymous and file-backed memory from /proc, into
# OUT_DIR/samples.csv, and every 5 minutes the roles' heap profile is
# saved (OUT_DIR/heap-SECONDS.pb.gz: compare two with `go tool pprof
# -base`); OUT_DIR/rss.png plots the samples when gnuplot is installed
# (Debian's gnuplot-nox).
#
#   internal/loadgen/soak.sh [OUT_DIR]        (default /tmp/parley-soak)
#
# PARLEY_CONVERSATION_CACHE and PARLEY_PRESENCE_CACHE default to 1000
# here, below the conversations and users a soak creates, so that the
# bounded caches are exercised; BENCH_FLAGS replaces each bench run's
# shape and rate.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mkdir -p "${1:-/tmp/parley-soak}" && cd "${1:-/tmp/parley-soak}" && pwd)
addr=127.0.0.1:8080
broker_addr=127.0.0.1:8081
kafka=127.0.0.1:9092
pprof=127.0.0.1:6060
soak=${SOAK:-30m}
bench_flags=${BENCH_FLAGS:--shape group -groups 50 -group-size 10 -rate 100 -duration 20s -drain 5s}
export PARLEY_CONVERSATION_CACHE=${PARLEY_CONVERSATION_CACHE:-1000}
export PARLEY_PRESENCE_CACHE=${PARLEY_PRESENCE_CACHE:-1000}
# Roles apart from the broker need a secret; the bench signs with it too.
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
go build -o "$out/parley" .
rm -rf "$out/data"
"$out/parley" broker -data-dir "$out/data/broker" -http-addr "$broker_addr" -kafka-listen "$kafka" -log-level warn 2>"$out/broker.log" &
broker=$!
trap 'kill $broker 2>/dev/null || true' EXIT
until curl -sf "$broker_addr/readyz" >/dev/null; do
	kill -0 "$broker"
	sleep 0.2
done
"$out/parley" run -data-dir "$out/data/roles" -http-addr "$addr" -kafka-brokers "$kafka" -jwt-secret "$secret" \
	-pprof-addr "$pprof" -log-level warn 2>"$out/server.log" &
server=$!
trap 'kill $server $broker 2>/dev/null || true' EXIT
until curl -sf "$addr/readyz" >/dev/null; do
	kill -0 "$server"
	sleep 0.2
done
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, $(date -u +%FT%TZ), soak $soak, bench $bench_flags, PARLEY_CONVERSATION_CACHE=$PARLEY_CONVERSATION_CACHE, PARLEY_PRESENCE_CACHE=$PARLEY_PRESENCE_CACHE" | tee "$out/summary.txt"

# metrics URL → "RSS MiB,heap in use MiB,goroutines"
metrics() {
	curl -sf "$1/metrics" | awk '
		$1 == "process_resident_memory_bytes" { rss = $2 }
		$1 == "go_memstats_heap_inuse_bytes" { heap = $2 }
		$1 == "go_goroutines" { g = $2 }
		END { if (rss) printf "%.1f,%.1f,%d", rss / 1048576, heap / 1048576, g }'
}
# pid → "anonymous RSS MiB,file-backed RSS MiB" (mapped files such as the
# search index's segments count in RSS but are the kernel's to reclaim)
rss_split() {
	awk '$1 == "RssAnon:" { a = $2 } $1 == "RssFile:" { f = $2 } END { printf "%.1f,%.1f", a / 1024, f / 1024 }' "/proc/$1/status"
}
echo "seconds,rss_mib,heap_inuse_mib,goroutines,broker_rss_mib,broker_heap_inuse_mib,broker_goroutines,runs,rss_anon_mib,rss_file_mib" >"$out/samples.csv"
runs_file="$out/runs"
echo 0 >"$runs_file"
start=$(date +%s)
sample() {
	local i=0 roles brk t
	while kill -0 "$server" 2>/dev/null; do
		t=$(($(date +%s) - start))
		if [ $((i % 60)) -eq 0 ]; then
			curl -sf "$pprof/debug/pprof/heap" -o "$out/heap-$(printf %05d "$t").pb.gz" || true
		fi
		i=$((i + 1))
		roles=$(metrics "$addr" || true)
		brk=$(metrics "$broker_addr" || true)
		if [ -n "$roles" ] && [ -n "$brk" ]; then
			echo "$t,$roles,$brk,$(cat "$runs_file"),$(rss_split "$server")" >>"$out/samples.csv"
		fi
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
	"$out/parley" bench -target "http://$addr" -jwt-secret "$secret" -json "$out/run-$n.json" -log-level warn $bench_flags >"$out/run-$n.txt" 2>&1 || echo "bench run $n failed (see run-$n.txt)" | tee -a "$out/summary.txt"
	echo "$n" >"$runs_file"
done
sleep 6 # one more sample after the last run
curl -sf "$pprof/debug/pprof/heap" -o "$out/heap-$(printf %05d $(($(date +%s) - start))).pb.gz" || true
kill "$sampler" 2>/dev/null || true
jq -s '{runs: length, sent: (map(.phases[0].sent) | add), acked: (map(.phases[0].acked) | add),
	deliveries: (map(.phases[0].deliveries) | add), expected: (map(.phases[0].expected_deliveries) | add),
	missing: (map(.phases[0].missing) | add), duplicates: (map(.phases[0].duplicate_deliveries) | add),
	gaps: (map(.phases[0].gaps) | add), errors: ([.[].phases[0].errors // {} | to_entries[].value] | add // 0)}' "$out"/run-*.json | tee -a "$out/summary.txt"
{
	echo "first and last samples (seconds, roles: RSS MiB, heap MiB, goroutines; broker: RSS MiB, heap MiB, goroutines; runs):"
	sed -n 2p "$out/samples.csv"
	tail -1 "$out/samples.csv"
} | tee -a "$out/summary.txt"
if command -v gnuplot >/dev/null; then
	gnuplot <<-PLOT
		set terminal pngcairo size 900,440 font ",10"
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
		set title "Parley under churn: the roles (parley run -kafka-brokers) and the embedded broker (parley broker)"
		plot "$out/samples.csv" every ::1 using (\$1/60):2 with lines lw 2 title "roles: RSS", \
		     "" every ::1 using (\$1/60):9 with lines title "roles: anonymous RSS", \
		     "" every ::1 using (\$1/60):3 with lines title "roles: Go heap in use", \
		     "" every ::1 using (\$1/60):4 axes x1y2 with lines title "roles: goroutines (right)", \
		     "" every ::1 using (\$1/60):5 with lines dt 2 title "broker: RSS", \
		     "" every ::1 using (\$1/60):6 with lines dt 3 title "broker: Go heap in use"
	PLOT
	echo "plot: $out/rss.png"
fi
