module github.com/parley-chat/parley

go 1.26.8

replace github.com/gocql/gocql => github.com/scylladb/gocql v1.15.0
