package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/chzyer/readline"
	"github.com/nkscript/nkscript/builtins"
	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/session"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
	"golang.org/x/sys/unix"
)

// replOnly documents the builtins only the REPL has.
var replOnly = []builtins.Entry{
	{Name: "help", Kind: builtins.KindFunc, Signature: "help(x=None)", Doc: "Prints the documentation of x: a builtin, a method or a value; with no argument, lists the builtins."},
	{Name: "exit", Kind: builtins.KindFunc, Signature: "exit()", Doc: "Cleans the lab up and leaves the REPL, as Ctrl-D does."},
}

// docEntry returns the documentation of a builtin function or method.
func docEntry(b *starlark.Builtin) *builtins.Entry {
	name := b.Name()
	if r := b.Receiver(); r != nil {
		name = r.Type() + "." + name
	}
	for _, docs := range [][]builtins.Entry{builtins.Docs, replOnly} {
		for i := range docs {
			if docs[i].Name == name && (docs[i].Kind == builtins.KindFunc || docs[i].Kind == builtins.KindMethod) {
				return &docs[i]
			}
		}
	}
	return nil
}

// historyPath is where the REPL keeps its history: $NKSCRIPT_HISTORY, or
// ~/.nkscript_history.
func historyPath() string {
	if p := os.Getenv("NKSCRIPT_HISTORY"); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".nkscript_history")
}

// replSession is one REPL: a lab, its run and the globals the user
// defined. Each statement runs on a thread and context of its own, as in
// go.starlark.net's REPL.
type replSession struct {
	ctx     context.Context // the session's: ends on a signal before the REPL handles them
	run     *builtins.Run
	globals starlark.StringDict
	stdout  io.Writer
	stderr  io.Writer
	quit    atomic.Bool // exit() was called or SIGTERM arrived
	termed  atomic.Bool // SIGTERM arrived
	failed  bool        // a statement failed

	mu        sync.Mutex
	interrupt func() // stops the running statement
	closeIn   func() // ends the input on SIGTERM at the prompt
}

func runREPL(o *options, stdout, stderr io.Writer) int {
	if replInGuest(o) {
		return runREPLInGuest(o, stdout, stderr)
	}
	cfg := session.Config{Lab: datapath.LabConfig{JournalDir: o.journalDir, Script: "<repl>"}, Keep: o.keep, Stderr: stderr, Closing: opsCounter(stderr)}
	err, endErr := session.Run(session.CatchSignals().Context(), cfg, func(ctx context.Context, lab *datapath.Lab) error {
		s := &replSession{ctx: ctx, stdout: stdout, stderr: stderr}
		defer session.CatchSignals().Handle(s.signal)()
		if ctx.Err() != nil {
			s.signal(syscall.SIGTERM)
		}
		s.run = builtins.NewRun(builtins.Options{Lab: lab, Context: ctx, Stdout: stdout})
		s.globals = s.run.Globals()
		s.globals["help"] = starlark.NewBuiltin("help", s.help)
		s.globals["exit"] = starlark.NewBuiltin("exit", s.exit)
		var code int
		if isTerminal(os.Stdin) {
			code = s.interactive()
		} else {
			code = s.batch(os.Stdin)
		}
		if s.termed.Load() {
			fmt.Fprintln(stderr, "nkscript: terminated; cleaning up")
			return session.ErrReported
		}
		if code != exitOK {
			return session.ErrReported
		}
		return nil
	})
	if err != nil || endErr != nil {
		return exitFail
	}
	return exitOK
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// interactive reads statements with line editing, history and completion.
func (s *replSession) interactive() int {
	rl, err := readline.NewEx(&readline.Config{
		Prompt:                 ">>> ",
		HistoryFile:            historyPath(),
		DisableAutoSaveHistory: true,
		AutoComplete:           &completer{s: s},
		InterruptPrompt:        "^C",
		Stdout:                 s.stdout,
		Stderr:                 s.stderr,
	})
	if err != nil {
		fmt.Fprintf(s.stderr, "nkscript: %v\n", err)
		return exitFail
	}
	defer rl.Close()
	s.mu.Lock()
	s.closeIn = func() { rl.Close() }
	s.mu.Unlock()
	fmt.Fprintln(s.stdout, "nkscript REPL: builtins are", strings.Join(builtins.Names(), ", ")+".")
	fmt.Fprintln(s.stdout, "help(x) explains x; Tab completes; Ctrl-C stops a call; Ctrl-D or exit() cleans up and leaves.")
	for !s.quit.Load() {
		var eof, interrupted bool
		rl.SetPrompt(">>> ")
		read := func() ([]byte, error) {
			line, err := rl.Readline()
			rl.SetPrompt("... ")
			switch {
			case errors.Is(err, readline.ErrInterrupt):
				interrupted = true
				return nil, err
			case err != nil:
				eof = true
				return nil, err
			}
			if strings.TrimSpace(line) != "" {
				rl.SaveHistory(line)
			}
			return []byte(line + "\n"), nil
		}
		f, err := builtins.FileOptions.ParseCompoundStmt("<stdin>", read)
		switch {
		case interrupted:
			continue // Ctrl-C at the prompt clears the line
		case eof:
			fmt.Fprintln(s.stdout)
			return exitOK
		case err != nil:
			session.WriteError(s.stderr, err)
			continue
		}
		s.exec(f)
	}
	return exitOK
}

// batch reads statements from a pipe or file, without line editing.
func (s *replSession) batch(in io.Reader) int {
	br := bufio.NewReader(in)
	var eof, partial bool
	read := func() ([]byte, error) {
		line, err := br.ReadString('\n')
		if err != nil && line == "" {
			eof = true
			return nil, err
		}
		if strings.TrimSpace(line) != "" {
			partial = true
		}
		return []byte(strings.TrimSuffix(line, "\n") + "\n"), nil
	}
	for !s.quit.Load() && !eof {
		partial = false
		f, err := builtins.FileOptions.ParseCompoundStmt("<stdin>", read)
		switch {
		case eof && !partial:
		case err != nil:
			session.WriteError(s.stderr, err)
			s.failed = true
		default:
			s.exec(f)
		}
	}
	if s.failed {
		return exitFail
	}
	return exitOK
}

// exec runs one parsed statement on a thread and context of its own,
// ended by Ctrl-C (SIGINT) or SIGTERM; an expression's value is printed.
func (s *replSession) exec(f *syntax.File) {
	if len(f.Stmts) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	s.mu.Lock()
	s.interrupt = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.interrupt = nil
		s.mu.Unlock()
	}()
	thread := s.run.Thread("<stdin>")
	err := session.Exec(ctx, thread, "<stdin>", func() error { return s.eval(f, thread) })
	if err == nil {
		return
	}
	s.failed = true
	if ctx.Err() == nil {
		// Ctrl-C reaches the commands exec() runs too (they share the
		// terminal's process group), and one may fail before the signal
		// is forwarded to us: give it a moment to arrive.
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(s.stderr, "interrupted")
		return
	}
	session.WriteError(s.stderr, err)
}

