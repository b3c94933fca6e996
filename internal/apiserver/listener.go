package apiserver

import (
	"net"
	"sync/atomic"
)

// MaxConnections is the cap on the API server's open client connections
// for a process allowed nofile descriptors: half of them, so that a flood
// of idle connections leaves etcd, containerd and the node agent the
// descriptors they need (at most 50,000, at least 256).
func MaxConnections(nofile uint64) int {
	n := nofile / 2
	return int(min(max(n, 256), 50000))
}

// LimitListener accepts at most max connections at once; past that, a new
// connection is closed at once (the client sees a reset and retries)
// instead of exhausting the process's file descriptors.
func LimitListener(ln net.Listener, max int) net.Listener {
	return &limitListener{Listener: ln, max: int64(max)}
}

type limitListener struct {
	net.Listener
	max    int64
	active atomic.Int64
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.active.Add(1) > l.max {
			l.active.Add(-1)
			_ = c.Close()
			continue
		}
		return &countedConn{Conn: c, l: l}, nil
	}
}

type countedConn struct {
	net.Conn
	l      *limitListener
	closed atomic.Bool
}

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.active.Add(-1)
	}
	return c.Conn.Close()
}
