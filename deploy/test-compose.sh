#!/usr/bin/env bash
# make test-compose: run the whole test suite against the production engines.
#
# Starts Kafka, ScyllaDB and Elasticsearch from docker-compose.yml (waiting
# for their healthchecks), points the PARLEY_* variables at the ports they
# publish on localhost, runs the Kafka tests and then `go test -race
# -count=1 ./...`, and removes the containers and their volumes on exit,
# whether the tests pass or not.
#
# The Kafka tests — the log conformance suite (internal/kafkalog), the
# consumer runtime and the decider (consumers/...), the delivery hub and
# its feeds (projections/delivery), the router (projections/router),
# presence (projections/presence) — get their cluster from
# internal/kafkalog/kafkatest, which uses PARLEY_KAFKA_BROKERS when it is
# set, with a topic and group prefix of each test's own; so they run
# against the compose Kafka, and two runs can share it.
#
# Extra arguments go to `go test`, e.g. deploy/test-compose.sh -run Conformance
# The ports below must match the published ports in docker-compose.yml
# (deploy/compose_test.go checks that they do).
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v docker >/dev/null 2>&1; then
	echo "test-compose: docker is not installed; install Docker with the Compose v2 plugin" >&2
	exit 1
fi
if ! docker compose version >/dev/null 2>&1; then
	echo "test-compose: 'docker compose' (the Compose v2 plugin) is not available; install it (the old docker-compose v1 is not supported)" >&2
	exit 1
fi
if ! docker info >/dev/null 2>&1; then
	echo "test-compose: cannot reach the Docker daemon; start Docker and retry" >&2
	exit 1
fi

# A project of its own, so `down -v` never touches a dev stack's volumes.
project="${COMPOSE_PROJECT_NAME:-parley-test}"
compose=(docker compose --project-name "$project" --file docker-compose.yml)

cleanup() {
	status=$?
	echo "test-compose: removing containers and volumes of project $project" >&2
	"${compose[@]}" down -v --remove-orphans >&2 || true
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"${compose[@]}" up -d --build --wait --wait-timeout 300 kafka scylla elasticsearch

export PARLEY_KAFKA_BROKERS=localhost:29092
export PARLEY_SCYLLA_HOSTS=localhost:9042
export PARLEY_ELASTICSEARCH_URL=http://localhost:9200

kafka_packages=(./internal/kafkalog/... ./consumers/... ./projections/delivery/... ./projections/router/... ./projections/presence/...)
echo "test-compose: the log suite and the Kafka tests against $PARLEY_KAFKA_BROKERS" >&2
go test -race -count=1 "$@" "${kafka_packages[@]}"

echo "test-compose: everything else" >&2
mapfile -t rest < <(go list ./... | grep -v -e '/internal/kafkalog' -e '/consumers' -e '/projections/delivery' -e '/projections/router' -e '/projections/presence')
go test -race -count=1 "$@" "${rest[@]}"
