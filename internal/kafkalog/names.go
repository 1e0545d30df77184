// Names resolves Parley's persistent topic and group names under a prefix.
package kafkalog

import (
	"fmt"
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

// maxPrefix leaves room in Kafka's 249 characters for the longest names
// (a delivery topic with a 200-character node id is 214 without prefix).
const maxPrefix = 32

// Validate reports whether the prefix can start a topic name: at most 32
// characters of [A-Za-z0-9._-].
func (n Names) Validate() error {
	if len(n.Prefix) > maxPrefix {
		return fmt.Errorf("prefix %q is longer than %d characters", n.Prefix, maxPrefix)
	}
	for _, r := range n.Prefix {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return fmt.Errorf("prefix %q has %q: use only [A-Za-z0-9._-]", n.Prefix, r)
		}
	}
	return nil
}
