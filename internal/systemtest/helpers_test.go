package systemtest_test

import (
	"encoding/base64"
	"log/slog"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/schemas"
)

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func recordOf(m kafka.Message, a schemas.Attributes) consumers.Record {
	return consumers.Record{Message: m, Attrs: a}
}
