package datapath

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"unicode/utf8"

	"github.com/nkscript/nkscript/bpf"
)

// Drop is one packet the kernel dropped in a namespace of the lab, as the
// drop monitor saw it.
type Drop struct {
	// Seq numbers the drops of a run from 1, in the order they were read.
	Seq int
	// Netns is the inode number of the namespace the packet died in.
	Netns uint32
	// Ifindex is the device the packet was on, in that namespace; 0 if
	// it had none (a socket's packet).
	Ifindex int
	// Location is the address in the kernel that freed the packet.
	Location uint64
	// Func is the kernel function at Location ("" if unknown or not
	// looked up yet: ExplainDrop looks it up).
	Func string
	// Reason is the kernel's drop reason without SKB_DROP_REASON_
	// ("TC_EGRESS", "NO_SOCKET"), or its number if the kernel does not
	// name it.
	Reason string
	// Ethertype is the packet's link-layer protocol (0x0800 for IPv4).
	Ethertype uint16
	// L4 is the IP protocol number (6 for TCP), 0 if not IP.
	L4 uint8
	// Src and Dst are the packet's IP addresses, invalid if not IP.
	Src, Dst netip.Addr
	// Sport and Dport are its TCP or UDP ports.
	Sport, Dport uint16
	// reason is the kernel's number for Reason.
	reason uint32
	// progID is the ID of the program that returned the drop verdict,
	// where fexit tells (dropmon_fexit.go); 0 if unknown.
	progID uint32
}

// Proto names the packet's protocol: "tcp", "udp", "icmp", "icmpv6",
// another IP protocol's number, "arp", or the ethertype.
func (d *Drop) Proto() string {
	switch {
	case !d.Src.IsValid() && d.Ethertype == 0x0806:
		return "arp"
	case !d.Src.IsValid():
		return fmt.Sprintf("ethertype 0x%04x", d.Ethertype)
	}
	switch d.L4 {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "icmpv6"
	}
	return fmt.Sprintf("ip proto %d", d.L4)
}

// decodeDrop reads one record of the monitor's ring buffer (struct drop
// in bpf/dropmon.c): little-endian fields, addresses as on the wire.
func decodeDrop(b []byte) (Drop, error) {
	if len(b) < bpf.DropMonRecordSize {
		return Drop{}, fmt.Errorf("drop monitor: record of %d bytes, want %d", len(b), bpf.DropMonRecordSize)
	}
	le := binary.LittleEndian
	d := Drop{
		Netns:     le.Uint32(b[0:]),
		Ifindex:   int(le.Uint32(b[4:])),
		Location:  le.Uint64(b[8:]),
		reason:    le.Uint32(b[16:]),
		Ethertype: le.Uint16(b[20:]),
		L4:        b[22],
		Sport:     le.Uint16(b[56:]),
		Dport:     le.Uint16(b[58:]),
		progID:    le.Uint32(b[60:]),
	}
	switch d.Ethertype {
	case 0x0800:
		d.Src = netip.AddrFrom4([4]byte(b[24:28]))
		d.Dst = netip.AddrFrom4([4]byte(b[40:44]))
	case 0x86dd:
		d.Src = netip.AddrFrom16([16]byte(b[24:40]))
		d.Dst = netip.AddrFrom16([16]byte(b[40:56]))
	default:
		d.L4 = 0
	}
	if d.L4 != 6 && d.L4 != 17 {
		d.Sport, d.Dport = 0, 0
	}
	d.Func = recordFunc(b[64:bpf.DropMonRecordSize])
	return d, nil
}

// recordFunc reads the function name the kernel printed into a record
// ("%ps": "name" or "name [module]"); "" if it printed none or an address
// (then the name is looked up in /proc/kallsyms).
func recordFunc(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		b = b[:i]
	}
	if len(b) == 0 || bytes.HasPrefix(b, []byte("0x")) || !utf8.Valid(b) {
		return ""
	}
	return string(b)
}
