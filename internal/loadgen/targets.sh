#!/usr/bin/env bash
# The delivery targets (BENCHMARKS.md, "Targets"): on a fresh `parley run`
# each, 1,000 sockets in groups of 10 at 100 and at 500 msg/s and direct
# pairs at 2,000 msg/s — first on an idle machine, then with one core taken
# by a CPU-bound process (stress-ng --cpu 1, started and stopped here).
#
#   internal/loadgen/targets.sh [OUT_DIR]      (default /tmp/parley-targets)
#
# DURATION (default 30s) is how long each run sends; ONLY (a regular
# expression) picks runs by name; SERVER_FLAGS are added to `parley run`
# (e.g. "-roles gateway,decider,history -routing broadcast" to leave the
# search projection out).
#
# Needs curl and stress-ng (Debian packages). Each run writes NAME.txt (the
# report), NAME.json and NAME.server.log to OUT_DIR; the last lines print a
# summary. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-/tmp/parley-targets}
addr=127.0.0.1:8080
duration=${DURATION:-30s}
mkdir -p "$out"
go build -o "$out/parley" .
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, $(date -u +%FT%TZ)" | tee "$out/summary.txt"

run() { # NAME CONTENDED BENCH-FLAGS...
	local name=$1 contended=$2
	shift 2
	[[ "$name" =~ ${ONLY:-.} ]] || return 0
	rm -rf "$out/data"
	# shellcheck disable=SC2086 # SERVER_FLAGS is a list of flags
	"$out/parley" run -data-dir "$out/data" -http-addr "$addr" -log-level warn ${SERVER_FLAGS:-} 2>"$out/$name.server.log" &
	local server=$!
	until curl -sf "$addr/readyz" >/dev/null; do
		kill -0 "$server" # the server died: stop here
		sleep 0.2
	done
	local burner=""
	if [ "$contended" = yes ]; then
		stress-ng --cpu 1 --quiet &
		burner=$!
	fi
	"$out/parley" bench -target "http://$addr" -pid "$server" -json "$out/$name.json" -log-level warn "$@" >"$out/$name.txt" || true
	if [ -n "$burner" ]; then
		kill "$burner"
		wait "$burner" || true
	fi
	kill "$server"
	wait "$server" || true
	echo "== $name ($*)" | tee -a "$out/summary.txt"
	tee -a "$out/summary.txt" <"$out/$name.txt"
}

for mode in idle contended; do
	contended=no
	[ "$mode" = contended ] && contended=yes
	run "groups-100-$mode" "$contended" -shape group -groups 100 -group-size 10 -rate 100 -duration "$duration"
	run "groups-500-$mode" "$contended" -shape group -groups 100 -group-size 10 -rate 500 -duration "$duration"
	run "direct-2000-$mode" "$contended" -shape direct -sockets 200 -rate 2000 -duration "$duration"
done
