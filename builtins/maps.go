package builtins

import (
	"fmt"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
)

// Maps is the value of prog.maps: the program's BPF maps by name.
type Maps struct {
	object
	prog *Program
}

var (
	_ starlark.Mapping  = (*Maps)(nil)
	_ starlark.Iterable = (*Maps)(nil)
)

func (ms *Maps) String() string        { return fmt.Sprintf("%s.maps", ms.prog) }
func (ms *Maps) Type() string          { return "maps" }
func (ms *Maps) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: maps") }
func (ms *Maps) Len() int              { return len(ms.prog.p.MapNames()) }

// Iterate iterates over the map names, sorted.
func (ms *Maps) Iterate() starlark.Iterator {
	var names []starlark.Value
	for _, n := range ms.prog.p.MapNames() {
		names = append(names, starlark.String(n))
	}
	return starlark.NewList(names).Iterate()
}

// Get returns the map called k.
func (ms *Maps) Get(k starlark.Value) (starlark.Value, bool, error) {
	name, ok := k.(starlark.String)
	if !ok {
		return nil, false, fmt.Errorf("%s: a map name is a string, not %s", ms, describeValue(k))
	}
	m, err := ms.prog.p.Map(string(name))
	if err != nil {
		return nil, false, err
	}
	return &Map{m: m, prog: ms.prog}, true, nil
}

// Map is one BPF map of a program, as a Starlark mapping.
type Map struct {
	object
	m    *datapath.Map
	prog *Program
}

var (
	_ starlark.Mapping   = (*Map)(nil)
	_ starlark.HasSetKey = (*Map)(nil)
	_ starlark.Sequence  = (*Map)(nil)
	_ starlark.HasAttrs  = (*Map)(nil)
)

func (m *Map) String() string        { return fmt.Sprintf("%s.maps[%q]", m.prog, m.m.Name()) }
func (m *Map) Type() string          { return "map" }
func (m *Map) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: map") }

// Len counts the entries; an error reading the map counts as none.
func (m *Map) Len() int {
	n, _ := m.m.Len()
	return n
}

// Iterate iterates over the keys, in Items order.
func (m *Map) Iterate() starlark.Iterator {
	items, _ := m.m.Items()
	keys := make([]starlark.Value, len(items))
	for i, it := range items {
		keys[i] = toStarlark(it[0])
	}
	return starlark.NewList(keys).Iterate()
}

func (m *Map) key(k starlark.Value) (any, error) {
	g, err := fromStarlark(k)
	if err != nil {
		return nil, fmt.Errorf("%s: key: %w", m, err)
	}
	return g, nil
}

// Get implements m[k] and `k in m`.
func (m *Map) Get(k starlark.Value) (starlark.Value, bool, error) {
	g, err := m.key(k)
	if err != nil {
		return nil, false, err
	}
	v, ok, err := m.m.Get(g)
	if err != nil || !ok {
		return nil, ok, err
	}
	return toStarlark(v), true, nil
}

// SetKey implements m[k] = v.
func (m *Map) SetKey(k, v starlark.Value) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: internal error: %v (this is a bug in nkscript; please report it)", m, p)
		}
	}()
	gk, err := m.key(k)
	if err != nil {
		return err
	}
	gv, err := fromStarlark(v)
	if err != nil {
		return fmt.Errorf("%s: value: %w", m, err)
	}
	return m.m.Put(gk, gv)
}

var mapMethods = []string{"clear", "get", "items", "keys", "pop", "values"}

func (m *Map) AttrNames() []string { return append(mapMethods, "name", "type") }

func (m *Map) Attr(name string) (starlark.Value, error) {
	switch name {
	case "name":
		return starlark.String(m.m.Name()), nil
	case "type":
		return starlark.String(m.m.Type()), nil
	case "get":
		return m.method(name, m.get), nil
	case "pop":
		return m.method(name, m.pop), nil
	case "items", "keys", "values", "clear":
		return m.method(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
				return nil, err
			}
			return m.all(b.Name())
		}), nil
	}
	return nil, nil
}

func (m *Map) method(name string, fn func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)) *starlark.Builtin {
	return newPlainMethod(m, name, fn)
}

func (m *Map) get(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var k starlark.Value
	var def starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "key", &k, "default?", &def); err != nil {
		return nil, err
	}
	v, ok, err := m.Get(k)
	if err != nil {
		return nil, err
	}
	if !ok {
		return def, nil
	}
	return v, nil
}

func (m *Map) pop(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var k, def starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "key", &k, "default?", &def); err != nil {
		return nil, err
	}
	v, ok, err := m.Get(k)
	if err != nil {
		return nil, err
	}
	if !ok {
		if def != nil {
			return def, nil
		}
		return nil, fmt.Errorf("pop: %s has no key %s", m, k)
	}
	g, _ := m.key(k)
	if _, err := m.m.Delete(g); err != nil {
		return nil, err
	}
	return v, nil
}

func (m *Map) all(what string) (starlark.Value, error) {
	items, err := m.m.Items()
	if err != nil {
		return nil, err
	}
	var out []starlark.Value
	for _, it := range items {
		k, v := toStarlark(it[0]), toStarlark(it[1])
		switch what {
		case "keys":
			out = append(out, k)
		case "values":
			out = append(out, v)
		case "items":
			out = append(out, starlark.Tuple{k, v})
		case "clear":
			if _, err := m.m.Delete(it[0]); err != nil {
				return nil, err
			}
		}
	}
	if what == "clear" {
		return starlark.None, nil
	}
	return starlark.NewList(out), nil
}

