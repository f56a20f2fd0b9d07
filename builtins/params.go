package builtins

import (
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/nkscript/nkscript/internal/quote"
	"go.starlark.net/starlark"
)

// The parameter types builtins unpack their arguments into (see
// unpackArgs). An optional parameter whose None means "the default" is
// declared with "??", so that None never reaches Unpack.

// unpackString is v as a string, with UnpackArgs's error for a value of
// another type.
func unpackString(v starlark.Value) (string, error) {
	s, ok := v.(starlark.String)
	if !ok {
		return "", fmt.Errorf("got %s, want string", v.Type())
	}
	return string(s), nil
}

// netnsArg is a namespace: host or a netns() value.
type netnsArg struct{ ns *Netns }

func (a *netnsArg) Unpack(v starlark.Value) error {
	switch v := v.(type) {
	case *Netns:
		a.ns = v
		return nil
	case starlark.NoneType:
		return badParam("%s is None; pass host or a netns")
	case starlark.String:
		return badParam("%s=%q is a string; pass the namespace value returned by netns(%q) (or host)", string(v), string(v))
	}
	return badParam("%s must be a netns, not %s", describeValue(v))
}

// or returns the namespace, or def when the argument was left out.
func (a *netnsArg) or(def *Netns) *Netns {
	if a.ns == nil {
		return def
	}
	return a.ns
}

// mtuArg is an MTU, 68..65535; 0 when left out.
type mtuArg int

func (a *mtuArg) Unpack(v starlark.Value) error {
	i, ok := v.(starlark.Int)
	if !ok {
		return badArg("mtu must be an int, not %s", describeValue(v))
	}
	n, ok := i.Int64()
	if !ok || n < 68 || n > 65535 {
		return badArg("mtu=%s is out of range; use 68..65535", i)
	}
	*a = mtuArg(n)
	return nil
}

// portArg is a TCP or UDP port, 1..65535.
type portArg int

func (a *portArg) Unpack(v starlark.Value) error {
	i, ok := v.(starlark.Int)
	n, ok2 := i.Int64()
	if !ok || !ok2 || n < 1 || n > 65535 {
		return badArg("port=%s is not a port number 1..65535", v)
	}
	*a = portArg(n)
	return nil
}

// durationArg is a positive duration: "1s", "250ms", or a number of
// seconds up to a day. Set it to the default before unpacking.
type durationArg time.Duration

func (a *durationArg) Unpack(v starlark.Value) error {
	var d time.Duration
	switch x := v.(type) {
	case starlark.String:
		var err error
		d, err = time.ParseDuration(string(x))
		if err != nil {
			return badParam("%s=%q is not a duration; write it like \"1s\" or \"250ms\"", string(x))
		}
	case starlark.Int:
		n, ok := x.Int64()
		if !ok || n > 86400 || n < -86400 {
			return badParam("%s=%s seconds is out of range; use up to 86400", x)
		}
		d = time.Duration(n) * time.Second
	case starlark.Float:
		if math.IsNaN(float64(x)) || float64(x) > 86400 {
			return badParam("%s=%v seconds is not usable", x)
		}
		d = time.Duration(float64(x) * float64(time.Second))
	default:
		return badParam("%s must be a duration string like \"1s\", not %s", describeValue(v))
	}
	if d <= 0 {
		return badParam("%s=%s must be positive", v)
	}
	*a = durationArg(d)
	return nil
}

// addrArg is an IP address without prefix length. With orEmpty set, ""
// means the argument was left out.
type addrArg struct {
	a       netip.Addr
	orEmpty bool
}

func (a *addrArg) Unpack(v starlark.Value) error {
	s, err := unpackString(v)
	if err != nil {
		return err
	}
	if s == "" && a.orEmpty {
		return nil
	}
	return a.parse(s)
}

func (a *addrArg) parse(s string) error {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		if p, perr := netip.ParsePrefix(s); perr == nil {
			return badParam("%s %q is a prefix; give the address alone, like %q", s, p.Addr().String())
		}
		return badParam("%s %q is not a valid IP address", s)
	}
	a.a = addr
	return nil
}

// gatewayArg is the address of a next hop, given as a string.
type gatewayArg struct{ addrArg }

func (a *gatewayArg) Unpack(v starlark.Value) error {
	s, ok := v.(starlark.String)
	if !ok {
		return badParam("%s must be an address string, not %s", describeValue(v))
	}
	return a.parse(string(s))
}

// cidrArg is an interface address with its prefix length, "10.0.0.1/24";
// the host bits stay.
type cidrArg netip.Prefix

func (a *cidrArg) Unpack(v starlark.Value) error {
	s, err := unpackString(v)
	if err != nil {
		return err
	}
	p, err := parsePrefix("address", s)
	if err != nil {
		return badArg("%s", err)
	}
	*a = cidrArg(p)
	return nil
}

