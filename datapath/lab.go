package datapath

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"
)

// Lab is the set of namespaces, links, routes, settings and programs one
// run creates. A Lab is bookkeeping: it checks names, applies the prefix,
// refuses duplicates, journals every change and keeps the undo list;
// its Backend makes the changes. Close undoes all of them in reverse
// order. A Lab never modifies or removes anything it did not create.
type Lab struct {
	mu        sync.Mutex
	b         Backend
	host      *Netns
	ownHost   bool
	journal   journal
	owned     map[NsID]*Netns // namespaces this lab created, by identity
	byName    map[string]*Netns
	undo      []undoStep
	links     []*Link
	pendUp    map[*Link]linkWait // links set up (or given IPv6 addresses) since the last WaitReady
	closed    bool
	nslist    []*Netns
	progs     []*Program
	attached  []*Attachment
	prefix    string
	notice    func(string)
	noticed   bool
	unwatched bool // a namespace the drop monitor could not watch was said
	tracer    *Tracer
	dropmon   *DropMonitor // started by the first traffic check
	noDropMon bool         // LabConfig.NoDropMonitor
	inherit   forwardInheritance
	prof      *Profile
	faults    *FaultPlan
	closers   []io.Closer      // servers, captures and the tracer, closed first
	lo        map[*Netns]*Link // loopback devices handed out
}

// undoStep is a record to undo at Close and its journal sequence number.
type undoStep struct {
	rec Record
	seq int
	// independent steps next to each other in the stack may run at
	// the same time (see Lab.Close).
	independent bool
}

// LabConfig configures a Lab.
type LabConfig struct {
	// Backend makes the lab's changes; nil means the kernel, with
	// Prefetch. See NewKernel, NewShell, NewRecorder.
	Backend Backend
	// JournalDir is where the journal is written; DefaultJournalDir if "".
	JournalDir string
	// Script names the script in the journal, for `nkscript cleanup`.
	Script string
	// Host overrides the namespace the lab treats as the host (tests use
	// an anonymous namespace), renaming it "host"; nil means the caller's
	// namespace. The lab does not close it.
	Host *Netns
	// Prefix is put in front of the names of the namespaces the lab
	// creates and of the links it creates in namespaces it did not create
	// (the host), so that two runs of one script do not clash.
	Prefix string
	// Notice receives what the user should know once about how the lab
	// is built, such as falling back to legacy tc; nil drops it.
	Notice func(string)
	// Prefetch, from StartPrefetch, hands the kernel backend the
	// namespaces made in the background before the lab existed.
	Prefetch *Prefetch
	// Faults, if set, makes the lab's backend fail or panic in one
	// operation (tests and `make reliability`).
	Faults *FaultPlan
	// NoDropMonitor leaves the drop monitor out: nothing is loaded for
	// it, drops() sees none and verdicts do not say where packets died
	// (`NKSCRIPT_DROP_MONITOR=off`, which `make bench` uses to measure
	// what the monitor costs).
	NoDropMonitor bool
}

// NewLab starts an empty lab in the calling process's namespace and
// creates its journal.
func NewLab(cfg LabConfig) (*Lab, error) {
	b := cfg.Backend
	if b == nil {
		b = NewKernel(cfg.Prefetch)
	}
	l := &Lab{prefix: cfg.Prefix, notice: cfg.Notice, noDropMon: cfg.NoDropMonitor, owned: map[NsID]*Netns{}, byName: map[string]*Netns{}, pendUp: map[*Link]linkWait{}}
	if cfg.Faults != nil {
		b = WithFaults(b, cfg.Faults)
		l.faults = cfg.Faults
	}
	l.b = b
	if l.host = cfg.Host; l.host != nil {
		l.host.name = "host"
	} else {
		var err error
		if l.host, err = b.Host(); err != nil {
			b.Close()
			return nil, err
		}
		l.ownHost = true
	}
	dir := cfg.JournalDir
	if dir == "" {
		dir = DefaultJournalDir
	}
	j, err := b.Journal(dir, cfg.Script, l.host.ID())
	if err != nil {
		if l.ownHost {
			l.host.Close()
		}
		b.Close()
		return nil, err
	}
	l.journal = j
	return l, nil
}

// Ops is the number of kernel-changing operations the lab has performed,
// when it runs with a FaultPlan (0 otherwise).
func (l *Lab) Ops() int {
	if l.faults == nil {
		return 0
	}
	return l.faults.Ops()
}

// Host is the namespace nkscript started in.
func (l *Lab) Host() *Netns { return l.host }

