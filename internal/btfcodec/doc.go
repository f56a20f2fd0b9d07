// Package btfcodec converts between plain Go values and the bytes of BTF
// types: the keys and values of BPF maps, and the constant globals of a
// BPF object. It is pure Go: it reads types, it never talks to a kernel.
//
// Values go in as:
//
//   - integers (int64, uint64, int) for integer and enum types,
//     range-checked; bool for _Bool;
//   - IP addresses (netip.Addr, or a string) for 4- and 16-byte arrays of
//     bytes and for __be32;
//   - prefixes (netip.Prefix, or "10.0.0.0/24") for LPM trie keys, a
//     struct of a 32-bit prefixlen followed by a 4- or 16-byte array;
//   - map[string]any for structs (missing fields are zero), []any for
//     other arrays.
//
// Values come out the same way: a byte array of 4 or 16 whose field or
// typedef name says it holds an address (addr, ip, hop, nh, gw, src, dst,
// vip, saddr, daddr, __be32) as an IP string, LPM keys as prefix strings,
// structs as Fields (in declaration order). Without BTF, a key or value is
// an integer of its size.
package btfcodec
