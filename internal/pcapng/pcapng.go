// Package pcapng writes and reads capture files in the pcapng format
// (draft-ietf-opsawg-pcapng): one Section Header Block, an Interface
// Description Block per interface and Enhanced Packet Blocks, little
// endian, timestamps in nanoseconds. It writes what tcpdump, tshark and
// Wireshark read; its reader reads what it writes, for tests.
package pcapng

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// LinkType is the link-layer header type of an interface's packets
// (https://www.tcpdump.org/linktypes.html).
type LinkType uint16

// Link types nkscript's captures produce.
const (
	// LinkTypeEthernet: packets start with an Ethernet header.
	LinkTypeEthernet LinkType = 1
	// LinkTypeRaw: packets start with an IPv4 or IPv6 header.
	LinkTypeRaw LinkType = 101
)

// Block types and option codes used.
const (
	blockSHB = 0x0A0D0D0A
	blockIDB = 0x00000001
	blockEPB = 0x00000006

	byteOrderMagic = 0x1A2B3C4D

	optEnd       = 0
	optIfName    = 2
	optIfTsresol = 9
)

var le = binary.LittleEndian

// Writer writes one section of a pcapng file.
type Writer struct {
	w      io.Writer
	ifaces int
}

// NewWriter writes the Section Header Block to w.
func NewWriter(w io.Writer) (*Writer, error) {
	body := make([]byte, 16)
	le.PutUint32(body[0:], byteOrderMagic)
	le.PutUint16(body[4:], 1) // major version
	le.PutUint16(body[6:], 0) // minor version
	le.PutUint64(body[8:], ^uint64(0))
	if err := writeBlock(w, blockSHB, body); err != nil {
		return nil, err
	}
	return &Writer{w: w}, nil
}

// AddInterface writes an Interface Description Block named name and
// returns the interface's number for WritePacket. snaplen 0 means no limit.
func (w *Writer) AddInterface(name string, lt LinkType, snaplen uint32) (int, error) {
	body := make([]byte, 8)
	le.PutUint16(body[0:], uint16(lt))
	le.PutUint32(body[4:], snaplen)
	body = appendOption(body, optIfName, []byte(name))
	body = appendOption(body, optIfTsresol, []byte{9}) // 10^-9 s
	body = appendOption(body, optEnd, nil)
	if err := writeBlock(w.w, blockIDB, body); err != nil {
		return 0, err
	}
	w.ifaces++
	return w.ifaces - 1, nil
}

// WritePacket writes an Enhanced Packet Block: data as captured on
// interface iface at ts, of a packet origLen bytes long on the wire.
func (w *Writer) WritePacket(iface int, ts time.Time, data []byte, origLen int) error {
	if iface < 0 || iface >= w.ifaces {
		return fmt.Errorf("pcapng: interface %d was not added", iface)
	}
	origLen = max(origLen, len(data))
	ns := uint64(ts.UnixNano())
	body := make([]byte, 20, 20+pad4(len(data)))
	le.PutUint32(body[0:], uint32(iface))
	le.PutUint32(body[4:], uint32(ns>>32))
	le.PutUint32(body[8:], uint32(ns))
	le.PutUint32(body[12:], uint32(len(data)))
	le.PutUint32(body[16:], uint32(origLen))
	body = append(body, data...)
	body = append(body, make([]byte, pad4(len(data))-len(data))...)
	return writeBlock(w.w, blockEPB, body)
}

func pad4(n int) int { return (n + 3) &^ 3 }

func appendOption(b []byte, code uint16, v []byte) []byte {
	b = le.AppendUint16(b, code)
	b = le.AppendUint16(b, uint16(len(v)))
	b = append(b, v...)
	return append(b, make([]byte, pad4(len(v))-len(v))...)
}

func writeBlock(w io.Writer, typ uint32, body []byte) error {
	n := uint32(12 + len(body))
	b := make([]byte, 0, n)
	b = le.AppendUint32(b, typ)
	b = le.AppendUint32(b, n)
	b = append(b, body...)
	b = le.AppendUint32(b, n)
	_, err := w.Write(b)
	return err
}