// JournalPath is the lab's journal file ("" if it has none).
func (l *Lab) JournalPath() string { return l.journal.Path() }

// Owns reports whether ns was created by this lab.
func (l *Lab) Owns(ns *Netns) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.owned[ns.id] == ns
}

// Namespaces returns the namespaces the lab created, in creation order.
func (l *Lab) Namespaces() []*Netns {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Netns(nil), l.nslist...)
}

// record journals r and pushes its undo; l.mu is held.
func (l *Lab) record(r Record) (int, error) {
	seq, err := l.journal.Append(r)
	if err != nil {
		return 0, err
	}
	l.undo = append(l.undo, undoStep{rec: r, seq: seq})
	return seq, nil
}

func (l *Lab) checkOpen() error {
	if l.closed {
		return errors.New("lab is closed")
	}
	return nil
}

func (l *Lab) checkOpenLocked() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checkOpen()
}

// CheckNetnsName validates a namespace name.
func CheckNetnsName(name string) error {
	switch {
	case name == "":
		return errors.New("namespace name is empty")
	case len(name) > 255:
		return fmt.Errorf("namespace name %q is longer than 255 bytes", name)
	case name == "." || name == ".." || strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("namespace name %q is not a valid file name", name)
	case strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Errorf("namespace name %q contains spaces or control characters", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("namespace name %q is not valid UTF-8", name)
	}
	return nil
}

// CheckIfName validates an interface name the way the kernel does.
func CheckIfName(name string) error {
	switch {
	case name == "":
		return errors.New("interface name is empty")
	case len(name) > 15:
		return fmt.Errorf("interface name %q is %d bytes; Linux allows at most 15", name, len(name))
	case name == "." || name == ".." || name == "all" || name == "default":
		// "all" and "default" are the per-protocol settings directories
		// in /proc/sys/net/*/conf.
		return fmt.Errorf("interface name %q is reserved by the kernel; pick another name", name)
	case strings.Contains(name, "%"):
		// The kernel takes "v%d" as a template and picks a free number.
		return fmt.Errorf("interface name %q contains '%%', which the kernel treats as a template; pick a literal name", name)
	case strings.ContainsFunc(name, func(r rune) bool { return r == '/' || r == ':' || r <= ' ' || r >= 0x7f }):
		return fmt.Errorf("interface name %q may only use printable ASCII without '/', ':' or spaces", name)
	}
	return nil
}

// Netns creates a named namespace, bind-mounted under NetnsDir so that
// `ip netns exec NAME` works while the lab exists. A name that exists
// already is an error wrapping ErrExists; it is never adopted.
func (l *Lab) Netns(name string) (*Netns, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	if err := CheckNetnsName(name); err != nil {
		return nil, err
	}
	script := name
	if l.prefix != "" {
		name = l.prefix + name
		if err := CheckNetnsName(name); err != nil {
			return nil, &PrefixError{Prefix: l.prefix, Err: err}
		}
	}
	if script == "host" {
		return nil, exists("namespace name %q is reserved for the namespace nkscript runs in; pick another name", name)
	}
	if _, ok := l.byName[script]; ok {
		return nil, exists("this script already created netns %q; use the value that call returned, or pick another name", script)
	}
	var seq int
	var rec *NetnsRecord
	ns, err := l.b.CreateNetns(name, func(r Record) error {
		s, err := l.journal.Append(r)
		if err != nil {
			return err
		}
		if nr, ok := r.(*NetnsRecord); ok {
			rec, seq = nr, s
			return nil
		}
		// The namespaces' mount tree: undone after every namespace
		// mounted in it, which it takes with it.
		l.undo = append(l.undo, undoStep{rec: r, seq: s})
		return nil
	})
	if err != nil {
		if seq != 0 {
			l.journal.Undone(seq)
		}
		return nil, err
	}
	l.owned[ns.id] = ns
	l.byName[script] = ns
	l.nslist = append(l.nslist, ns)
	l.watch(l.dropmon, ns)
	if err := l.noInheritedForwarding(ns); err != nil {
		return nil, err
	}
	// Namespaces go independently of each other: Close removes their
	// names in parallel.
	l.undo = append(l.undo, undoStep{rec: rec, seq: seq, independent: true})
	return ns, nil
}

// PrefixError is a name that is not valid once the run's prefix is put
// in front of it.
type PrefixError struct {
	Prefix string
	Err    error
}

func (e *PrefixError) Error() string { return fmt.Sprintf("with prefix %q: %v", e.Prefix, e.Err) }

// Unwrap returns the error about the prefixed name.
func (e *PrefixError) Unwrap() error { return e.Err }
