// Package deploy holds the files the production-shaped stack in
// ../docker-compose.yml mounts into its containers — the nginx load-balancer
// config, the Prometheus scrape configs and the Grafana provisioning and
// dashboards — the production overlay docker-compose.production.yml,
// test-compose.sh (the script behind `make test-compose`) and README.md,
// the operator's guide.
//
// It has no Go code to import. Its tests load docker-compose.yml, alone and
// merged with the production overlay, with the compose-spec loader that
// `docker compose` itself uses and check the wiring a typo would silently
// break: the services and their commands, the environment every Parley
// role needs, healthchecks and healthcheck-gated start order, secrets that
// must come from .env, images pinned to exact versions, resource limits,
// the replicated Kafka and ScyllaDB clusters of the overlay, bind mounts of
// files that exist, load-balancer WebSocket headers, scrape targets that
// name real services, and host ports that match the test script.
package deploy
