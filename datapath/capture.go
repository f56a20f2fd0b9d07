package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/nkscript/nkscript/internal/pcapng"
	"golang.org/x/sys/unix"
)

// ErrNoDevice is wrapped by the error of a capture on a host device that
// does not exist.
var ErrNoDevice = errors.New("no such device")

// CaptureSpec says what a Capture records.
type CaptureSpec struct {
	// Links are lab devices, in any of the lab's namespaces.
	Links []*Link
	// Host is the namespace HostDevices are in (the Lab sets it).
	Host *Netns
	// HostDevices are devices of the host namespace the lab did not
	// create, by name. The capture only reads them.
	HostDevices []string
	// Pcap, if not "", is the pcapng file the capture writes: an
	// interface per device, named "ns/dev", and every packet in full.
	Pcap string
}

// Capture records the packets devices send and receive, like tcpdump -i
// DEV, through a packet socket per device in the device's namespace. It
// records from the moment it is started until it is closed, on one
// timeline: the kernel's receive timestamps.
type Capture struct {
	ifaces []*captureIface

	mu      sync.Mutex
	packets []Packet
	stopped bool
	wg      sync.WaitGroup
	pcap    *pcapng.Writer
	file    *os.File
	pcapErr error
}

// captureIface is one device a Capture reads.
type captureIface struct {
	link  *Link // nil for a host device the lab did not create
	ns    *Netns
	dev   string
	name  string // "ns/dev"
	index int
	fd    int
	// l2 is the length of the link-layer header in front of the network
	// header: 14 on Ethernet devices, 0 on devices without one (netkit l3).
	l2   int
	pcap int // interface number in the pcapng file
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// StartCapture starts a capture; the caller closes it.
func StartCapture(s CaptureSpec) (*Capture, error) {
	c := &Capture{}
	for _, k := range s.Links {
		c.ifaces = append(c.ifaces, &captureIface{link: k, ns: k.ns, dev: k.name, name: k.ns.name + "/" + k.name, index: k.index, fd: -1})
	}
	for _, dev := range s.HostDevices {
		var index int
		err := s.Host.Do(func() error {
			ifc, err := net.InterfaceByName(dev)
			if err == nil {
				index = ifc.Index
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("capture on %s in the host namespace: %w (ip link lists the host's devices)", dev, ErrNoDevice)
		}
		c.ifaces = append(c.ifaces, &captureIface{ns: s.Host, dev: dev, name: "host/" + dev, index: index, fd: -1})
	}
	for _, ifc := range c.ifaces {
		if err := ifc.open(); err != nil {
			c.closeFDs()
			return nil, err
		}
	}
	if s.Pcap != "" {
		if err := c.createPcap(s.Pcap); err != nil {
			c.closeFDs()
			return nil, err
		}
	}
	for _, ifc := range c.ifaces {
		c.wg.Go(func() { c.read(ifc) })
	}
	return c, nil
}

// open opens and binds ifc's packet socket and learns its link-layer
// header from the device's hardware type.
func (ifc *captureIface) open() error {
	err := ifc.ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		ifc.fd = fd
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.index})
	})
	if err == nil {
		var sa unix.Sockaddr
		if sa, err = unix.Getsockname(ifc.fd); err == nil {
			if ll, ok := sa.(*unix.SockaddrLinklayer); ok && (ll.Hatype == unix.ARPHRD_ETHER || ll.Hatype == unix.ARPHRD_LOOPBACK) {
				ifc.l2 = 14
			}
		}
	}
	if err == nil {
		err = unix.SetsockoptInt(ifc.fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}
	if err == nil {
		// Wake up the reader now and then to notice Close.
		err = unix.SetsockoptTimeval(ifc.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50000})
	}
	if err != nil {
		return fmt.Errorf("capture on %s in namespace %s: %w", ifc.dev, ifc.ns.name, err)
	}
	return nil
}

// createPcap creates the pcapng file and describes every device in it.
func (c *Capture) createPcap(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	w, err := pcapng.NewWriter(f)
	for _, ifc := range c.ifaces {
		if err != nil {
			break
		}
		lt := pcapng.LinkTypeRaw
		if ifc.l2 > 0 {
			lt = pcapng.LinkTypeEthernet
		}
		ifc.pcap, err = w.AddInterface(ifc.name, lt, 0)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("capture: write %s: %w", path, err)
	}
	c.file, c.pcap = f, w
	return nil
}

