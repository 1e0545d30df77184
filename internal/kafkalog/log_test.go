// The log conformance suite on the test's cluster: the embedded broker, or
// PARLEY_KAFKA_BROKERS when set.
package kafkalog_test

import (
	"testing"

	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/kafkalog/logtest"
)

func TestLog(t *testing.T) {
	t.Parallel()
	logtest.Run(t, func(t *testing.T) kafkatest.Cluster { return kafkatest.Start(t, kafkatest.Prefixed()) })
}
