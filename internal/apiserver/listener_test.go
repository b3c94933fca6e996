package apiserver

import (
	"net"
	"testing"
	"time"
)

func TestMaxConnections(t *testing.T) {
	for nofile, want := range map[uint64]int{1024: 512, 20000: 10000, 100: 256, 1 << 20: 50000} {
		if got := MaxConnections(nofile); got != want {
			t.Errorf("MaxConnections(%d) = %d, want %d", nofile, got, want)
		}
	}
}

// TestLimitListener: past the cap a connection is closed at once; once one
// closes, a new one is served again.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := LimitListener(inner, 2)
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := dial(), dial()
	defer a.Close()
	defer b.Close()
	first := <-accepted
	<-accepted
	over := dial()
	defer over.Close()
	over.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := over.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection past the cap was kept open")
	}
	select {
	case <-accepted:
		t.Fatal("a connection past the cap was handed to the server")
	default:
	}
	first.Close()
	again := dial()
	defer again.Close()
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted after one closed")
	}
}
