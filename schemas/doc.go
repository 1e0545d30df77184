// Package schemas is Parley's public contract: the names of topics and
// consumer groups, the event, command and reply types with their JSON
// encodings, the CloudEvents 1.0 Kafka binary-mode mapping, and (as files
// beside this package) the JSON Schema of every type, the AsyncAPI document
// of the topics and the WebSocket protocol, and the OpenAPI document of the
// HTTP API.
//
// Everything here is persistent: a topic, group or event-type name that
// changes is a migration, and a published event type is never edited — a
// changed shape is a new type with a new version suffix (…v2), and
// schemas/testdata keeps a fixture of every published version that the code
// must keep decoding.
//
// The package has no state and is safe for concurrent use.
package schemas
