// Package telemetry holds Parley's Prometheus metrics. One Metrics value
// is made per process and passed to the components that record into it;
// there is no global registry. All methods are safe for concurrent use.
package telemetry

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the set of Parley's metrics, registered on its own registry.
type Metrics struct {
	Registry *prometheus.Registry

	// ConsumedRecords counts records a consumer group applied, by group.
	ConsumedRecords *prometheus.CounterVec
	// HTTPRequests counts the HTTP API's answers by route pattern,
	// method and status code; HTTPDuration times them.
	HTTPRequests *prometheus.CounterVec
	HTTPDuration *prometheus.HistogramVec
	// DeadLetters counts records a consumer group sent to chat.dlq.
	DeadLetters *prometheus.CounterVec
	// ConsumerLag is, per consumer group, topic and partition, the
	// records not committed yet. Every process that runs a group reports
	// the whole group's lag (the broker's committed offsets): aggregate
	// with max over instances, then sum.
	ConsumerLag *prometheus.GaugeVec
	// ConsumerLostRecords is, per consumer group, topic and partition,
	// the records the group committed that the log no longer holds: the
	// partition ends before the group's committed offset (a log that
	// lost its tail). Reported like ConsumerLag.
	ConsumerLostRecords *prometheus.GaugeVec
	// ApplyRetries counts a consumer group's failed Apply calls (of a
	// batch, or of one record while a failing batch is isolated) and
	// failed dead-letter writes: each is retried.
	ApplyRetries *prometheus.CounterVec
	// PartitionRebuilds counts the times a role gave up a partition after
	// a failure (an append that did not land, a store error) and rebuilt
	// its state from the log, by group.
	PartitionRebuilds *prometheus.CounterVec
	// Commands counts commands the decider handled, by type and outcome
	// (accepted, rejected, duplicate).
	Commands *prometheus.CounterVec
	// Rejections counts refused requests, by where (gateway, decider) and
	// stable code.
	Rejections *prometheus.CounterVec
	// Connections is the number of open delivery sessions: WebSocket
	// connections and Server-Sent Events streams (the name predates
	// SSE; SSEStreams tells them apart).
	Connections prometheus.Gauge
	// SSEStreams is the number of open Server-Sent Events streams.
	SSEStreams prometheus.Gauge
	// AwaitingCommands is the number of commands a gateway node has
	// taken and not yet answered (at most PARLEY_MAX_AWAITING).
	AwaitingCommands prometheus.Gauge
	// Deliveries counts event frames written to sockets.
	Deliveries prometheus.Counter
	// SlowConsumers counts sockets closed because their queue was full.
	SlowConsumers prometheus.Counter
	// DeliverLatency is the time from an event's ce_time (when the decider
	// accepted it) to its frame being written to a socket.
	DeliverLatency prometheus.Histogram
	// CommandWait is the time from a command's ce_time (when a gateway
	// queued it for chat.commands) to the decider's decision on it: the
	// command writer's batch, the broker's acknowledgement and the
	// decider's fetch. With DeliverLatency it covers a message's trip
	// through the server, socket to socket, but for the reading and
	// writing of the frames.
	CommandWait prometheus.Histogram
	// CommandsTaken counts the commands the decider took, by where it
	// took them from: "log" (read from chat.commands) or "gateway"
	// (handed over in process by the gateway that appended them).
	CommandsTaken *prometheus.CounterVec
	// DeliveryRecordsRead counts the records a node's delivery projection
	// read from Kafka, by topic: every record of chat.events,
	// chat.replies and chat.ephemeral under broadcast routing; only this
	// node's delivery topic and chat.changes under targeted routing.
	DeliveryRecordsRead *prometheus.CounterVec
	// DeliveryEventsTaken counts the events a node's delivery projection
	// took under broadcast routing, by where the first copy came from:
	// "log" (read from chat.events) or "decider" (handed off in process
	// by a decider in the same process once appended).
	DeliveryEventsTaken *prometheus.CounterVec
	// RouterRecordsRead counts the records the router read, by topic.
	RouterRecordsRead *prometheus.CounterVec
	// RouterRecordsWritten counts the records the router wrote, by kind:
	// "delivery" (a copy for one node), "changes" (to chat.changes),
	// "resync" (a copy re-sent when a user appeared on a node).
	RouterRecordsWritten *prometheus.CounterVec
	// KafkaReaderErrors counts the errors Parley's Kafka readers and
	// consumer groups report, by group ("" for a reader outside any
	// group) and topic: above all a fetch that failed, after which the
	// reader drops its connection, backs off and dials again. It stays
	// at zero in normal operation, idle or under load.
	KafkaReaderErrors *prometheus.CounterVec
	// PushNotifications counts the push projection's notifications by
	// provider (webpush, fcm, apns) and outcome: sent (the provider
	// accepted it), retried (a 429, 5xx or no answer, tried again later),
	// failed (given up on: refused, or still failing after the last
	// attempt), removed (the provider said the registration is gone, and
	// it was removed).
	PushNotifications *prometheus.CounterVec
	// PushLatency is the time from a message's acceptance (ce_time) to
	// the provider's acceptance of its notification, by provider; it
	// includes the coalescing window a notification waited in.
	PushLatency *prometheus.HistogramVec
}

