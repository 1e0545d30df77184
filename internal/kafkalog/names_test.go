// Tests of name resolution under a prefix.
package kafkalog_test

import (
	"testing"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

func TestNames(t *testing.T) {
	t.Parallel()
	t.Run("the zero value resolves every name to itself", func(t *testing.T) {
		var n kafkalog.Names
		if n.Topic(schemas.TopicEvents) != schemas.TopicEvents || n.Group(schemas.GroupDecider) != schemas.GroupDecider ||
			n.Delivery("gw-1") != schemas.DeliveryTopic("gw-1") || n.Base(schemas.TopicEvents) != schemas.TopicEvents {
			t.Errorf("zero Names changed a name")
		}
	})
	t.Run("a prefix starts every topic, group and delivery topic, and Base removes it", func(t *testing.T) {
		n := kafkalog.Names{Prefix: "staging."}
		if got := n.Topic(schemas.TopicEvents); got != "staging.chat.events" {
			t.Errorf("Topic = %q", got)
		}
		if got := n.Group(schemas.GroupDecider); got != "staging.parley-decider" {
			t.Errorf("Group = %q", got)
		}
		if got := n.Delivery("gw-1"); got != "staging.chat.delivery.gw-1" {
			t.Errorf("Delivery = %q", got)
		}
		if got := n.Base(n.Delivery("gw-1")); got != schemas.DeliveryTopic("gw-1") {
			t.Errorf("Base = %q", got)
		}
	})
	t.Run("a prefix that cannot start a topic name is refused", func(t *testing.T) {
		for _, p := range []string{"a/b", "with space", "ünï", "0123456789012345678901234567890123"} {
			if err := (kafkalog.Names{Prefix: p}).Validate(); err == nil {
				t.Errorf("prefix %q accepted", p)
			}
		}
		for _, p := range []string{"", "t-1.", "Run_7-"} {
			if err := (kafkalog.Names{Prefix: p}).Validate(); err != nil {
				t.Errorf("prefix %q refused: %v", p, err)
			}
		}
	})
}
