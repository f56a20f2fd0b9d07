package builtins

import (
	"go.starlark.net/starlark"
)

// Deleting links and namespaces before the script ends, and moving links.

func linkDelete(k *Link, thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := unpackArgs(b, args, kwargs); err != nil {
		return nil, err
	}
	return starlark.None, runOf(thread).lab.DeleteLink(k.l)
}

func linkMove(k *Link, thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var ns netnsArg
	if err := unpackArgs(b, args, kwargs, "ns", &ns); err != nil {
		return nil, err
	}
	if err := runOf(thread).lab.MoveLink(k.l, ns.ns.ns); err != nil {
		return nil, err
	}
	return k, nil
}

// deleteMethod is netns.delete().
func (n *Netns) deleteMethod() *starlark.Builtin {
	return newMethod(n, "delete", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if err := unpackArgs(b, args, kwargs); err != nil {
			return nil, err
		}
		return starlark.None, runOf(thread).lab.DeleteNetns(n.ns)
	})
}
