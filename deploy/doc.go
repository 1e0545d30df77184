// Package deploy holds the files the production-shaped stack in
// ../docker-compose.yml mounts into its containers — the HAProxy load-balancer
// config, the Prometheus scrape configs and alerting rules (alerts.yml),
// and the Grafana provisioning and dashboards — the production overlay docker-compose.production.yml,
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
// files that exist, the load balancer's config (every gateway a server
// checked on /readyz, WebSocket tunnel timeout, retries on another
// gateway) and that internal/systemtest runs that same file, scrape
// targets that name real services, and host ports that match the test
// script. The alerting rules are checked with promtool against the cases
// of alerts-test.yml, and the dashboard's and the rules' metrics against
// those Parley exports.
package deploy
