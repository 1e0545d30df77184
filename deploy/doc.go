// Package deploy holds the files the production-shaped stack in
// ../docker-compose.yml mounts into its containers — the nginx load-balancer
// config, the Prometheus scrape config and the Grafana provisioning and
// dashboards — and test-compose.sh, the script behind `make test-compose`.
//
// It has no Go code to import. Its tests load docker-compose.yml with the
// compose-spec loader that `docker compose` itself uses and check the wiring
// a typo would silently break: the services and their commands, the
// environment every Parley role needs, healthcheck-gated start order, bind
// mounts of files that exist, load-balancer WebSocket headers, scrape
// targets that name real services, and host ports that match the test script.
package deploy
