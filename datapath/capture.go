package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Packet is what a Capture records of one packet: enough to count and
// filter, not the payload.
type Packet struct {
	// Proto is "icmp", "icmp6", "tcp", "udp", "arp", or the IP protocol
	// or EtherType number in decimal for others.
	Proto string
	// Src and Dst are the IP addresses; invalid for non-IP packets.
	Src, Dst netip.Addr
	// Outgoing is true for packets the device transmitted, false for
	// packets it received.
	Outgoing bool
	// Len is the packet's length from the network header on.
	Len int
}

// Capture records the packets a device sends and receives, like tcpdump
// -i DEV, through a packet socket in the device's namespace. It records
// from the moment it is started until it is closed.
type Capture struct {
	link *Link
	fd   int

	mu      sync.Mutex
	packets []Packet
	stopped bool
	wg      sync.WaitGroup
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// StartCapture starts a capture on k; the caller closes it.
func StartCapture(k *Link) (*Capture, error) {
	c := &Capture{link: k, fd: -1}
	err := k.ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		c.fd = fd
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: k.index})
	})
	if err == nil {
		// Wake up the reader now and then to notice Close.
		err = unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50000})
	}
	if err != nil {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
		return nil, fmt.Errorf("capture on %s in namespace %s: %w", k.name, k.ns.Name(), err)
	}
	c.wg.Go(c.read)
	return c, nil
}

func (c *Capture) read() {
	buf := make([]byte, 128)
	for {
		c.mu.Lock()
		stopped := c.stopped
		c.mu.Unlock()
		if stopped {
			return
		}
		n, from, err := unix.Recvfrom(c.fd, buf, unix.MSG_TRUNC)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok {
			continue
		}
		p := parsePacket(htons(ll.Protocol), buf[:min(n, len(buf))])
		p.Len = n
		p.Outgoing = ll.Pkttype == unix.PACKET_OUTGOING
		c.mu.Lock()
		c.packets = append(c.packets, p)
		c.mu.Unlock()
	}
}

// parsePacket reads the addresses and protocol of a packet that starts at
// its network header.
func parsePacket(ethertype uint16, b []byte) Packet {
	var p Packet
	switch ethertype {
	case unix.ETH_P_IP:
		if len(b) < 20 {
			break
		}
		p.Src = netip.AddrFrom4([4]byte(b[12:16]))
		p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
		p.Proto = ipProtoName(b[9], false)
		return p
	case unix.ETH_P_IPV6:
		if len(b) < 40 {
			break
		}
		p.Src = netip.AddrFrom16([16]byte(b[8:24]))
		p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
		p.Proto = ipProtoName(b[6], true)
		return p
	case unix.ETH_P_ARP:
		p.Proto = "arp"
		return p
	}
	p.Proto = fmt.Sprint(ethertype)
	return p
}

func ipProtoName(proto byte, v6 bool) string {
	switch proto {
	case unix.IPPROTO_ICMP:
		return "icmp"
	case unix.IPPROTO_ICMPV6:
		return "icmp6"
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	}
	return fmt.Sprint(proto)
}

// Link is the device captured on.
func (c *Capture) Link() *Link { return c.link }

// Packets returns the packets recorded so far, in arrival order. The
// packet socket sees a packet shortly after the device does; wait for
// Settle before counting packets just sent.
func (c *Capture) Packets() []Packet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Packet(nil), c.packets...)
}

// Settle waits until no packet has arrived for quiet, or until max has
// passed, so that counts include packets still in flight.
func (c *Capture) Settle(quiet, max time.Duration) {
	end := time.Now().Add(max)
	last := -1
	for time.Now().Before(end) {
		c.mu.Lock()
		n := len(c.packets)
		c.mu.Unlock()
		if n == last {
			return
		}
		last = n
		time.Sleep(quiet)
	}
}

// Close stops the capture. It is idempotent.
func (c *Capture) Close() error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	c.mu.Unlock()
	c.wg.Wait()
	if c.fd < 0 {
		return nil
	}
	return unix.Close(c.fd)
}
