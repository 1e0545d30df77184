// Package producers is the append side of Parley: it provisions the topics
// with explicit configs, turns contract records into Kafka messages (the
// CloudEvents binary-mode mapping of package schemas), and appends commands
// keyed by conversation id with Kafka's default murmur2 partitioner, so the
// records of a conversation land in the same partition number of every
// topic, for Parley and for analytics jobs alike.
//
// Writers are safe for concurrent use; every call that can block takes a
// context.
package producers
