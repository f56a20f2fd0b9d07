// Package machine takes a snapshot of what a run of nkscript can change or
// leave behind on a machine, read from the kernel directly (netlink, the
// bpf syscall, /proc and /sys), so that a test can compare the machine
// after a run with the machine before it.
//
// A snapshot is a sorted list of lines, one per object, that leaves out
// what changes by itself (counters, ifindexes, jiffies, operational
// state), so that two snapshots of an unchanged machine are equal and
// `diff` of their text forms shows what changed:
//
//	netns <inode>                         every network namespace (machine-wide)
//	netns-name <name> <inode>|dangling    the named ones, under /run/netns
//	netns-tree <name>                     nkscript's trees of namespace mounts
//	link <ns>/<dev> <kind> up|down mtu N [master <dev>]
//	addr <ns>/<dev> <prefix>
//	route <ns> <family> table <t> <type> <dst> ...
//	rule <ns> <family> pref <n> ...
//	qdisc <ns>/<dev> <kind> handle <h> parent <p>
//	filter <ns>/<dev> parent <p> pref <n> <kind> ...
//	attach <ns>/<dev> <hook> prog <id> <type> <name>
//	sysctl <ns> <key>=<value>             the host namespaces' network settings
//	bpf-prog|bpf-map|bpf-link <id> ...    every BPF object (machine-wide)
//	bpffs|tracefs <mount point>           where they are mounted
//	pin <path>                            everything under /sys/fs/bpf
//	trace-instance <name>                 tracefs instances
//	journal <path>                        files in the journal directories
//	qemu <pid> start <ticks> <comm>       qemu processes (machine-wide)
//
// <ns> is "(host)" for the namespace of the process taking the snapshot
// and a name of /run/netns otherwise. Machine-wide objects are compared
// as they are: an object the kernel or a daemon creates meanwhile counts
// as a change, which on a quiet machine (a test machine) does not happen;
// see Options.Local for snapshots taken while other tests run.
package machine

import (
	"fmt"
	"slices"
	"strings"
)

// DefaultJournalDir is the journal directory nkscript uses unless told
// otherwise.
const DefaultJournalDir = "/run/nkscript"

// HostLabel names the namespace of the process taking the snapshot.
const HostLabel = "(host)"

// Options says what a snapshot covers.
type Options struct {
	// Journals are the journal directories whose files are listed;
	// nil means DefaultJournalDir.
	Journals []string
	// Hosts are named namespaces (of /run/netns) that stand for the host
	// of the runs being checked, as the namespace a test runs nkscript in
	// does: their sysctls are listed as the real host's are. They are
	// listed whatever Namespaces says.
	Hosts []string
	// Namespaces selects the named namespaces that are listed and
	// entered; nil selects all of them.
	Namespaces func(name string) bool
	// TraceInstances selects the tracing instances that are listed; nil
	// selects all of them.
	TraceInstances func(name string) bool
	// Local restricts the snapshot to what the selected namespaces hold,
	// for tests that run while other tests change the machine: it leaves
	// out the snapshotting process's own namespace, anonymous namespaces,
	// BPF objects found by ID (programs attached in the selected
	// namespaces are still listed, as attach and filter lines), qemu
	// processes, and tracing instances named <prefix>-<pid> of a live
	// process. Journals, pins and mounts are still listed.
	Local bool
}

// State is a snapshot: sorted, distinct lines, one per object.
type State struct {
	Lines []string
}

// String is the text form of s, one line per object.
func (s State) String() string {
	if len(s.Lines) == 0 {
		return ""
	}
	return strings.Join(s.Lines, "\n") + "\n"
}

// Parse reads the text form String writes; lines starting with '#' and
// empty lines are ignored.
func Parse(text string) State {
	var s State
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			s.Lines = append(s.Lines, l)
		}
	}
	slices.Sort(s.Lines)
	s.Lines = slices.Compact(s.Lines)
	return s
}

// Diff lists what changed from before to after: "+ line" for each object
// that appeared, then "- line" for each that went, each group in the
// order of its state, one per line; it is empty when nothing changed.
func Diff(before, after State) string {
	var d []string
	d = appendMissing(d, "+ ", after.Lines, before.Lines)
	d = appendMissing(d, "- ", before.Lines, after.Lines)
	return strings.Join(d, "\n")
}

// appendMissing appends prefix+l to d for each l of lines not in other.
func appendMissing(d []string, prefix string, lines, other []string) []string {
	have := make(map[string]bool, len(other))
	for _, l := range other {
		have[l] = true
	}
	for _, l := range lines {
		if !have[l] {
			d = append(d, prefix+l)
		}
	}
	return d
}

// Snapshot lists what opts covers. It needs root (CAP_SYS_ADMIN and
// CAP_NET_ADMIN); an object that disappears while it is being read is
// left out, any other failure to read is an error.
func Snapshot(opts Options) (State, error) {
	if opts.Journals == nil {
		opts.Journals = []string{DefaultJournalDir}
	}
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	c := &collector{opts: opts, add: add}
	steps := []func() error{c.namespaces, c.netnsContents, c.bpfObjects, c.files, c.qemu}
	for _, step := range steps {
		if err := step(); err != nil {
			c.close()
			return State{}, err
		}
	}
	c.close()
	slices.Sort(lines)
	return State{Lines: slices.Compact(lines)}, nil
}

// collector gathers the lines of one snapshot.
type collector struct {
	opts Options
	add  func(format string, args ...any)
	// nss are the namespaces whose contents are listed, open until
	// close.
	nss []*nsRef
}

func (c *collector) close() {
	for _, n := range c.nss {
		n.close()
	}
	c.nss = nil
}

// Leaks is a Diff less what other processes may take away on their own:
// a namespace some process held (listed by inode; a named namespace that
// went is kept, by its name line) and a qemu process that ended. What
// went is a leak of the suite only where the suite could have removed
// what was not its own.
func Leaks(diff string) string {
	var out []string
	for _, l := range strings.Split(diff, "\n") {
		if strings.HasPrefix(l, "- netns ") || strings.HasPrefix(l, "- qemu ") {
			continue
		}
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}
