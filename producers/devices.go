// Device changes: the end-to-end encryption key directory's device list
// changes, appended to chat.devices.

package producers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// DeviceWriter appends device changes to chat.devices, keyed by user id,
// synchronously: Append returns once every in-sync replica has the
// record. It is safe for concurrent use.
type DeviceWriter struct {
	w   *kafka.Writer
	now func() time.Time
}

// NewDeviceWriter returns a DeviceWriter of cluster;
// names resolves chat.devices.
func NewDeviceWriter(cluster *kafkalog.Cluster, names kafkalog.Names, log *slog.Logger) *DeviceWriter {
	return &DeviceWriter{
		w:   kafkalog.NewWriter(cluster, names.Topic(schemas.TopicDevices), kafkalog.FlushAtOnce(), kafkalog.ErrorLog(log, "component", "device-writer")),
		now: time.Now,
	}
}

// Append appends that user's device was added (added) or removed, making
// the user's device list version version.
func (d *DeviceWriter) Append(ctx context.Context, user, device string, version uint64, added bool) error {
	typ := schemas.TypeDeviceRemoved
	if added {
		typ = schemas.TypeDeviceAdded
	}
	at := d.now().UTC()
	value, err := json.Marshal(schemas.DeviceChangedV1{UserID: user, DeviceID: device, Version: version, At: at})
	if err != nil {
		return fmt.Errorf("encoding %s: %w", typ, err)
	}
	if err := d.w.WriteMessages(ctx, kafkalog.Encode(kafkalog.NewAttributes(typ, user, at), value)); err != nil {
		return fmt.Errorf("appending %s: %w", typ, err)
	}
	return nil
}

// Close closes the writer.
func (d *DeviceWriter) Close() error { return d.w.Close() }
