package embeddedkafka

import (
	"crypto/rand"
	"net"
	"runtime"
	"sync"
)

// listenLocal listens on a Unix socket in Linux's abstract namespace,
// which has no file to clean up and goes when the process does, for the
// clients of the process that runs the broker (Broker.Dial). A produce
// request and its answer cost the process a fifth less CPU over it than
// over TCP on the loopback interface (BenchmarkProduce, BENCHMARKS.md),
// and every message Parley carries makes several requests. Elsewhere
// than Linux it returns nil, and every client dials TCP.
func listenLocal() (net.Listener, error) {
	if runtime.GOOS != "linux" {
		return nil, nil
	}
	return net.Listen("unix", "@parley-kafka-"+rand.Text())
}

// eitherListener accepts the connections of two listeners, and is
// addressed as the first: a broker serves its TCP listener and its local
// one alike, and advertises the TCP address.
type eitherListener struct {
	first    net.Listener
	second   net.Listener
	accepted chan accepted
	closed   chan struct{}
	once     sync.Once
}

type accepted struct {
	c   net.Conn
	err error
}

func newEitherListener(first, second net.Listener) *eitherListener {
	l := &eitherListener{first: first, second: second, accepted: make(chan accepted), closed: make(chan struct{})}
	go l.acceptFrom(first)
	go l.acceptFrom(second)
	return l
}

// acceptFrom hands on ln's connections until ln fails, and its failure
// unless l is closed.
func (l *eitherListener) acceptFrom(ln net.Listener) {
	for {
		c, err := ln.Accept()
		select {
		case l.accepted <- accepted{c, err}:
		case <-l.closed:
			if c != nil {
				_ = c.Close()
			}
			return
		}
		if err != nil {
			return
		}
	}
}

func (l *eitherListener) Accept() (net.Conn, error) {
	select {
	case a := <-l.accepted:
		return a.c, a.err
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *eitherListener) Close() error {
	err := net.ErrClosed
	l.once.Do(func() {
		close(l.closed)
		err = l.first.Close()
		if err2 := l.second.Close(); err == nil {
			err = err2
		}
	})
	return err
}

func (l *eitherListener) Addr() net.Addr { return l.first.Addr() }
