// Package kafkalog is Parley's Kafka plumbing: the CloudEvents binary-mode
// codec of records in both directions (Encode, Decode), topic
// administration and provisioning with explicit configs (Topology,
// Provision, ProvisionNode), the resolution of persistent topic and group
// names under a deployment's prefix (Names), and the one place that builds
// every kafka.Writer, kafka.Reader, kafka.ConsumerGroup and kafka.Client
// Parley uses, with one set of settings (NewWriter, NewPartitionReader,
// NewGroupReader, NewConsumerGroup, NewClient; Gather for the groups
// nobody waits on), all of one Cluster: the brokers, and the connections
// a process's writers and clients share until it closes the Cluster. It
// also reads outside any consumer group: a fixed range of offsets
// (Offsets, ReadRange, EachRange), and a compacted topic followed from the
// start, with word once it has caught up (Follow).
//
// It knows nothing of what the records mean: the typed append side is
// package producers, the consumer runtime and the decider are package
// consumers.
//
// Everything here is either a pure function, a Cluster (safe for
// concurrent use), or returns a kafka-go value whose own concurrency
// contract applies: writers are safe for concurrent use; a reader or
// consumer group belongs to one goroutine at a time.
package kafkalog
