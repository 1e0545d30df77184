// Package producers is the append side of Parley: typed writers that
// append commands (CommandWriter), typing signals (SignalWriter) and read
// and delivered markers (ReceiptWriter), keyed by conversation id and
// placed with Kafka's default murmur2 partitioner (or a balancer that
// agrees with it: PartitionBalancer, ConversationBalancer), so the records
// of a conversation land in the same partition number of every topic, for
// Parley and for analytics jobs alike. The record codec, topic
// provisioning and the settings of every Kafka client are package
// internal/kafkalog's.
//
// Commands are pipelined: CommandWriter.Enqueue returns once a command
// has its place in its partition's order and reports the broker's answer
// on a channel. Each partition has one produce request in flight; the
// commands that arrive meanwhile leave together as soon as it is
// answered, so batches grow with the load and nothing waits for a timer.
// At most MaxPending (default 8,192) wait for the broker, and beyond that
// it refuses with ErrOverloaded rather than queue without bound.
//
// Writers are safe for concurrent use; every call that can block takes a
// context.
package producers
