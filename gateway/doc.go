// Package gateway is Parley's edge: the HTTP API (chi) and the WebSocket
// endpoint (coder/websocket). It authenticates users with JWTs — HS256
// (Authenticator) or an organisation's OpenID providers' (OIDCVerifier),
// one Verifier for both transports — validates every request before
// anything is appended, appends commands to
// chat.commands, waits for the decider's answer, serves history and
// conversation lists from the history store, and hands each socket to the
// delivery projection. GET /v1/events (sse.go) serves the same delivery
// session as Server-Sent Events, for clients that cannot open a socket:
// the stream is another delivery.Sink, and its event ids encode the
// per-conversation cursors a reconnect resumes from (ssecursor.go).
//
// It also serves what a browser needs before it has a token (signin.go):
// GET /auth/config says how to sign in here, and POST /auth/dev-token
// signs development tokens on the embedded default's public secret; and,
// when Config.Client is set, the web client (package web) at /,
// /auth/callback and /static/.
//
// The gateway holds no conversation state of its own and can be run as
// many nodes behind a load balancer. A Server is safe for concurrent use.
//
// Files never pass through it (attachments.go): it presigns uploads and
// downloads against the file store (a FileStore, s3store.Store), and
// reads each upload back from the store (a HEAD) before it appends a
// message that names it.
//
// It also enforces the edge's limits (ratelimit.go): token buckets per
// user for commands and HTTP requests and per client address for
// upgrades and failed authentications, a cap on each user's sockets, and
// the socket's read limit and auth deadline. The buckets are this node's
// own; nodes share nothing.
//
// # The trip of one message, socket to socket
//
// A newcomer can follow one chat message from the sender's WebSocket to
// each recipient's through these files (targeted routing, the default;
// schema types in schemas/ are looked up along the way and are not
// stops):
//
//  1. gateway/ws.go — socket.handle reads the "send" frame;
//  2. gateway/messages.go — Server.send validates it and pre-checks the
//     conversation rules, judged by internal/conversation (rules.go, on
//     the State of state.go) against this node's view;
//  3. gateway/gateway.go — Server.command takes one of the node's
//     MaxAwaiting places (none left: overloaded, at once), registers a
//     waiter for the answer (projections/delivery/waiters.go) and
//     appends;
//  4. producers/writer.go — CommandWriter.Enqueue queues it for
//     chat.commands, keyed by conversation, pipelined (the answer to a
//     saturated log is an overloaded error, at once);
//  5. internal/kafkalog/codec.go — Encode: the CloudEvents binary binding
//     (Decode on every consuming side);
//  6. consumers/decider/decider.go — the partition's loop fetches a
//     micro-batch (decideBatch), and writes the event to chat.events;
//  7. consumers/decider/decide.go — State.Decide judges the command by
//     the same rules (internal/conversation) and makes the event with
//     the next seq;
//  8. consumers/decider/state.go — State.fold folds it into the
//     partition's state; State.event makes the record;
//  9. consumers/group.go — the consumer-group runtime the router runs on;
//  10. projections/router/router.go — Router.route copies the event to
//     chat.delivery.<node> of every node holding a member's socket (or
//     the sender's waiting request), naming the users;
//  11. projections/delivery/feed.go — the node's partition reader;
//  12. projections/delivery/targeted.go — targeted.routed answers the
//     sender's waiter (the ack) and hands the event on;
//  13. projections/delivery/hub.go — Hub.pushTo queues it on the
//     sessions of the users named;
//  14. projections/delivery/session.go — Session.deliver writes it in
//     seq order, filling any gap from history first;
//  15. projections/delivery/frames.go — EncodeEvent, the "event" frame,
//     encoded once for every socket;
//
// and back in gateway/ws.go, socket.Write puts the frame on each
// recipient's socket. That is 15 files the message passes through, in 8
// packages, plus the 2 files of rules it is judged by. Under broadcast
// routing steps 9 and 10 drop out and broadcast.go replaces targeted.go.
//
// Before the core was reshaped, the same trip went through the rules
// written twice (consumers/decider/policy.go and gateway/actions.go), a
// gateway that imported the decider to ask, producers/record.go to
// decode what consumers read, and projections/delivery/hub.go,
// targeted.go and router.go, where one type did six jobs with
// broadcast-or-targeted branches: 29 files and 9 package switches
// counting every file the code consulted before the first append.
package gateway
