// Names resolves Parley's persistent topic and group names under a prefix.
package kafkalog

import (
	"strings"

	"github.com/parley-chat/parley/schemas"
)

// Names resolves the persistent names of package schemas (topics, consumer
// group ids, delivery topics) to the names used on a cluster: each is
// prefixed with Prefix, so that several deployments or test runs can share
// one cluster. The zero value resolves every name to itself.
type Names struct {
	// Prefix starts every topic name and group id. Default: empty.
	Prefix string
}

// Topic returns the name of topic name (one of schemas.Topic…).
func (n Names) Topic(name string) string { return n.Prefix + name }

// Group returns the consumer group id of id (one of schemas.Group…).
func (n Names) Group(id string) string { return n.Prefix + id }

// Delivery returns the name of gateway node node's delivery topic.
func (n Names) Delivery(node string) string { return n.Prefix + schemas.DeliveryTopic(node) }

// Base returns the persistent name of a resolved topic name: the name
// without the prefix. A name without the prefix is returned as it is.
func (n Names) Base(topic string) string { return strings.TrimPrefix(topic, n.Prefix) }
