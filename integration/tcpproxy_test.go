package integration

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// tcpProxy forwards connections from a local port to target, and can cut the link on demand to
// play an outage of whatever sits behind it (the audit database, SpiceDB).
type tcpProxy struct {
	target string
	ln     net.Listener

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{} // both ends of every live forwarded connection
	wg    sync.WaitGroup
}

// newTCPProxy listens on 127.0.0.1 and forwards to target until tb ends.
func newTCPProxy(tb testing.TB, target string) *tcpProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("proxy listen: %v", err)
	}
	p := &tcpProxy{target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	tb.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port.
func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every current connection and resets new ones until Restore.
func (p *tcpProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		reset(c)
		delete(p.conns, c)
	}
}

// Restore forwards new connections again.
func (p *tcpProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// Close stops listening, closes every connection and waits for the forwarding goroutines.
func (p *tcpProxy) Close() {
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *tcpProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

func (p *tcpProxy) forward(client net.Conn) {
	defer p.wg.Done()
	if p.isCut() {
		reset(client)
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		reset(client)
		return
	}
	// Register both ends, unless a Cut came in while dialing.
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		reset(client)
		server.Close()
		return
	}
	p.conns[client], p.conns[server] = struct{}{}, struct{}{}
	p.mu.Unlock()

	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done // one direction ended: end both
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
	client.Close()
	server.Close()
	<-done
}

func (p *tcpProxy) isCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// reset closes c with an RST where it can, so the peer sees the failure at once.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// mustFreeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func mustFreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestTCPProxy(t *testing.T) {
	// An echo server stands in for Postgres or SpiceDB.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	p := newTCPProxy(t, ln.Addr().String())

	echo := func(c net.Conn) error {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != "ping" {
			return errors.New("echo mismatch: " + string(buf))
		}
		return nil
	}
	dial := func(t *testing.T) (net.Conn, error) {
		c, err := net.DialTimeout("tcp", p.Addr(), 2*time.Second)
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
		return c, err
	}
	mustDial := func(t *testing.T) net.Conn {
		t.Helper()
		c, err := dial(t)
		if err != nil {
			t.Fatalf("dial proxy: %v", err)
		}
		return c
	}

	t.Run("Forwards", func(t *testing.T) {
		if err := echo(mustDial(t)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("CutClosesLiveConnections", func(t *testing.T) {
		c := mustDial(t)
		if err := echo(c); err != nil {
			t.Fatal(err)
		}
		p.Cut()
		defer p.Restore()
		if err := echo(c); err == nil {
			t.Fatal("a connection that was live at Cut still echoes")
		}
	})
	t.Run("CutRefusesNewConnections", func(t *testing.T) {
		p.Cut()
		defer p.Restore()
		// The connect itself may already be reset; if it is not, nothing may come through.
		if c, err := dial(t); err == nil {
			if err := echo(c); err == nil {
				t.Fatal("a connection made during Cut echoes")
			}
		}
	})
	t.Run("RestoreForwardsAgain", func(t *testing.T) {
		p.Cut()
		p.Restore()
		if err := echo(mustDial(t)); err != nil {
			t.Fatal(err)
		}
	})
}
