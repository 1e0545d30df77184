// The system tables gocql reads when it connects: local, peers, schema.

package cqlfake

import (
	"crypto/rand"
	"fmt"
	"net"

	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// The system tables gocql reads when it connects and when it refreshes
// its view of the ring and the schema: system.local (this node: its
// partitioner, tokens, data centre, host id, schema version),
// system.peers (the other nodes: none) and system_schema.keyspaces (the
// replication of each keyspace, for the token-aware replica map). Found by
// logging every statement a gocql session sends while connecting,
// creating the schema and running the history conformance suite. Also
// system_schema.columns (the columns of every table created or altered
// after the system tables), which scyllastore's migrations read.
var systemSchema = []string{
	`CREATE KEYSPACE system WITH replication = {'class': 'LocalStrategy'}`,
	`CREATE KEYSPACE system_schema WITH replication = {'class': 'LocalStrategy'}`,
	`CREATE TABLE system.local (
		key text PRIMARY KEY, bootstrapped text, broadcast_address inet,
		cluster_name text, cql_version text, data_center text, host_id uuid,
		listen_address inet, native_protocol_version text, partitioner text,
		rack text, release_version text, rpc_address inet,
		schema_version uuid, tokens set<text>)`,
	`CREATE TABLE system.peers (
		peer inet PRIMARY KEY, data_center text, host_id uuid,
		preferred_ip inet, rack text, release_version text,
		rpc_address inet, schema_version uuid, tokens set<text>)`,
	`CREATE TABLE system_schema.keyspaces (
		keyspace_name text PRIMARY KEY, durable_writes boolean,
		replication map<text, text>)`,
	// Read by scyllastore's migrations, not by gocql: whether a column
	// exists before an ALTER TABLE ... ADD.
	`CREATE TABLE system_schema.columns (
		keyspace_name text, table_name text, column_name text,
		kind text, position int, type text,
		PRIMARY KEY ((keyspace_name), table_name, column_name))`,
}

// DataCenter and Rack are where the fake node says it is.
const (
	DataCenter = "datacenter1"
	Rack       = "rack1"
)

func newUUID() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return b
}

// newDB creates the data of a fresh node listening on ip.
func newDB(ip net.IP) (*db, error) {
	d := &db{keyspaces: map[string]*keyspace{}, schemaVer: newUUID()}
	for _, q := range systemSchema {
		st, err := parse(q)
		if err != nil {
			return nil, fmt.Errorf("system schema: %w", err)
		}
		if _, err := d.execute(st, execOptions{}); err != nil {
			return nil, fmt.Errorf("system schema: %w", err)
		}
	}
	for _, ks := range []string{"system", "system_schema"} {
		if err := d.recordKeyspace(ks, true, map[string]string{"class": "org.apache.cassandra.locator.LocalStrategy"}); err != nil {
			return nil, err
		}
	}
	addr := ip.To4()
	if addr == nil {
		addr = ip
	}
	st, err := parse(`INSERT INTO system.local (key, bootstrapped, broadcast_address,
		cluster_name, cql_version, data_center, host_id, listen_address,
		native_protocol_version, partitioner, rack, release_version,
		rpc_address, schema_version, tokens)
		VALUES ('local', 'COMPLETED', ?, 'cqlfake', '3.4.5', ?, ?, ?, '4',
		'org.apache.cassandra.dht.Murmur3Partitioner', ?, '3.0.8', ?, ?,
		{'-9223372036854775808'})`)
	if err != nil {
		return nil, err
	}
	v := func(b []byte) *primitive.Value { return primitive.NewValue(b) }
	// The single token owns the whole ring, so every routing key maps to
	// this node. release_version 3.0.8 is what ScyllaDB reports; it makes
	// gocql read system_schema rather than the pre-3.0 tables.
	_, err = d.execute(st, execOptions{values: []*primitive.Value{
		v(addr), v([]byte(DataCenter)), v(newUUID()), v(addr), v([]byte(Rack)), v(addr), v(d.schemaVer),
	}})
	if err != nil {
		return nil, fmt.Errorf("system.local: %w", err)
	}
	return d, nil
}
