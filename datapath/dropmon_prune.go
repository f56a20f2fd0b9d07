package datapath

import "github.com/cilium/ebpf/btf"

// pruner copies kernel types keeping only what local types name: CO-RE
// finds a local member in a kernel structure by name, looking through
// anonymous members, and then at that member's type, so a copy that
// keeps those members at their offsets, down every path the local types
// describe, relocates a program exactly as the whole BTF does.
type pruner struct {
	keep  map[btf.Type]map[int]bool // kernel structure → members kept
	seen  map[[2]btf.Type]bool      // kernel, local pairs marked
	built map[btf.Type]btf.Type     // kernel type → its copy
}

// mark keeps in kernel type k what local type l describes.
func (p *pruner) mark(k, l btf.Type) {
	k, l = bare(k), bare(l)
	if p.seen[[2]btf.Type{k, l}] {
		return
	}
	p.seen[[2]btf.Type{k, l}] = true
	switch kt := k.(type) {
	case *btf.Pointer:
		if lt, ok := l.(*btf.Pointer); ok {
			p.mark(kt.Target, lt.Target)
		}
	case *btf.Array:
		if lt, ok := l.(*btf.Array); ok {
			p.mark(kt.Type, lt.Type)
		}
	case *btf.Struct, *btf.Union:
		p.markMembers(k, members(l))
	}
}

// markMembers keeps in kernel structure k the members named as local
// ones, flattening the local anonymous members as CO-RE does.
func (p *pruner) markMembers(k btf.Type, local []btf.Member) {
	for _, lm := range local {
		if lm.Name == "" {
			p.markMembers(k, members(bare(lm.Type)))
			continue
		}
		p.markMember(k, lm.Name, lm.Type)
	}
}

// markMember keeps every member of kernel structure k named name, and
// the anonymous members that hold one, and reports whether there was
// one.
func (p *pruner) markMember(k btf.Type, name string, l btf.Type) bool {
	found := false
	for i, m := range members(k) {
		switch {
		case m.Name == name:
			p.mark(m.Type, l)
		case m.Name == "" && p.markMember(bare(m.Type), name, l):
		default:
			continue
		}
		if p.keep[k] == nil {
			p.keep[k] = map[int]bool{}
		}
		p.keep[k][i] = true
		found = true
	}
	return found
}

// build returns the copy of kernel type k: structures with the members
// marked (none if k was not marked: CO-RE never looks into it), the
// types on the way to them copied, and the rest shared.
func (p *pruner) build(k btf.Type) btf.Type {
	if c, ok := p.built[k]; ok {
		return c
	}
	switch kt := k.(type) {
	case *btf.Struct:
		c := &btf.Struct{Name: kt.Name, Size: kt.Size}
		p.built[k] = c
		c.Members = p.kept(k, kt.Members)
		return c
	case *btf.Union:
		c := &btf.Union{Name: kt.Name, Size: kt.Size}
		p.built[k] = c
		c.Members = p.kept(k, kt.Members)
		return c
	case *btf.Pointer:
		c := &btf.Pointer{}
		p.built[k] = c
		c.Target = p.build(kt.Target)
		return c
	case *btf.Array:
		c := &btf.Array{Nelems: kt.Nelems}
		p.built[k] = c
		c.Index, c.Type = p.build(kt.Index), p.build(kt.Type)
		return c
	case *btf.FuncProto:
		// A function pointer: CO-RE does not look at what it takes.
		c := &btf.FuncProto{Return: &btf.Void{}}
		p.built[k] = c
		return c
	}
	return p.buildWrapper(k)
}

// buildWrapper copies a typedef or qualifier with a copy of the type it
// wraps; other types (integers, enums, floats) are shared as they are.
func (p *pruner) buildWrapper(k btf.Type) btf.Type {
	var c btf.Type
	switch kt := k.(type) {
	case *btf.Typedef:
		t := &btf.Typedef{Name: kt.Name}
		p.built[k], c = t, t
		t.Type = p.build(kt.Type)
	case *btf.Const:
		t := &btf.Const{}
		p.built[k], c = t, t
		t.Type = p.build(kt.Type)
	case *btf.Volatile:
		t := &btf.Volatile{}
		p.built[k], c = t, t
		t.Type = p.build(kt.Type)
	case *btf.Restrict:
		t := &btf.Restrict{}
		p.built[k], c = t, t
		t.Type = p.build(kt.Type)
	case *btf.TypeTag:
		t := &btf.TypeTag{Value: kt.Value}
		p.built[k], c = t, t
		t.Type = p.build(kt.Type)
	default:
		p.built[k], c = k, k
	}
	return c
}

// kept copies the members of kernel structure k that were marked.
func (p *pruner) kept(k btf.Type, ms []btf.Member) []btf.Member {
	var out []btf.Member
	for i, m := range ms {
		if p.keep[k][i] {
			m.Type = p.build(m.Type)
			m.Tags = nil
			out = append(out, m)
		}
	}
	return out
}

// bare is t without typedefs and qualifiers, as CO-RE compares types.
func bare(t btf.Type) btf.Type {
	for {
		switch tt := t.(type) {
		case *btf.Typedef:
			t = tt.Type
		case *btf.Const:
			t = tt.Type
		case *btf.Volatile:
			t = tt.Type
		case *btf.Restrict:
			t = tt.Type
		case *btf.TypeTag:
			t = tt.Type
		default:
			return t
		}
	}
}

// members are the members of a structure or union, nil for other types.
func members(t btf.Type) []btf.Member {
	switch tt := t.(type) {
	case *btf.Struct:
		return tt.Members
	case *btf.Union:
		return tt.Members
	}
	return nil
}