// Interface is what an Interface Description Block says.
type Interface struct {
	Name     string
	LinkType LinkType
	SnapLen  uint32
}

// Packet is what an Enhanced Packet Block says.
type Packet struct {
	Interface int
	Time      time.Time
	Data      []byte
	OrigLen   int
}

// File is a pcapng section read back.
type File struct {
	Interfaces []Interface
	Packets    []Packet
}

// ErrFormat is wrapped by the errors of Read for input that is not a
// pcapng section as Writer writes it.
var ErrFormat = errors.New("pcapng: bad format")

// Read reads one little-endian section with nanosecond timestamps, as
// Writer writes it. Blocks of other types are skipped.
func Read(b []byte) (*File, error) {
	f := &File{}
	first := true
	for len(b) > 0 {
		if len(b) < 12 {
			return nil, fmt.Errorf("%w: truncated block header", ErrFormat)
		}
		typ, n := le.Uint32(b), le.Uint32(b[4:])
		if n < 12 || n%4 != 0 || uint64(n) > uint64(len(b)) || le.Uint32(b[n-4:]) != n {
			return nil, fmt.Errorf("%w: block length %d", ErrFormat, n)
		}
		body := b[8 : n-4]
		b = b[n:]
		if first != (typ == blockSHB) {
			return nil, fmt.Errorf("%w: a section header must come first, and only once", ErrFormat)
		}
		first = false
		var err error
		switch typ {
		case blockSHB:
			if len(body) < 16 || le.Uint32(body) != byteOrderMagic {
				err = fmt.Errorf("%w: not a little-endian section header", ErrFormat)
			}
		case blockIDB:
			err = f.readIDB(body)
		case blockEPB:
			err = f.readEPB(body)
		}
		if err != nil {
			return nil, err
		}
	}
	if first {
		return nil, fmt.Errorf("%w: empty", ErrFormat)
	}
	return f, nil
}

func (f *File) readIDB(body []byte) error {
	if len(body) < 8 {
		return fmt.Errorf("%w: short interface block", ErrFormat)
	}
	ifc := Interface{LinkType: LinkType(le.Uint16(body)), SnapLen: le.Uint32(body[4:])}
	opts := body[8:]
	for len(opts) >= 4 {
		code, l := le.Uint16(opts), int(le.Uint16(opts[2:]))
		if code == optEnd {
			break
		}
		if 4+pad4(l) > len(opts) {
			return fmt.Errorf("%w: option %d overruns its block", ErrFormat, code)
		}
		v := opts[4 : 4+l]
		switch {
		case code == optIfName:
			ifc.Name = string(v)
		case code == optIfTsresol && (l != 1 || v[0] != 9):
			return fmt.Errorf("%w: timestamp resolution is not nanoseconds", ErrFormat)
		}
		opts = opts[4+pad4(l):]
	}
	f.Interfaces = append(f.Interfaces, ifc)
	return nil
}

func (f *File) readEPB(body []byte) error {
	if len(body) < 20 {
		return fmt.Errorf("%w: short packet block", ErrFormat)
	}
	p := Packet{Interface: int(le.Uint32(body)), OrigLen: int(le.Uint32(body[16:]))}
	if p.Interface >= len(f.Interfaces) {
		return fmt.Errorf("%w: packet on undeclared interface %d", ErrFormat, p.Interface)
	}
	ns := uint64(le.Uint32(body[4:]))<<32 | uint64(le.Uint32(body[8:]))
	p.Time = time.Unix(0, int64(ns))
	caplen := uint64(le.Uint32(body[12:]))
	if 20+caplen > uint64(len(body)) {
		return fmt.Errorf("%w: packet data overruns its block", ErrFormat)
	}
	p.Data = append([]byte(nil), body[20:20+caplen]...)
	f.Packets = append(f.Packets, p)
	return nil
}
