// Package builtins is nkscript's Starlark surface: the functions a lab
// script calls and the values they return. Per-run state lives in the
// Starlark thread (thread.SetLocal), never in package globals; the kernel
// work is done by package datapath.
//
// Builtins:
//
//	netns(name)                     a named network namespace
//	host                            the namespace nkscript started in
//	netkit_pair(primary, peer, mode="l3", primary_ns=host, peer_ns=None,
//	            policy="forward", peer_policy="forward", mtu=None)
//	veth_pair(primary, peer, primary_ns=host, peer_ns=None, mtu=None)
//	route(dst, via=None, dev=None, ns=host)
//	sysctl(key, value, ns=host)
//	forwarding(ns=host)
//	program(name, **consts) / program(path, section=None, **consts)
//	attach(prog, target, hook)      hook: primary, peer, ingress, egress
//	stats(prog)                     counters: passed, dropped, redirected
//	ping(dst, src=host, count=3, timeout="1s")
//	expect_pass(dst, port=None, proto="tcp", src=host, timeout="1s")
//	expect_drop(dst, port=None, proto="tcp", src=host, timeout="1s", by=None)
//	exec(ns, cmd)                   run a host command inside a namespace
package builtins

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

const runKey = "nkscript.run"

// FileOptions are the Starlark dialect of nkscript scripts: scripts are
// programs, so top-level control flow and global reassignment are allowed.
var FileOptions = &syntax.FileOptions{
	Set:             true,
	While:           true,
	TopLevelControl: true,
	GlobalReassign:  true,
	Recursion:       true,
}

// Options configure a Run.
type Options struct {
	// Lab receives every kernel change the script makes.
	Lab *datapath.Lab
	// Context is cancelled to stop network waits (Ctrl-C, timeouts).
	Context context.Context
	// Stdout receives print() output and the builtins' progress lines.
	Stdout io.Writer
	// ReadyTimeout bounds the wait for links to come up before traffic.
	ReadyTimeout time.Duration
	// Argv is the script's path and arguments, predeclared as argv.
	Argv []string
}

// Run is the state of one script run, shared by every thread of the run.
type Run struct {
	lab   *datapath.Lab
	ctx   context.Context
	out   io.Writer
	ready time.Duration
	host  *Netns
	netns map[*datapath.Netns]*Netns
	links map[*datapath.Link]*Link
	// policyVia remembers the link of each policy the script installed,
	// by router and source prefix, so that policies() can name it.
	policyVia map[string]*Link
	modules   map[string]*loadEntry
	argv      starlark.Tuple
	report    Report
}

type loadEntry struct {
	globals starlark.StringDict
	err     error
}

// NewRun prepares a run of scripts against o.Lab.
func NewRun(o Options) *Run {
	if o.Context == nil {
		o.Context = context.Background()
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 10 * time.Second
	}
	r := &Run{
		lab:       o.Lab,
		ctx:       o.Context,
		out:       o.Stdout,
		ready:     o.ReadyTimeout,
		netns:     map[*datapath.Netns]*Netns{},
		links:     map[*datapath.Link]*Link{},
		policyVia: map[string]*Link{},
		modules:   map[string]*loadEntry{},
	}
	r.host = r.wrapNetns(o.Lab.Host())
	for _, a := range o.Argv {
		r.argv = append(r.argv, starlark.String(a))
	}
	return r
}

// Globals returns the predeclared names of a script: the builtins and host.
func (r *Run) Globals() starlark.StringDict {
	g := starlark.StringDict{"host": r.host, "argv": r.argv, "kernel": &Kernel{}}
	for name, fn := range universe {
		g[name] = starlark.NewBuiltin(name, suggestKeywords(fn))
	}
	return g
}

// Thread returns a new thread for running a script of this run, named
// after the script; print() goes to the run's Stdout.
func (r *Run) Thread(name string) *starlark.Thread {
	t := &starlark.Thread{
		Name:  name,
		Print: func(_ *starlark.Thread, msg string) { fmt.Fprintln(r.out, msg) },
		Load:  r.load,
	}
	t.SetLocal(runKey, r)
	return t
}

// Report returns the run's report of every expectation checked so far.
func (r *Run) Report() *Report { return &r.report }

// ExecFile runs the script at path, returning its globals.
func (r *Run) ExecFile(thread *starlark.Thread, path string, src any) (starlark.StringDict, error) {
	return starlark.ExecFileOptions(FileOptions, thread, path, src, r.Globals())
}

// load implements load("lib.star", "sym"): the module path is relative to
// the directory of the file that loads it. Each module runs once per run.
func (r *Run) load(thread *starlark.Thread, module string) (starlark.StringDict, error) {
	from := thread.CallFrame(0).Pos.Filename()
	path := module
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(from), module)
	}
	path = filepath.Clean(path)
	if e, ok := r.modules[path]; ok {
		if e == nil {
			return nil, fmt.Errorf("load(%q): cycle in load graph", module)
		}
		return e.globals, e.err
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("load(%q): %s does not exist; the path is relative to %s", module, path, filepath.Dir(from))
	}
	r.modules[path] = nil
	child := r.Thread(path)
	child.SetLocal(runKey, r)
	globals, err := r.ExecFile(child, path, nil)
	r.modules[path] = &loadEntry{globals, err}
	return globals, err
}

func runOf(thread *starlark.Thread) *Run {
	r, _ := thread.Local(runKey).(*Run)
	if r == nil {
		panic("nkscript builtin called on a thread without a run")
	}
	return r
}

// printf writes one progress line to the run's output.
func (r *Run) printf(format string, args ...any) {
	fmt.Fprintf(r.out, format+"\n", args...)
}

// describeValue renders a value for an error message.
func describeValue(v starlark.Value) string {
	s := v.String()
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return fmt.Sprintf("%s (%s)", s, v.Type())
}

// quoteList renders choices as "a", "b" or "c".
func quoteList(choices []string) string {
	q := make([]string, len(choices))
	for i, c := range choices {
		q[i] = fmt.Sprintf("%q", c)
	}
	if len(q) <= 1 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