// parsePrefix parses "10.0.0.1/24" (the address keeps its host bits);
// what names the argument in errors.
func parsePrefix(what, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if _, aerr := netip.ParseAddr(s); aerr == nil && !strings.Contains(s, "%") {
			return netip.Prefix{}, fmt.Errorf("%s %q has no prefix length; write it like \"%s/24\"", what, s, s)
		}
		return netip.Prefix{}, fmt.Errorf("%s %q is not a valid CIDR address; write it like \"10.0.0.1/24\" or \"fd00::1/64\"", what, s)
	}
	return p, nil
}

// sourceArg is the source prefix of a policy: a prefix without host
// bits, or an address for its /32 or /128.
type sourceArg netip.Prefix

func (a *sourceArg) Unpack(v starlark.Value) error {
	prefix, err := unpackPrefix(v, func(s string, addr netip.Addr) (netip.Prefix, error) {
		return netip.PrefixFrom(addr, addr.BitLen()), nil
	})
	*a = sourceArg(prefix)
	return err
}

// unpackPrefix is v as a prefix without host bits; bare says what an
// address without a length stands for, or why it cannot be.
func unpackPrefix(v starlark.Value, bare func(s string, addr netip.Addr) (netip.Prefix, error)) (netip.Prefix, error) {
	s, err := unpackString(v)
	if err != nil {
		return netip.Prefix{}, err
	}
	prefix, err := netip.ParsePrefix(s)
	if err != nil {
		addr, aerr := netip.ParseAddr(s)
		if aerr != nil {
			return netip.Prefix{}, badParam("%s=%q is not a prefix like \"192.168.100.5/32\" or an address", s)
		}
		if prefix, err = bare(s, addr); err != nil {
			return netip.Prefix{}, err
		}
	}
	if prefix.Masked() != prefix {
		return netip.Prefix{}, badParam("%s=%q has host bits set; did you mean %q?", s, prefix.Masked().String())
	}
	return prefix, nil
}

// typedArg is an argument that must be a value of type T; what
// describes it in errors, like "a link (e.g. pair.primary)".
type typedArg[T starlark.Value] struct {
	v    T
	what string
}

func (a *typedArg[T]) Unpack(v starlark.Value) error {
	x, ok := v.(T)
	if !ok {
		return badParam("%s must be %s, not %s", a.what, describeValue(v))
	}
	a.v = x
	return nil
}

// linkArg is a link.
type linkArg = typedArg[*Link]

// programArg is a loaded program.
type programArg = typedArg[*Program]

// prefixArg is the prefix of a policy: it must say its length, so that
// "10.10.1.0" is not silently one address.
type prefixArg netip.Prefix

func (a *prefixArg) Unpack(v starlark.Value) error {
	prefix, err := unpackPrefix(v, func(s string, addr netip.Addr) (netip.Prefix, error) {
		return netip.Prefix{}, badParam("%s=%q has no prefix length; %s", s, suggestLengths(addr))
	})
	*a = prefixArg(prefix)
	return err
}

// IsValid says whether the argument was given.
func (a prefixArg) IsValid() bool { return netip.Prefix(a).IsValid() }

// suggestLengths says how to write addr with a prefix length: its
// trailing zero bytes suggest a subnet, every address is its own /32 or
// /128.
func suggestLengths(addr netip.Addr) string {
	one := netip.PrefixFrom(addr, addr.BitLen()).String()
	b := addr.AsSlice()
	bits := len(b) * 8
	for bits > 0 && b[bits/8-1] == 0 {
		bits -= 8
	}
	if bits == len(b)*8 || bits == 0 {
		return fmt.Sprintf("write %q for the one address", one)
	}
	subnet := netip.PrefixFrom(addr, bits).String()
	return fmt.Sprintf("write %q for the subnet or %q for the one address", subnet, one)
}

// ipProtoArg is the IP protocol a policy matches, by name; 0 is any.
type ipProtoArg uint8

// ipProtos are the protocols a policy can name, by number.
var ipProtos = map[string]uint8{"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "sctp": 132}

func (a *ipProtoArg) Unpack(v starlark.Value) error {
	s, err := unpackString(v)
	if err != nil {
		return err
	}
	n, ok := ipProtos[s]
	if !ok {
		return badParam("%s=%q is not a protocol a policy can match; use %s", s, quote.Or(slices.Sorted(maps.Keys(ipProtos))))
	}
	*a = ipProtoArg(n)
	return nil
}

// protoName is the name of an IP protocol, or its number.
func protoName(n uint8) string {
	for name, m := range ipProtos {
		if m == n {
			return name
		}
	}
	return fmt.Sprint(n)
}

// hasPorts says whether the protocol's packets have ports.
func hasPorts(n uint8) bool { return n == 6 || n == 17 || n == 132 }

// protoFits says whether the protocol is one of the family's: ICMP is
// IPv4's, ICMPv6 IPv6's.
func protoFits(n uint8, v4 bool) bool { return !(n == 1 && !v4) && !(n == 58 && v4) }
