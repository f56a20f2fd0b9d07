package datapath

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Server answers every TCP connection or UDP datagram on one port of a
// namespace with a fixed reply, until it is closed. It stands in for the
// services of a lab: backends behind a load balancer, a server behind a
// CNF, where a test wants to know which one answered.
type Server struct {
	ns    *Netns
	proto string
	port  int
	reply []byte

	ln     net.Listener
	pc     net.PacketConn
	served atomic.Int64
	wg     sync.WaitGroup
	once   sync.Once
	stop   chan struct{}
}

// Serve starts a server for proto ("tcp" or "udp") on port, on every
// address of ns (IPv4 and IPv6), that answers with reply. A TCP client
// gets the reply and then end of stream; a UDP client gets the reply as
// one datagram for each datagram it sends. The caller closes it.
func Serve(ns *Netns, proto string, port int, reply string) (*Server, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("serve %s: port %d is not within 1..65535", proto, port)
	}
	s := &Server{ns: ns, proto: proto, port: port, reply: []byte(reply), stop: make(chan struct{})}
	addr := fmt.Sprintf("[::]:%d", port)
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	err := ns.Do(func() error {
		var err error
		switch proto {
		case "tcp":
			s.ln, err = lc.Listen(context.Background(), "tcp", addr)
		case "udp":
			s.pc, err = lc.ListenPacket(context.Background(), "udp", addr)
		default:
			return fmt.Errorf("unknown protocol %q (want tcp or udp)", proto)
		}
		return err
	})
	if err != nil {
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, fmt.Errorf("serve %s: port %d is already in use in namespace %s", proto, port, ns.Name())
		}
		return nil, fmt.Errorf("serve %s port %d in namespace %s: %w", proto, port, ns.Name(), err)
	}
	if s.ln != nil {
		s.wg.Go(s.acceptLoop)
	} else {
		s.wg.Go(s.udpLoop)
	}
	return s, nil
}

func (s *Server) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.served.Add(1)
		s.wg.Go(func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write(s.reply)
		})
	}
}

func (s *Server) udpLoop() {
	buf := make([]byte, 65536)
	for {
		_, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		s.served.Add(1)
		s.pc.WriteTo(s.reply, from)
	}
}

// Netns is the namespace the server runs in.
func (s *Server) Netns() *Netns { return s.ns }

// Proto is "tcp" or "udp".
func (s *Server) Proto() string { return s.proto }

// Port is the port the server listens on.
func (s *Server) Port() int { return s.port }

// Served counts the connections (tcp) or datagrams (udp) answered.
func (s *Server) Served() int { return int(s.served.Load()) }

// Close stops the server and waits for its goroutines. It is idempotent.
func (s *Server) Close() error {
	s.once.Do(func() {
		if s.ln == nil && s.pc == nil {
			return // a dry run's stand-in
		}
		close(s.stop)
		if s.ln != nil {
			s.ln.Close()
		}
		if s.pc != nil {
			s.pc.Close()
		}
	})
	s.wg.Wait()
	return nil
}

// ConnectResult is the outcome of Connect.
type ConnectResult struct {
	// Reply is what the server sent back; empty if nothing arrived.
	Reply string
	// Reason says why no reply arrived ("connection refused", "timed out
	// after 1s"); empty if one did.
	Reason string
}

// Connect opens a connection (tcp) or sends one datagram (udp) from src to
// dst and returns the server's reply, reading until end of stream (tcp)
// or one datagram (udp), within timeout. A connection that fails or times
// out is not an error: Reason says what happened. Connect fails only when
// it cannot try, or when ctx is done first.
func Connect(ctx context.Context, src *Netns, proto string, dst netip.AddrPort, timeout time.Duration) (ConnectResult, error) {
	if timeout <= 0 {
		timeout = defaultProbeTimeout
	}
	if proto != "tcp" && proto != "udp" {
		return ConnectResult{}, fmt.Errorf("connect: unknown protocol %q (want tcp or udp)", proto)
	}
	deadline := time.Now().Add(timeout)
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var c net.Conn
	err := src.Do(func() error {
		var d net.Dialer
		d.SetMultipathTCP(false)
		var err error
		c, err = d.DialContext(dctx, proto, dst.String())
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return ConnectResult{}, ctx.Err()
		}
		if isTimeout(err) {
			return ConnectResult{Reason: fmt.Sprintf("timed out after %v", timeout)}, nil
		}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return ConnectResult{Reason: errno.Error()}, nil
		}
		return ConnectResult{}, fmt.Errorf("connect %s from namespace %s: %w", proto, src.Name(), err)
	}
	defer c.Close()
	defer context.AfterFunc(dctx, func() { c.SetDeadline(time.Unix(1, 0)) })()
	c.SetDeadline(deadline)
	var reply []byte
	if proto == "udp" {
		if _, err = c.Write([]byte("nkscript")); err == nil {
			buf := make([]byte, 65536)
			var n int
			n, err = c.Read(buf)
			reply = buf[:n]
		}
	} else {
		reply, err = io.ReadAll(c)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ConnectResult{}, ctx.Err()
		}
		switch {
		case isTimeout(err):
			return ConnectResult{Reason: fmt.Sprintf("no reply within %v", timeout)}, nil
		case errors.Is(err, unix.ECONNREFUSED):
			return ConnectResult{Reason: "connection refused"}, nil
		case errors.Is(err, unix.ECONNRESET):
			return ConnectResult{Reason: "connection reset"}, nil
		}
		return ConnectResult{Reason: fmt.Sprintf("receive: %v", err)}, nil
	}
	if len(reply) == 0 {
		return ConnectResult{Reason: "closed without a reply"}, nil
	}
	return ConnectResult{Reply: string(reply)}, nil
}
