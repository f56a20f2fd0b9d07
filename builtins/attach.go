package builtins

import (
	"fmt"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
)

func init() {
	universe["chain"] = chainFn
}

func chainFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var target starlark.Value
	var hookName string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "link", &target, "hook", &hookName); err != nil {
		return nil, err
	}
	hook, err := datapath.ParseHook(hookName)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	var k *Link
	switch t := target.(type) {
	case *Link:
		k = t
	case *Pair:
		k = t.primary
	default:
		return nil, fmt.Errorf("%s: link must be a link or a netkit pair, not %s", b.Name(), describeValue(target))
	}
	names, err := r.lab.Chain(k.l, hook)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	list := make([]starlark.Value, len(names))
	for i, n := range names {
		list[i] = starlark.String(n)
	}
	return starlark.NewList(list), nil
}

// attachDocs documents program order on a hook.
var attachDocs = []Entry{
	{
		Name: "chain", Kind: KindFunc,
		Signature: `chain(link, hook) -> list`,
		Doc: "Lists the names of the programs on a tcx hook (`\"ingress\"`, `\"egress\"`) of a link, " +
			"or on a netkit hook (`\"primary\"`, `\"peer\"`) of a pair, in the order they run — as the " +
			"kernel reports them, so programs other tools attached show too. Names are the kernel's, " +
			"at most 15 characters.",
		Example: `attach(program("pass"), v.primary, "ingress")
attach(program("drop_port", port = 80), v.primary, "ingress", first = True)
print(chain(v.primary, "ingress"))   # ["drop_port", "pass"]`,
	},
}