func (c *Capture) read(ifc *captureIface) {
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(16))
	for {
		c.mu.Lock()
		stopped := c.stopped
		c.mu.Unlock()
		if stopped {
			return
		}
		n, oobn, _, from, err := unix.Recvmsg(ifc.fd, buf, oob, unix.MSG_TRUNC)
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
		data := buf[:min(n, len(buf))]
		p := parsePacket(htons(ll.Protocol), data[min(ifc.l2, len(data)):])
		p.Len = max(n-ifc.l2, 0)
		p.Outgoing = ll.Pkttype == unix.PACKET_OUTGOING
		p.Dev = ifc.name
		p.Time = timestamp(oob[:oobn])
		c.mu.Lock()
		c.packets = append(c.packets, p)
		if c.pcap != nil && c.pcapErr == nil {
			c.pcapErr = c.pcap.WritePacket(ifc.pcap, p.Time, data, n)
		}
		c.mu.Unlock()
	}
}

// timestamp is the kernel's receive time in a SCM_TIMESTAMPNS control
// message, or now.
func timestamp(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
				sec, nsec := int64(binary.NativeEndian.Uint64(m.Data)), int64(binary.NativeEndian.Uint64(m.Data[8:]))
				return time.Unix(sec, nsec)
			}
		}
	}
	return time.Now()
}

// Devices names the devices captured on, "ns/dev" each, in the order
// given.
func (c *Capture) Devices() []string {
	var names []string
	for _, ifc := range c.ifaces {
		names = append(names, ifc.name)
	}
	return names
}

// onAny reports whether the capture reads one of links.
func (c *Capture) onAny(links []*Link) bool {
	return slices.ContainsFunc(c.ifaces, func(ifc *captureIface) bool {
		return ifc.link != nil && slices.Contains(links, ifc.link)
	})
}

// Packets returns the packets recorded so far in the order of their
// timestamps, of all devices on one timeline. The packet socket sees a
// packet shortly after the device does; wait for Settle before counting
// packets just sent.
func (c *Capture) Packets() []Packet {
	c.mu.Lock()
	ps := append([]Packet(nil), c.packets...)
	c.mu.Unlock()
	slices.SortStableFunc(ps, func(a, b Packet) int { return a.Time.Compare(b.Time) })
	return ps
}

// Settle waits until no packet has arrived for quiet and none waits in a
// socket for the reader, or until max has passed, so that counts include
// packets still in flight: on a busy machine the reader may not have run
// for longer than quiet.
func (c *Capture) Settle(quiet, max time.Duration) {
	end := time.Now().Add(max)
	last := -1
	for time.Now().Before(end) {
		c.mu.Lock()
		n := len(c.packets)
		c.mu.Unlock()
		if n == last && !c.queued() {
			return
		}
		last = n
		time.Sleep(quiet)
	}
}

// queued reports whether a packet waits in one of the capture's sockets.
func (c *Capture) queued() bool {
	for _, ifc := range c.ifaces {
		if n, err := unix.IoctlGetInt(ifc.fd, unix.SIOCINQ); err == nil && n > 0 {
			return true
		}
	}
	return false
}

// Close stops the capture and closes its pcapng file, reporting an
// error writing it. It is idempotent.
func (c *Capture) Close() error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	c.mu.Unlock()
	c.wg.Wait()
	err := c.closeFDs()
	if c.file != nil {
		err = errors.Join(err, c.pcapErr, c.file.Close())
		if err != nil {
			err = fmt.Errorf("capture: write %s: %w", c.file.Name(), err)
		}
	}
	return err
}

func (c *Capture) closeFDs() error {
	var errs []error
	for _, ifc := range c.ifaces {
		if ifc.fd >= 0 {
			errs = append(errs, unix.Close(ifc.fd))
			ifc.fd = -1
		}
	}
	return errors.Join(errs...)
}

// standInIfaces are the devices of a capture that reads nothing (the
// recorder's).
func standInIfaces(s CaptureSpec) []*captureIface {
	var ifcs []*captureIface
	for _, k := range s.Links {
		ifcs = append(ifcs, &captureIface{link: k, ns: k.ns, dev: k.name, name: k.ns.name + "/" + k.name, fd: -1})
	}
	for _, dev := range s.HostDevices {
		ifcs = append(ifcs, &captureIface{ns: s.Host, dev: dev, name: "host/" + dev, fd: -1})
	}
	return ifcs
}
