// Package delivery is the delivery projection of a gateway node: it
// pushes every event of chat.events to the connected sockets of the
// conversation's members, in seq order, with no gap and no duplicate per
// socket, and answers the commands this node appended (from chat.events
// and chat.replies). It also pushes typing indicators (chat.ephemeral)
// and read and delivered markers (chat.receipts, as "receipt" frames),
// and reports what it delivered through Config.Delivered so that
// delivered receipts can be recorded.
//
// The package is split along its seams:
//
//   - hub.go: the Hub, this node's sessions by user, and the fan-out of
//     what its feed brings to them.
//   - feed.go: the Feed interface — how records reach the node — and the
//     partition readers both of its implementations run.
//   - broadcast.go: the broadcast feed. Each node reads every partition
//     of those topics itself (no consumer group: every node needs every
//     event), starting at the high watermarks of its start, and picks
//     out its sockets' users. The work grows with nodes × events.
//   - handoff.go: under broadcast routing, a decider in the same process
//     hands the hub what it appended once the broker has acknowledged it
//     (Hub.AppendedEvents, Hub.AppendedReplies); the hub takes each
//     record from whichever copy, the log's or the hand-off, comes first,
//     and a handed-off event only if it is the next of its conversation.
//   - targeted.go: the targeted feed (Config.Node set; PARLEY_ROUTING).
//     The router (package router), a consumer group over the same
//     topics, copies each record to the delivery topic of each node that
//     needs it — chat.delivery.<node>, one partition per node, so a node
//     reads exactly its own records — naming the node's users it is for.
//     The node reads its topic, and chat.changes to keep the
//     conversations it caches current. The work grows with deliveries.
//   - session.go: a Session is one socket's delivery state; it fills any
//     gap it sees — on resume after a reconnect or when an event arrives
//     ahead of the socket's cursor — from the history store, and says so
//     with a "gap" frame when history cannot fill it in time. Each
//     session has a bounded queue that grows only as frames wait, and a
//     writer goroutine that runs only while they do; publishing never
//     blocks, and a session that falls behind is ended with
//     ErrSlowConsumer so that it reconnects and resumes.
//   - waiters.go: the requests waiting for the answer to the command
//     they appended (Hub.Await).
//   - membership.go: the conversation summaries the node has seen or
//     loaded, which fan-out reads and the gateway authorises with
//     (Hub.Conversation).
//   - frames.go: the push frames, encoded once per event.
//
// Hub and Session methods are safe for concurrent use unless noted.
package delivery
