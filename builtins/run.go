package builtins

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
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
	// MaxSteps bounds the Starlark computation of each thread (not the
	// time spent in builtins); 0 means DefaultMaxSteps.
	MaxSteps uint64
	// AllowPaths are directories load() may read from besides the main
	// script's directory (the current directory without a script).
	AllowPaths []string
	// Pause, if set, shows text to the user and returns when they want
	// the run to go on: pause() and PauseOnFail use it. Without it,
	// pause() only prints.
	Pause func(text string)
	// PauseOnFail pauses at the first failed expectation.
	PauseOnFail bool
}

// DefaultMaxSteps is the default execution-step limit: far beyond any
// lab (a lab of 1000 namespaces takes about a million steps), small
// enough that a runaway loop stops within seconds.
const DefaultMaxSteps = 100_000_000

// Run is the state of one script run, shared by every thread of the run.
type Run struct {
	lab   *datapath.Lab
	ctx   context.Context
	out   io.Writer
	ready time.Duration
	steps uint64
	roots []string // directories load() may read
	// pausing
	pauseFn      func(string)
	pauseOnFail  bool
	pausedOnFail bool
	host         *Netns
	netns        map[*datapath.Netns]*Netns
	links        map[*datapath.Link]*Link
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
	r.pauseFn, r.pauseOnFail = o.Pause, o.PauseOnFail
	r.steps = o.MaxSteps
	if r.steps == 0 {
		r.steps = DefaultMaxSteps
	}
	root := "."
	if len(o.Argv) > 0 && o.Argv[0] != "" {
		root = filepath.Dir(o.Argv[0])
	}
	for _, d := range append([]string{root}, o.AllowPaths...) {
		if abs, err := filepath.Abs(d); err == nil {
			if real, err := filepath.EvalSymlinks(abs); err == nil {
				abs = real
			}
			r.roots = append(r.roots, abs)
		}
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
		g[name] = fn
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
	t.SetMaxExecutionSteps(r.steps)
	return t
}

// allowed reports whether load() may read path: it must lie under the
// main script's directory or an --allow-path directory, after symlinks.
func (r *Run) allowed(path string) bool {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return false
	}
	for _, root := range r.roots {
		if rel, err := filepath.Rel(root, real); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return true
		}
	}
	return false
}

// Report returns the run's report of every expectation checked so far.
func (r *Run) Report() *Report { return &r.report }

// ExecFile runs the script at path, returning its globals. A script
// that checks traffic has the drop monitor prepared while it builds its
// lab.
func (r *Run) ExecFile(thread *starlark.Thread, path string, src any) (starlark.StringDict, error) {
	predeclared := r.Globals()
	f, prog, err := starlark.SourceProgramOptions(FileOptions, path, src, predeclared.Has)
	if err != nil {
		return nil, err
	}
	if mentions(f, dropWatchers) && !r.lab.DropMonitorOff() {
		datapath.PrepareDropMonitor()
	}
	g, err := prog.Init(thread, predeclared)
	g.Freeze()
	return g, err
}

// dropWatchers are the builtins that start the drop monitor.
var dropWatchers = map[string]bool{"expect_pass": true, "expect_drop": true, "drops": true, "ping": true}

// mentions reports whether the file f uses any of the names.
func mentions(f *syntax.File, names map[string]bool) bool {
	found := false
	syntax.Walk(f, func(n syntax.Node) bool {
		if id, ok := n.(*syntax.Ident); ok && names[id.Name] {
			found = true
		}
		return !found
	})
	return found
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
	if !r.allowed(path) {
		return nil, fmt.Errorf("load(%q): %s is outside the script's directory %s; scripts load only files under it unless the run allows more with --allow-path DIR", module, absPath(path), r.roots[0])
	}
	r.modules[path] = nil
	child := r.Thread(path)
	child.SetLocal(runKey, r)
	globals, err := r.ExecFile(child, path, nil)
	r.modules[path] = &loadEntry{globals, err}
	return globals, err
}

// recoverPanics turns a panic inside a builtin into an error at the
// builtin's call, so that the script stops there, with its position, and
// the run cleans up as after any other error.
func recoverPanics(fn builtinFn) builtinFn {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (v starlark.Value, err error) {
		defer func() {
			if p := recover(); p != nil {
				v, err = nil, fmt.Errorf("%s: internal error: %v (this is a bug in nkscript; please report it with this trace)\n%s", b.Name(), p, debug.Stack())
			}
		}()
		return fn(thread, b, args, kwargs)
	}
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

func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}