// New returns a Metrics on a fresh registry that also carries the Go
// runtime and process collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		ConsumedRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_consumer_records_total", Help: "Records applied by a consumer group.",
		}, []string{"group"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_consumer_dead_letters_total", Help: "Records sent to chat.dlq by a consumer group.",
		}, []string{"group"}),
		ConsumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "parley_consumer_lag_records", Help: "Records of a topic a consumer group has not committed yet, per partition of the topic.",
		}, []string{"group", "topic", "partition"}),
		ConsumerLostRecords: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "parley_consumer_lost_records", Help: "Records a consumer group committed that the log no longer holds (the partition ends before the committed offset), per partition of the topic.",
		}, []string{"group", "topic", "partition"}),
		ApplyRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_consumer_apply_retries_total", Help: "Failed store writes (Apply of a batch or of one record) and dead-letter writes of a consumer group, each retried.",
		}, []string{"group"}),
		PartitionRebuilds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_partition_rebuilds_total", Help: "Partitions given up after a failure and rebuilt from the log, by group.",
		}, []string{"group"}),
		Commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_decider_commands_total", Help: "Commands handled by the decider.",
		}, []string{"type", "outcome"}),
		Rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_rejections_total", Help: "Refused requests by where they were refused and code.",
		}, []string{"where", "code"}),
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_ws_connections", Help: "Open WebSocket connections and Server-Sent Events streams.",
		}),
		SSEStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_sse_streams", Help: "Open Server-Sent Events streams (counted in parley_ws_connections too).",
		}),
		AwaitingCommands: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_gateway_awaiting_commands", Help: "Commands a gateway node has taken and not yet answered: queued for the log or waiting for the decider (at most PARLEY_MAX_AWAITING).",
		}),
		Deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_deliveries_total", Help: "Event frames written to sockets.",
		}),
		SlowConsumers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_ws_slow_consumers_total", Help: "Sockets closed because their send queue was full.",
		}),
		DeliverLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parley_deliver_latency_seconds",
			Help:    "Time from an event's acceptance (ce_time) to its frame being written to a socket.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		CommandWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parley_decider_command_wait_seconds",
			Help:    "Time from a command's ce_time (queued by a gateway for chat.commands) to the decider's decision on it.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		CommandsTaken: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_decider_commands_taken_total", Help: "Commands the decider took, by source: log or gateway (handed over in process).",
		}, []string{"from"}),
		DeliveryRecordsRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_delivery_records_read_total", Help: "Records the node's delivery projection read from Kafka, by topic.",
		}, []string{"topic"}),
		DeliveryEventsTaken: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_delivery_events_taken_total", Help: "Events the node's delivery projection took (broadcast routing), by the source of their first copy: log or decider.",
		}, []string{"from"}),
		RouterRecordsRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_router_records_read_total", Help: "Records the router read, by topic.",
		}, []string{"topic"}),
		RouterRecordsWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_router_records_written_total", Help: "Records the router wrote: delivery (one per node), changes, resync.",
		}, []string{"kind"}),
		KafkaReaderErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_kafka_reader_errors_total", Help: "Errors of Kafka readers and consumer groups (a failed fetch drops the connection and dials again), by group and topic.",
		}, []string{"group", "topic"}),
		PushNotifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_push_notifications_total", Help: "Push notifications by provider and outcome (sent, retried, failed, removed).",
		}, []string{"provider", "outcome"}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_http_requests_total", Help: "Requests to the HTTP API (/auth and /v1 but the socket and the event stream), by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "parley_http_request_duration_seconds",
			Help:    "Time from a request to the HTTP API to its answer, by route pattern and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		PushLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "parley_push_latency_seconds",
			Help:    "Time from a message's acceptance (ce_time) to the push provider's acceptance of its notification, coalescing window included.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"provider"}),
	}
	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.ConsumedRecords, m.DeadLetters, m.ConsumerLag, m.ConsumerLostRecords, m.ApplyRetries, m.PartitionRebuilds, m.Commands, m.Rejections,
		m.Connections, m.SSEStreams, m.AwaitingCommands, m.Deliveries, m.SlowConsumers, m.DeliverLatency, m.CommandWait, m.CommandsTaken,
		m.DeliveryRecordsRead, m.DeliveryEventsTaken, m.RouterRecordsRead, m.RouterRecordsWritten, m.KafkaReaderErrors,
		m.PushNotifications, m.PushLatency, m.HTTPRequests, m.HTTPDuration,
	)
	return m
}

