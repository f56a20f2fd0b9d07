package builtins

import (
	"fmt"
	"strings"

	"github.com/nkscript/nkscript/vm"
	"go.starlark.net/starlark"
)

func pauseFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var msg string
	if err := unpackArgs(b, args, kwargs, "msg?", &msg); err != nil {
		return nil, err
	}
	r := runOf(thread)
	if r.lab.Pause("pause(): the script stops here to let you look around") {
		r.pause(thread, msg)
	}
	return starlark.None, nil
}

// pause describes the lab — its namespaces, links and addresses, what
// show() prints, and how to enter each namespace — and waits until the
// user lets the run go on.
func (r *Run) pause(thread *starlark.Thread, msg string) {
	var b strings.Builder
	pos := thread.CallFrame(1).Pos
	fmt.Fprintf(&b, "nkscript: paused at %s", pos)
	if msg != "" {
		fmt.Fprintf(&b, ": %s", msg)
	}
	b.WriteString("\nthe lab:\n")
	byNs := map[string][]string{}
	for _, k := range append(r.lab.Links(), r.lab.Loopbacks()...) {
		name := k.Netns().Name()
		line := k.Name()
		for _, p := range k.Addrs() {
			line += " " + p.String()
		}
		byNs[name] = append(byNs[name], line)
	}
	if links := byNs["host"]; len(links) > 0 {
		fmt.Fprintf(&b, "  host: %s\n", strings.Join(links, ", "))
	}
	for _, ns := range r.lab.Namespaces() {
		fmt.Fprintf(&b, "  %s: %s\n", ns.Name(), strings.Join(byNs[ns.Name()], ", "))
	}
	if s, err := r.lab.Show(nil); err != nil {
		fmt.Fprintf(&b, "(show() failed: %v)\n", err)
	} else {
		b.WriteString("as the kernel shows it (show()):\n")
		b.WriteString(formatSnapshot(s, false))
	}
	if nss := r.lab.Namespaces(); len(nss) > 0 {
		b.WriteString("enter a namespace:\n")
		for _, ns := range nss {
			if vm.InWarmGuest() {
				// The lab is in a microVM guest, which the host reaches.
				fmt.Fprintf(&b, "  nkscript enter %s    (from the host)\n", ns.Name())
				continue
			}
			fmt.Fprintf(&b, "  ip netns exec %s bash    (or: nsenter --net=/run/netns/%s)\n", ns.Name(), ns.Name())
		}
	}
	if r.pauseFn == nil {
		b.WriteString("(not waiting: this run cannot ask for input)\n")
		fmt.Fprint(r.out, b.String())
		return
	}
	b.WriteString("press Enter to continue; Ctrl-C ends the run and cleans up\n")
	r.pauseFn(b.String())
}

// uxDocs documents the interactive helpers such as pause().
var uxDocs = []Entry{
	{
		Name: "pause", Kind: KindFunc,
		Signature: `pause(msg="") -> None`,
		Doc: "Stops the script and keeps the lab up: prints `msg`, the namespaces with their links " +
			"and addresses, what show() prints, and the command to enter each namespace, then waits for Enter on " +
			"standard input (end of input continues too; Ctrl-C ends the run and cleans up). " +
			"`--pause-on-fail` does the same at the first failed expectation. Under `nkscript test` " +
			"and `--dry-run` it only notes where it would stop.",
		Example: `pause("look at the routes in ns1")`,
	},
	showDoc,
}
