#!/usr/bin/env bash
# The delivery targets (BENCHMARKS.md, "Targets"): on a fresh server each,
# 1,000 sockets in groups of 10 at 100 and at 500 msg/s and direct pairs
# at 2,000 msg/s — first on an idle machine, then with one core taken by a
# CPU-bound process (stress-ng --cpu 1, started and stopped here).
#
#   internal/loadgen/targets.sh [OUT_DIR]      (default /tmp/parley-targets)
#
# DURATION (default 30s) is how long each run sends; ONLY (a regular
# expression) picks runs by name; SERVER_FLAGS are added to `parley run`
# (e.g. "-roles gateway,decider,history -routing broadcast" to leave the
# search projection out); SERVER_ENV are VAR=value settings for it alone
# (e.g. "GOMAXPROCS=2"). SERVERS (default "parley") lists the servers to
# measure, each run of each scenario in turn: "parley centrifugo" puts
# Centrifugo v5.4.9 (built here from the Go module proxy, with the
# configuration below) under the same load from the same generator, in
# the same time slots.
#
# Needs curl and stress-ng (Debian packages). Each run writes NAME.txt (the
# report), NAME.json and NAME.server.log to OUT_DIR; the last lines print a
# summary. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mkdir -p "${1:-/tmp/parley-targets}" && cd "${1:-/tmp/parley-targets}" && pwd)
addr=127.0.0.1:8080
duration=${DURATION:-30s}
servers=${SERVERS:-parley}
go build -o "$out/parley" .
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, $(date -u +%FT%TZ)" | tee "$out/summary.txt"

# Both servers verify the generator's tokens with this secret.
secret=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
export PARLEY_JWT_SECRET=$secret
centrifugo_version=v5.4.9
build_centrifugo() {
	local dir="$out/centrifugo-build"
	mkdir -p "$dir"
	# A module of its own: `go install …@version` asks the proxy for the
	# module's version list, which it refuses for Centrifugo.
	printf 'module centrifugobuild\n\ngo 1.26\n' >"$dir/go.mod"
	printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/centrifugal/centrifugo/v5"\n' >"$dir/tools.go"
	[ -x "$out/centrifugo" ] || (cd "$dir" && GOFLAGS=-mod=mod go get "github.com/centrifugal/centrifugo/v5@$centrifugo_version" &&
		GOFLAGS=-mod=mod go build -o "$out/centrifugo" \
			-ldflags "-X github.com/centrifugal/centrifugo/v5/internal/build.Version=${centrifugo_version#v}" \
			github.com/centrifugal/centrifugo/v5)
	# Subscribers may publish; tokens are the generator's HS256 tokens.
	cat >"$out/centrifugo.json" <<-JSON
		{
		  "token_hmac_secret_key": "$secret",
		  "allow_subscribe_for_client": true,
		  "allow_publish_for_subscriber": true,
		  "prometheus": true,
		  "log_level": "warn"
		}
	JSON
}

run() { # SERVER NAME CONTENDED BENCH-FLAGS...
	local server_kind=$1 name="$2-$1" contended=$3
	shift 3
	[[ "$name" =~ ${ONLY:-.} ]] || return 0
	rm -rf "$out/data"
	local protocol=parley
	if [ "$server_kind" = centrifugo ]; then
		protocol=centrifugo
		"$out/centrifugo" -c "$out/centrifugo.json" --address 127.0.0.1 --port "${addr##*:}" 2>"$out/$name.server.log" >&2 &
	else
		# shellcheck disable=SC2086 # SERVER_ENV and SERVER_FLAGS are lists
		env ${SERVER_ENV:-} "$out/parley" run -data-dir "$out/data" -http-addr "$addr" -log-level warn ${SERVER_FLAGS:-} 2>"$out/$name.server.log" &
	fi
	local server=$!
	until curl -s -o /dev/null "$addr/metrics"; do
		kill -0 "$server" # the server died: stop here
		sleep 0.2
	done
	local burner=""
	if [ "$contended" = yes ]; then
		stress-ng --cpu 1 --quiet &
		burner=$!
	fi
	"$out/parley" bench -protocol "$protocol" -target "http://$addr" -pid "$server" -json "$out/$name.json" -jwt-secret "$secret" -log-level warn "$@" >"$out/$name.txt" || true
	if [ -n "$burner" ]; then
		kill "$burner"
		wait "$burner" || true
	fi
	kill "$server"
	wait "$server" || true
	echo "== $name ($*)" | tee -a "$out/summary.txt"
	tee -a "$out/summary.txt" <"$out/$name.txt"
}

for s in $servers; do
	[ "$s" = centrifugo ] && build_centrifugo
done
for mode in idle contended; do
	contended=no
	[ "$mode" = contended ] && contended=yes
	for s in $servers; do run "$s" "groups-100-$mode" "$contended" -shape group -groups 100 -group-size 10 -rate 100 -duration "$duration"; done
	for s in $servers; do run "$s" "groups-500-$mode" "$contended" -shape group -groups 100 -group-size 10 -rate 500 -duration "$duration"; done
	for s in $servers; do run "$s" "direct-2000-$mode" "$contended" -shape direct -sockets 200 -rate 2000 -duration "$duration"; done
done