// CountCachedConversations exports f, how many conversations a cache of
// a role holds (gateway membership, newest seqs, message views; the
// router's; the decider's), as parley_cached_conversations{cache="name"}: the bounded
// in-memory state of PARLEY_CONVERSATION_CACHE.
func (m *Metrics) CountCachedConversations(name string, f func() int) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parley_cached_conversations", Help: "Conversations a role keeps state of in memory, by cache (at most PARLEY_CONVERSATION_CACHE each).",
		ConstLabels: prometheus.Labels{"cache": name},
	}, func() float64 { return float64(f()) }))
}

// CountPresenceRecords exports f, how many users' latest presence
// records a gateway node keeps (online users, and at most
// PARLEY_PRESENCE_CACHE offline ones), as parley_presence_records.
func (m *Metrics) CountPresenceRecords(f func() int) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parley_presence_records", Help: "Users whose latest presence record a gateway node keeps in memory (online users, and at most PARLEY_PRESENCE_CACHE offline ones).",
	}, func() float64 { return float64(f()) }))
}

// CountPush exports the push role's registered devices (f) and its
// notifications due or waiting for their window (pending), as
// parley_push_registrations and parley_push_pending.
func (m *Metrics) CountPush(registrations, pending func() int) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parley_push_registrations", Help: "Devices registered for push notifications, as the push role knows them.",
	}, func() float64 { return float64(registrations()) }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parley_push_pending", Help: "Push notifications due or waiting for their coalescing window (or a retry).",
	}, func() float64 { return float64(pending()) }))
}

// WatchDisk exports the free space of the data directory's file system
// (free, in bytes), PARLEY_DISK_RESERVE (reserve) and whether the free
// space is below it (low), as parley_disk_free_bytes,
// parley_disk_reserve_bytes and parley_disk_low.
func (m *Metrics) WatchDisk(free func() uint64, reserve uint64, low func() bool) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parley_disk_free_bytes", Help: "Free space of the file system holding the data directory, when last measured (every second).",
	}, func() float64 { return float64(free()) }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parley_disk_reserve_bytes", Help: "PARLEY_DISK_RESERVE: below this much free space in the data directory the node refuses writes.",
	}, func() float64 { return float64(reserve) }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parley_disk_low", Help: "1 while the data directory's free space is below PARLEY_DISK_RESERVE and the node refuses writes, else 0.",
	}, func() float64 {
		if low() {
			return 1
		}
		return 0
	}))
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