// eval runs a statement; an expression's value is printed and kept as _.
func (s *replSession) eval(f *syntax.File, thread *starlark.Thread) error {
	if len(f.Stmts) != 1 {
		return starlark.ExecREPLChunk(f, thread, s.globals)
	}
	e, ok := f.Stmts[0].(*syntax.ExprStmt)
	if !ok {
		return starlark.ExecREPLChunk(f, thread, s.globals)
	}
	v, err := starlark.EvalExprOptions(f.Options, thread, e.X, s.globals)
	if err != nil {
		return err
	}
	s.globals["_"] = v
	if v != starlark.None {
		fmt.Fprintln(s.stdout, v)
	}
	return nil
}

// signal makes Ctrl-C (SIGINT) stop the running statement, and SIGTERM
// stop it and end the session.
func (s *replSession) signal(sig os.Signal) {
	if sig == syscall.SIGTERM {
		s.termed.Store(true)
		s.quit.Store(true)
	}
	s.mu.Lock()
	interrupt, closeIn := s.interrupt, s.closeIn
	s.mu.Unlock()
	switch {
	case interrupt != nil:
		interrupt()
	case sig == syscall.SIGTERM && closeIn != nil:
		closeIn()
	}
}

func (s *replSession) exit(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	s.quit.Store(true)
	return starlark.None, nil
}

// help prints what x is: a builtin's signature and description, a
// function's parameters, or a value's type and attributes.
func (s *replSession) help(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var x starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "x?", &x); err != nil {
		return nil, err
	}
	w := s.stdout
	if x == nil {
		fmt.Fprintln(w, "Builtins (help(x) or `nkscript doc NAME` says more):")
		for _, docs := range [][]builtins.Entry{builtins.Docs, replOnly} {
			for _, e := range docs {
				if e.Kind == builtins.KindFunc || e.Kind == builtins.KindValue {
					fmt.Fprintf(w, "  %s\n", e.Signature)
				}
			}
		}
		return starlark.None, nil
	}
	if t := builtins.HelpText(x); t != "" {
		fmt.Fprint(w, t)
		return starlark.None, nil
	}
	switch x := x.(type) {
	case *starlark.Builtin:
		if e := docEntry(x); e != nil {
			fmt.Fprint(w, e.Text())
			break
		}
		if x.Receiver() != nil {
			fmt.Fprintf(w, "%s: method of %s\n", x.Name(), x.Receiver().Type())
			break
		}
		fmt.Fprintf(w, "%s: builtin function\n", x.Name())
	case *starlark.Function:
		params := make([]string, x.NumParams())
		for i := range params {
			params[i], _ = x.Param(i)
		}
		fmt.Fprintf(w, "%s(%s): function defined at %s\n", x.Name(), strings.Join(params, ", "), x.Position())
		if d := x.Doc(); d != "" {
			fmt.Fprintf(w, "    %s\n", d)
		}
	default:
		fmt.Fprintf(w, "%s: %s\n", x.String(), x.Type())
		if ha, ok := x.(starlark.HasAttrs); ok {
			fmt.Fprintf(w, "    attributes: %s\n", strings.Join(ha.AttrNames(), ", "))
		}
	}
	return starlark.None, nil
}

