#!/usr/bin/env bash
# make test-compose: run the test suite against the engines of the compose
# stack that is already running (docker-compose.yml, started as
# deploy/README.md says). It starts nothing and stops nothing: the stack,
# its data and its Parley roles are left as they were.
#
# It points the PARLEY_* variables at the ports the stack publishes on
# localhost, checks that each engine answers there (and stops with a
# message saying how to start the stack when one does not), runs the Kafka
# tests and then `go test -race -count=1` over everything else.
#
# The tests never touch the stack's own data. The Kafka tests — the log
# conformance suite (internal/kafkalog), the consumer runtime and the
# decider (consumers/...), the delivery hub and its feeds
# (projections/delivery), the router (projections/router), presence
# (projections/presence) — get their cluster from
# internal/kafkalog/kafkatest, which uses PARLEY_KAFKA_BROKERS when it is
# set, with a topic and group prefix of each test's own that it deletes
# afterwards; the ScyllaDB and Elasticsearch suites use a keyspace or index
# of each test's own. So two runs can share the stack, and the stack keeps
# serving while they run.
#
# Extra arguments go to `go test`, e.g. deploy/test-compose.sh -run Conformance
# The ports below must match the published ports in docker-compose.yml
# (deploy/compose_test.go checks that they do).
set -euo pipefail

cd "$(dirname "$0")/.."

export PARLEY_KAFKA_BROKERS=localhost:29092
export PARLEY_SCYLLA_HOSTS=localhost:9042
export PARLEY_ELASTICSEARCH_URL=http://localhost:9200

not_up() {
	cat >&2 <<MSG
test-compose: $1 does not answer on $2, so the compose stack is not up (or not healthy yet).
test-compose: start it first, from the repository root:
    cp .env.example .env                  # once; fill in the values it names
    docker compose up -d --build --wait
test-compose: then run make test-compose again (deploy/README.md has the details).
MSG
	exit 1
}

# answers HOST PORT: whether something accepts a TCP connection there
# (bash's /dev/tcp; on localhost a connection is accepted or refused at
# once).
answers() {
	(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

answers localhost 29092 || not_up Kafka localhost:29092
answers localhost 9042 || not_up ScyllaDB localhost:9042
if ! command -v curl >/dev/null 2>&1; then
	echo "test-compose: curl is needed to check Elasticsearch; install it" >&2
	exit 1
fi
curl -fsS --max-time 15 -o /dev/null \
	"$PARLEY_ELASTICSEARCH_URL/_cluster/health?wait_for_status=yellow&timeout=10s" ||
	not_up Elasticsearch "$PARLEY_ELASTICSEARCH_URL"

kafka_packages=(./internal/kafkalog/... ./consumers/... ./projections/delivery/... ./projections/router/... ./projections/presence/...)
echo "test-compose: the log suite and the Kafka tests against $PARLEY_KAFKA_BROKERS" >&2
go test -race -count=1 "$@" "${kafka_packages[@]}"

echo "test-compose: everything else, against ScyllaDB at $PARLEY_SCYLLA_HOSTS and Elasticsearch at $PARLEY_ELASTICSEARCH_URL" >&2
mapfile -t rest < <(go list ./... | grep -v -e '/internal/kafkalog' -e '/consumers' -e '/projections/delivery' -e '/projections/router' -e '/projections/presence')
go test -race -count=1 "$@" "${rest[@]}"
