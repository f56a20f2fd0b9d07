package kernelcheck

import (
	"encoding/binary"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// Netkit link info attributes (include/uapi/linux/if_link.h).
const (
	iflaNetkitHeadroom = 8
	iflaNetkitTailroom = 9
)

// NetkitRoom reads the headroom and tailroom the kernel reports for the
// netkit device name in the calling thread's network namespace. It
// decodes the RTM_GETLINK dump itself, with no netlink library, so that a
// test can check nkscript's netlink requests against an independent
// reader where iproute2 does not know the attributes yet (6.15 does not).
// ok is false when the kernel reports neither attribute.
func NetkitRoom(name string) (headroom, tailroom uint16, ok bool, err error) {
	rib, err := syscall.NetlinkRIB(syscall.RTM_GETLINK, syscall.AF_UNSPEC)
	if err != nil {
		return 0, 0, false, fmt.Errorf("read links: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return 0, 0, false, fmt.Errorf("read links: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWLINK || len(m.Data) < unix.SizeofIfInfomsg {
			continue
		}
		attrs := attributes(m.Data[unix.SizeofIfInfomsg:])
		if ifname := attrs[unix.IFLA_IFNAME]; len(ifname) == 0 || string(ifname[:len(ifname)-1]) != name {
			continue
		}
		data := attributes(attributes(attrs[unix.IFLA_LINKINFO])[unix.IFLA_INFO_DATA])
		h, hok := data[iflaNetkitHeadroom]
		t, tok := data[iflaNetkitTailroom]
		if !hok && !tok {
			return 0, 0, false, nil
		}
		return u16(h), u16(t), true, nil
	}
	return 0, 0, false, fmt.Errorf("no link %q", name)
}

// attributes splits b into netlink attributes by type (nested flags
// cleared); a later attribute of a type replaces an earlier one.
func attributes(b []byte) map[uint16][]byte {
	out := map[uint16][]byte{}
	for len(b) >= unix.SizeofRtAttr {
		n := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) &^ unix.NLA_F_NESTED
		if n < unix.SizeofRtAttr || n > len(b) {
			break
		}
		out[typ] = b[unix.SizeofRtAttr:n]
		b = b[min((n+3)&^3, len(b)):]
	}
	return out
}

// u16 reads a netlink u16 or u32 attribute's value, 0 if absent.
func u16(b []byte) uint16 {
	if len(b) < 2 {
		return 0
	}
	return binary.NativeEndian.Uint16(b)
}