// completer completes global and builtin names, keyword arguments of the
// enclosing call (the parameters builtins.Docs lists, or a def's) and
// attributes after a dot (the value's AttrNames).
type completer struct{ s *replSession }

func isIdentRune(r rune) bool {
	return r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r > 127
}

// Do implements readline.AutoCompleter.
func (c *completer) Do(line []rune, pos int) ([][]rune, int) {
	text := line[:pos]
	i := len(text)
	for i > 0 && isIdentRune(text[i-1]) {
		i--
	}
	word := string(text[i:])
	if word != "" && word[0] >= '0' && word[0] <= '9' {
		return nil, 0
	}
	var cands []string
	if i > 0 && text[i-1] == '.' {
		j := i - 1
		for j > 0 && (isIdentRune(text[j-1]) || text[j-1] == '.') {
			j--
		}
		if v := c.lookup(string(text[j : i-1])); v != nil {
			if ha, ok := v.(starlark.HasAttrs); ok {
				cands = ha.AttrNames()
			}
		}
	} else {
		if fn := enclosingCall(string(text[:i])); fn != "" {
			for _, k := range c.keywords(fn) {
				cands = append(cands, k+"=")
			}
		}
		cands = append(cands, c.names()...)
	}
	seen := map[string]bool{}
	var out [][]rune
	for _, cand := range cands {
		if seen[cand] || !strings.HasPrefix(cand, word) {
			continue
		}
		seen[cand] = true
		out = append(out, []rune(cand[len(word):]))
	}
	return out, len([]rune(word))
}

// lookup evaluates a dotted name like pair.primary without calling
// anything.
func (c *completer) lookup(expr string) starlark.Value {
	parts := strings.Split(expr, ".")
	v, ok := c.s.globals[parts[0]]
	if !ok {
		v, ok = starlark.Universe[parts[0]]
	}
	if !ok {
		return nil
	}
	for _, p := range parts[1:] {
		ha, ok := v.(starlark.HasAttrs)
		if !ok {
			return nil
		}
		next, err := ha.Attr(p)
		if err != nil || next == nil {
			return nil
		}
		v = next
	}
	return v
}

// keywords returns the parameter names of the function called fn.
func (c *completer) keywords(fn string) []string {
	switch v := c.lookup(fn).(type) {
	case *starlark.Builtin:
		if e := docEntry(v); e != nil {
			return e.Params()
		}
	case *starlark.Function:
		var names []string
		for i := 0; i < v.NumParams(); i++ {
			n, _ := v.Param(i)
			names = append(names, n)
		}
		return names
	}
	return nil
}

// names lists the globals, builtins, Starlark's universe and keywords.
func (c *completer) names() []string {
	var names []string
	for n := range c.s.globals {
		names = append(names, n)
	}
	for n := range starlark.Universe {
		names = append(names, n)
	}
	names = append(names, "def", "for", "if", "elif", "else", "return", "load", "while", "break", "continue", "pass", "lambda", "not", "and", "or", "in")
	sort.Strings(names)
	return names
}

// enclosingCall returns the dotted name of the call whose argument list
// text ends in, or "" when text is not inside a call.
func enclosingCall(text string) string {
	var stack []string
	var quote rune
	rs := []rune(text)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		if quote != 0 {
			switch r {
			case '\\':
				i++
			case quote:
				quote = 0
			}
			continue
		}
		switch r {
		case '"', '\'':
			quote = r
		case '#':
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
		case '(':
			j := i
			for j > 0 && rs[j-1] == ' ' {
				j--
			}
			k := j
			for k > 0 && (isIdentRune(rs[k-1]) || rs[k-1] == '.') {
				k--
			}
			stack = append(stack, string(rs[k:j]))
		case '[', '{':
			stack = append(stack, "")
		case ')', ']', '}':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		}
	}
	if len(stack) == 0 {
		return ""
	}
	return stack[len(stack)-1]
}
