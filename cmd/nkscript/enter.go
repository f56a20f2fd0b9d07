package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/chzyer/readline"
	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/session"
	"github.com/nkscript/nkscript/vm"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// exitNoNamespace is the exit code of `enter --here` that found no lab
// with the namespace: the host then asks the next guest.
const exitNoNamespace = 125

const enterUsageText = `nkscript enter runs a command, or an interactive shell, in a namespace of a kept or paused lab.

Usage:
  nkscript enter NS [-- CMD [ARGS...]]

NS is the namespace's name as the script gave it. The lab may run on this host or in a
microVM guest (--vm --keep, or a run paused with pause() or --pause-on-fail); on the host
the namespace is the one the lab's journal records, checked by identity. Without CMD, the
shell is $SHELL (else bash) on a terminal.

Flags:
`

// cmdEnter implements `nkscript enter NS [-- CMD...]`.
func cmdEnter(o *options, args []string, stdout, stderr io.Writer) int {
	var here, help bool
	fs := pflag.NewFlagSet("nkscript enter", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SetInterspersed(false)
	fs.StringVar(&o.journalDir, "journal-dir", o.journalDir, "where the runs recorded what they created")
	fs.BoolVar(&here, "here", false, "look on this machine only, quietly exiting 125 if no lab has NS (used in the guests)")
	fs.MarkHidden("here")
	fs.BoolVarP(&help, "help", "h", false, "show this help")
	fs.Usage = func() {
		fmt.Fprint(stderr, enterUsageText)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "nkscript enter: %v\n", err)
		return exitUsage
	}
	if help || fs.NArg() == 0 {
		if !help {
			fs.Usage()
			return exitUsage
		}
		fmt.Fprint(stdout, enterUsageText)
		return exitOK
	}
	ns, argv := fs.Arg(0), fs.Args()[1:]
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	guestArgv := argv
	if len(argv) == 0 {
		argv = []string{shell()}
	}
	err := enterHere(o.journalDir, ns, argv)
	if !errors.Is(err, errNoLabNamespace) {
		fmt.Fprintf(stderr, "nkscript enter: %v\n", err)
		return exitFail
	}
	if here {
		return exitNoNamespace
	}
	if code, ok := enterGuests(ns, guestArgv, stdout, stderr); ok {
		return code
	}
	fmt.Fprintf(stderr, "nkscript enter: no kept or paused lab has a namespace %q, on this host or in a running microVM guest\n", ns)
	return exitFail
}

// shell is the interactive shell enter starts.
func shell() string {
	if sh := os.Getenv("SHELL"); sh != "" {
		return sh
	}
	if p, err := exec.LookPath("bash"); err == nil {
		return p
	}
	return "/bin/sh"
}

var errNoLabNamespace = errors.New("no lab has this namespace")

// enterHere executes argv in the namespace name of a lab whose journal is
// in dir, the namespace being the journal's by identity; it returns only
// on failure, errNoLabNamespace if no journal has the namespace.
func enterHere(dir, name string, argv []string) error {
	paths, _ := filepath.Glob(filepath.Join(dir, "*.journal"))
	for _, p := range paths {
		_, records, err := datapath.ReadJournal(p)
		if err != nil {
			continue
		}
		for _, r := range records {
			nr, ok := r.(*datapath.NetnsRecord)
			if !ok || nr.Name != name {
				continue
			}
			return execInNetns(nr, argv)
		}
	}
	return errNoLabNamespace
}

// execInNetns executes argv in the network namespace nr records, after
// checking that its path still holds that namespace.
func execInNetns(nr *datapath.NetnsRecord, argv []string) error {
	f, err := os.Open(nr.Path)
	if err != nil {
		return fmt.Errorf("namespace %s: %w", nr.Name, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("namespace %s: %w", nr.Name, err)
	}
	if uint64(st.Dev) != nr.NS.Dev || st.Ino != nr.NS.Ino {
		return fmt.Errorf("namespace %s: %s is no longer the lab's namespace", nr.Name, nr.Path)
	}
	bin, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	runtime.LockOSThread() // setns is the thread's, and execve keeps it
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter namespace %s: %w", nr.Name, err)
	}
	signal.Reset()
	return fmt.Errorf("exec %s: %w", argv[0], syscall.Exec(bin, argv, os.Environ()))
}

// enterGuests runs enter in each running guest until one has the
// namespace; ok is false if none has.
func enterGuests(ns string, argv []string, stdout, stderr io.Writer) (code int, ok bool) {
	guests, err := vm.WarmGuests()
	if err != nil {
		fmt.Fprintf(stderr, "nkscript enter: microVM guests: %v\n", err)
	}
	for _, s := range guests {
		args := append([]string{"--vm=never", "enter", "--here", ns, "--"}, argv...)
		code := guestSession(session.CatchSignals().Context(), s, vm.WarmRun{Args: args}, stdout, stderr)
		if code != exitNoNamespace {
			return code, true
		}
	}
	return 0, false
}

// guestSession runs run (its Args, Check and Keep) in the guest s with the
// host's stdin: on a terminal, on one in the guest with the host's
// terminal raw (what the user types goes to the guest, keys like Ctrl-C
// included), else with stdin copied. It returns the exit code.
func guestSession(ctx context.Context, s *vm.WarmState, run vm.WarmRun, stdout, stderr io.Writer) int {
	cwd, _ := os.Getwd()
	run.Env, run.Dir, run.Stdin, run.Stdout, run.Stderr = guestEnv(), cwd, os.Stdin, stdout, stderr
	if isTerminal(os.Stdin) && isTerminal(os.Stdout) {
		fd := int(os.Stdin.Fd())
		run.TTY = true
		run.Cols, run.Rows, _ = readline.GetSize(fd)
		if run.Cols <= 0 || run.Rows <= 0 {
			run.Cols, run.Rows = 80, 24
		}
		state, err := readline.MakeRaw(fd)
		if err != nil {
			fmt.Fprintf(stderr, "nkscript: terminal: %v\n", err)
			return exitFail
		}
		defer readline.Restore(fd, state)
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		resize := make(chan [2]int, 1)
		go func() {
			for range winch {
				if w, h, err := readline.GetSize(fd); err == nil {
					resize <- [2]int{h, w}
				}
			}
		}()
		run.Resize = resize
	}
	code, err := s.Run(ctx, run)
	if err != nil {
		fmt.Fprintf(stderr, "nkscript: microVM guest: %v\n", err)
		return exitFail
	}
	return code
}
