// Package systemtest holds Parley's system tests: every role started by
// internal/app (or as the real parley binary) over the embedded broker
// and real stores, driven through real HTTP and WebSocket connections —
// end to end, permissions, conversations, search, several gateway nodes,
// targeted routing, kill -9 of the binary and of a node (also behind
// HAProxy with deploy/haproxy.cfg), a slow consumer,
// ScyllaDB through its CQL stand-in, kcat reading the log, the README's
// examples — and the system benchmarks (send to deliver, projections,
// routing with 1, 2 and 4 nodes). Every HTTP response and WebSocket frame
// the tests see (the benchmarks' own sockets aside) is checked against the
// OpenAPI and AsyncAPI documents. It has no code of its own.
package systemtest
