// Package projections is the home of Parley's read models. Each
// subpackage builds one read model from chat.events with its own consumer
// group, owns the small storage port it needs, and ships an embedded
// adapter, a production adapter and one conformance suite both must pass.
// Every projection applies an event at most once in effect, so replaying
// chat.events from offset 0 into an empty store rebuilds the same state.
package projections