// fromStarlark converts a script value to what datapath.Map takes.
func fromStarlark(v starlark.Value) (any, error) {
	switch x := v.(type) {
	case starlark.Int:
		if n, ok := x.Int64(); ok {
			return n, nil
		}
		if u, ok := x.Uint64(); ok {
			return u, nil
		}
		return nil, fmt.Errorf("%s does not fit in 64 bits", x)
	case starlark.Bool:
		return bool(x), nil
	case starlark.String:
		return string(x), nil
	case *Link:
		return x.l, nil
	case *starlark.Dict:
		out := map[string]any{}
		for _, kv := range x.Items() {
			name, ok := kv[0].(starlark.String)
			if !ok {
				return nil, fmt.Errorf("a struct's fields are named by strings, not %s", describeValue(kv[0]))
			}
			g, err := fromStarlark(kv[1])
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", name, err)
			}
			out[string(name)] = g
		}
		return out, nil
	case *starlark.List, starlark.Tuple:
		var out []any
		it := x.(starlark.Iterable).Iterate()
		defer it.Done()
		var e starlark.Value
		for it.Next(&e) {
			g, err := fromStarlark(e)
			if err != nil {
				return nil, err
			}
			out = append(out, g)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s cannot go into a BPF map; use an int, a string (an address or prefix), a link, a dict or a list", describeValue(v))
}

// toStarlark converts what datapath.Map returns to a script value.
func toStarlark(v any) starlark.Value {
	switch x := v.(type) {
	case int64:
		return starlark.MakeInt64(x)
	case uint64:
		return starlark.MakeUint64(x)
	case bool:
		return starlark.Bool(x)
	case string:
		return starlark.String(x)
	case datapath.Fields:
		d := starlark.NewDict(len(x))
		for _, f := range x {
			d.SetKey(starlark.String(f.Name), toStarlark(f.Value))
		}
		return d
	case []any:
		l := make([]starlark.Value, len(x))
		for i, e := range x {
			l[i] = toStarlark(e)
		}
		return starlark.NewList(l)
	}
	return starlark.None
}

// mapsAttr is prog.maps.
func (p *Program) mapsAttr() starlark.Value { return &Maps{prog: p} }

// mapDocs documents BPF map access from scripts.
var mapDocs = []Entry{
	{
		Name: "map", Kind: KindType,
		Signature: `map`,
		Doc: "One BPF map of a loaded program, from `prog.maps[\"name\"]`: `m[k] = v`, `m[k]`, " +
			"`k in m`, `len(m)`, `for k in m`. Keys and values convert through the map's BTF: ints " +
			"for integers (range-checked), IP address strings for 4- and 16-byte arrays and " +
			"__be32, prefix strings like \"10.0.0.0/24\" for LPM trie keys, dicts for structs " +
			"(missing fields are zero), lists for other arrays, and a link for its ifindex. Starlark " +
			"reserves `del`: `m.pop(k)` removes an entry (array maps zero it). Values read back " +
			"convert the same way; per-CPU values are a list with one value per CPU.",
		Attrs: []Attr{
			{"clear", "method: clear() removes every entry"},
			{"get", "method: get(key, default=None) returns m[key], or default"},
			{"items", "method: items() lists (key, value) pairs, sorted by key"},
			{"keys", "method: keys() lists the keys, sorted"},
			{"name", "the map's name"},
			{"pop", "method: pop(key, default) removes the entry and returns its value"},
			{"type", `the map's type, e.g. "Hash", "Array", "LPMTrie"`},
			{"values", "method: values() lists the values, in key order"},
		},
		Example: `lb = program("lb")
lb.maps["vip"][0] = {"addr": "192.168.100.5"}
lb.maps["backends"][0] = {"ifindex": p.primary, "addr": "10.0.1.2"}
print(lb.maps["backends"].items())`,
	},
	{
		Name: "map.get", Kind: KindMethod,
		Signature: `map.get(key, default=None) -> value`,
		Doc:       "Returns the value for `key`, or `default` when the map has no such entry.",
		Example:   `n = counts.get(0, 0)`,
	},
	{
		Name: "map.pop", Kind: KindMethod,
		Signature: `map.pop(key, default) -> value`,
		Doc: "Removes the entry for `key` and returns its value; without `default`, a missing key " +
			"is an error. This is what `del m[key]` would be: Starlark reserves `del`. Array maps " +
			"cannot remove entries: their value is set to zero.",
		Example: `router.maps["policy_routes_v4"].pop("192.168.100.5/32")`,
	},
	{
		Name: "map.items", Kind: KindMethod,
		Signature: `map.items() -> list`,
		Doc:       "Lists the entries as (key, value) tuples, sorted by key; array maps leave out entries that are all zero.",
		Example: `for k, v in lb.maps["backends"].items():
    print(k, v["addr"])`,
	},
	{
		Name: "map.keys", Kind: KindMethod,
		Signature: `map.keys() -> list`,
		Doc:       "Lists the keys, sorted, as items() does.",
		Example:   `print(m.keys())`,
	},
	{
		Name: "map.values", Kind: KindMethod,
		Signature: `map.values() -> list`,
		Doc:       "Lists the values in key order, as items() does.",
		Example:   `print(m.values())`,
	},
	{
		Name: "map.clear", Kind: KindMethod,
		Signature: `map.clear() -> None`,
		Doc:       "Removes every entry (array maps: zeroes every entry).",
		Example:   `m.clear()`,
	},
}
