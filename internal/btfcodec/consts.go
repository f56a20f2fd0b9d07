package btfcodec

import (
	"encoding/binary"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// SetConsts writes consts into coll's constant globals (`volatile const`),
// by name, each encoded according to its variable's BTF type in coll's
// byte order. A value that does not fit its type, or a name that is not a
// constant, is an error that names the constant.
func SetConsts(coll *ebpf.CollectionSpec, consts map[string]int64) error {
	for _, name := range slices.Sorted(maps.Keys(consts)) { // deterministic errors
		v, err := constant(coll, name)
		if err != nil {
			return err
		}
		if err := setConst(v, consts[name], coll.ByteOrder); err != nil {
			return err
		}
	}
	return nil
}

// SetAddrConsts writes IP addresses into coll's constant globals typed as
// a 4- or 16-byte array (or a 4-byte integer for IPv4), in network order.
func SetAddrConsts(coll *ebpf.CollectionSpec, consts map[string]netip.Addr) error {
	for _, name := range slices.Sorted(maps.Keys(consts)) {
		v, err := constant(coll, name)
		if err != nil {
			return err
		}
		if v.Type == nil {
			return noBTF(name)
		}
		if err := setAddrConst(v, consts[name].Unmap()); err != nil {
			return err
		}
	}
	return nil
}

// constant returns coll's constant global called name.
func constant(coll *ebpf.CollectionSpec, name string) (*ebpf.VariableSpec, error) {
	v := coll.Variables[name]
	if v == nil || !v.Constant() {
		return nil, fmt.Errorf("unknown constant %q: %s", name, validConsts(coll))
	}
	return v, nil
}

func noBTF(name string) error {
	return fmt.Errorf("constant %q: the object has no BTF for it (compile with -g)", name)
}

// setAddrConst writes addr into v, which must hold an address of its
// family.
func setAddrConst(v *ebpf.VariableSpec, addr netip.Addr) error {
	var size int
	if n, ok := addrArray(v.Type.Type); ok {
		size = n
	} else if it, ok := btf.As[*btf.Int](v.Type.Type); ok && it.Size == 4 {
		size = 4
	}
	switch {
	case size == 4 && addr.Is4(), size == 16 && addr.Is6():
		v.Value = addr.AsSlice()
		return nil
	case size == 4 || size == 16:
		return fmt.Errorf("constant %q holds an IPv%d address, not %s", v.Name, ipVersion(size), addr)
	}
	return fmt.Errorf("constant %q is not an address (a 4- or 16-byte array): give it an integer", v.Name)
}

// validConsts lists coll's constants, for errors.
func validConsts(coll *ebpf.CollectionSpec) string {
	var valid []string
	for name, v := range coll.Variables {
		if v.Constant() {
			valid = append(valid, strconv.Quote(name))
		}
	}
	if len(valid) == 0 {
		return "the program has no constants"
	}
	slices.Sort(valid)
	return "valid constants are " + strings.Join(valid, ", ")
}

// setConst range-checks val against v's integer type and writes it.
// Errors name the type by its typedef (__u16), and leave v unchanged.
func setConst(v *ebpf.VariableSpec, val int64, order binary.ByteOrder) error {
	if v.Type == nil {
		return noBTF(v.Name)
	}
	typ := btf.QualifiedType(v.Type.Type)
	typeName := typ.TypeName()
	it, ok := intOf(typ)
	if !ok {
		return fmt.Errorf("constant %q: type %s cannot be set from an integer", v.Name, typeName)
	}
	if typeName == "" {
		typeName = fmt.Sprintf("a %d-byte integer", it.size)
	}
	n := fromInt64(val)
	fits, sizeOK := it.check(n)
	if !sizeOK {
		return fmt.Errorf("constant %q: %d-byte %s is not supported", v.Name, it.size, typeName)
	}
	if !fits {
		return fmt.Errorf("constant %q: %d does not fit in %s", v.Name, val, typeName)
	}
	if got := v.Size(); got != uint32(it.size) {
		return fmt.Errorf("constant %q: BTF says %d bytes but the variable has %d", v.Name, it.size, got)
	}
	buf := make([]byte, it.size)
	if !it.put(buf, n, order) {
		return fmt.Errorf("constant %q: %d-byte %s is not supported", v.Name, it.size, typeName)
	}
	v.Value = buf
	return nil
}
