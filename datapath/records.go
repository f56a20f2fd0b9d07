package datapath

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Record is one journal record: an object a run created or a setting it
// changed, with what identifies it beyond its name, and how to undo it.
// Lab.Close and `nkscript cleanup` undo records through the same method;
// each undo checks identity first and leaves alone what is gone or has
// changed hands.
type Record interface {
	// Op names the record type in the journal ("netns", "link", ...).
	Op() string
	// String says what the record is about, for messages.
	String() string
	undo(u *undoer) error
}

// undoer is what undoing a record needs: the namespaces it can reach
// (records of others are skipped) and where progress goes.
type undoer struct {
	nss  map[NsID]*Netns
	here NsID // the namespace the undo runs in, for messages
	log  io.Writer
	// crashed is set by `nkscript cleanup`: the run may have created
	// objects it was killed before journaling.
	crashed bool
}

// newUndoer returns an undoer that reaches the namespaces nss and runs
// in host.
func newUndoer(host *Netns, nss map[NsID]*Netns, log io.Writer) *undoer {
	return &undoer{nss: nss, here: host.id, log: log}
}

// in returns the namespace id names if the undo can reach it; otherwise
// it says the record is skipped and returns nil.
func (u *undoer) in(id NsID, r Record) *Netns {
	if ns := u.nss[id]; ns != nil {
		return ns
	}
	fmt.Fprintf(u.log, "  skip %s %s: recorded in namespace %s, cleanup runs in %s\n", r.Op(), r, id, u.here)
	return nil
}

func (u *undoer) logf(format string, args ...any) { fmt.Fprintf(u.log, "  "+format+"\n", args...) }

// NetnsRecord is a named namespace the run created: mounted at Mount, in
// the run's tree (see NetnsTreeRecord), and named by a link to it at Path.
//
// Journals of nkscript before 2026-12 have no Mount: the namespace was
// mounted at Path itself, and Claim and Marker name the file Path was
// claimed with and its content.
type NetnsRecord struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Mount  string `json:"mount,omitempty"`
	NS     NsID   `json:"ns"`
	Claim  string `json:"claim,omitempty"`
	Marker string `json:"marker,omitempty"`
}

// Op implements Record.
func (r *NetnsRecord) Op() string     { return "netns" }
func (r *NetnsRecord) String() string { return r.Name }

// undo removes the namespace's name. Its mount goes with the tree, whose
// record is undone after this one: all of the tree's namespaces at once.
func (r *NetnsRecord) undo(u *undoer) error {
	if r.Mount == "" {
		return r.undoMountedAtPath(u)
	}
	named, err := unlinkNetnsName(r.Mount, r.Path)
	if err != nil {
		return fmt.Errorf("netns %s: %w", r.Name, err)
	}
	if id, err := statNsPath(r.Mount); err != nil || id != r.NS {
		if named {
			u.logf("removed the name of netns %s", r.Name)
		}
		return nil // deleted by hand (ip netns del), or never mounted
	}
	if u.crashed {
		if err := deleteOutwardLinks(r.Mount, r.NS, u.nss); err != nil {
			u.logf("netns %s: %v (they go when the kernel frees the namespace)", r.Name, err)
		}
	}
	u.logf("deleted netns %s", r.Name)
	return nil
}

// undoMountedAtPath undoes a record of an older journal, whose namespace
// is mounted at Path.
func (r *NetnsRecord) undoMountedAtPath(u *undoer) error {
	if r.Claim != "" {
		if err := os.Remove(r.Claim); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("netns %s: %w", r.Name, err)
		}
	}
	id, err := statNsPath(r.Path)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("netns %s: %w", r.Name, err)
	}
	if id != r.NS {
		return r.undoClaim(u)
	}
	if u.crashed {
		if err := deleteOutwardLinks(r.Path, r.NS, u.nss); err != nil {
			u.logf("netns %s: %v (they go when the kernel frees the namespace)", r.Name, err)
		}
	}
	if err := unmountNetns(r.Path); err != nil {
		return err
	}
	u.logf("deleted netns %s", r.Name)
	return nil
}

// undoClaim removes the name a run claimed and was killed before it
// mounted the namespace there: the placeholder holding the run's marker.
// Anything else is not the run's.
func (r *NetnsRecord) undoClaim(u *undoer) error {
	var st unix.Statfs_t
	if fi, err := os.Lstat(r.Path); err == nil && fi.Mode().IsRegular() && r.Marker != "" &&
		unix.Statfs(r.Path, &st) == nil && st.Type != unix.NSFS_MAGIC && holds(r.Path, r.Marker) {
		if err := os.Remove(r.Path); err != nil {
			return fmt.Errorf("netns %s: %w", r.Name, err)
		}
		u.logf("removed the unmounted name %s", r.Path)
		return nil
	}
	u.logf("left netns %s: it is another namespace now", r.Name)
	return nil
}

// holds reports whether the file at path holds exactly content.
func holds(path, content string) bool {
	b, err := os.ReadFile(path)
	return err == nil && string(b) == content
}

// LinkRecord is a device the run created in a namespace it did not
// create; devices in the run's own namespaces go with them.
type LinkRecord struct {
	NS      NsID   `json:"ns"`
	Ifindex int    `json:"ifindex"`
	Name    string `json:"name"`
	Kind    string `json:"kind"`
}

// Op implements Record.
func (r *LinkRecord) Op() string     { return "link" }
func (r *LinkRecord) String() string { return r.Name }

func (r *LinkRecord) undo(u *undoer) error {
	ns := u.in(r.NS, r)
	if ns == nil {
		return nil
	}
	if err := deleteLinkByIdentity(ns, r.Ifindex, r.Name, r.Kind); err != nil {
		return err
	}
	u.logf("deleted link %s (ifindex %d)", r.Name, r.Ifindex)
	return nil
}

// RouteRecord is a route the run added in a namespace it did not create.
type RouteRecord struct {
	NS      NsID   `json:"ns"`
	Route   string `json:"route"`
	Dst     string `json:"dst"`
	Via     string `json:"via,omitempty"`
	Ifindex int    `json:"ifindex,omitempty"`
	Table   int    `json:"table,omitempty"`
}

// Op implements Record.
func (r *RouteRecord) Op() string     { return "route" }
func (r *RouteRecord) String() string { return r.Route }

func (r *RouteRecord) undo(u *undoer) error {
	ns := u.in(r.NS, r)
	if ns == nil {
		return nil
	}
	dst, err := netip.ParsePrefix(r.Dst)
	if err != nil {
		return fmt.Errorf("journal route %q: %w", r.Route, err)
	}
	var via netip.Addr
	if r.Via != "" {
		if via, err = netip.ParseAddr(r.Via); err != nil {
			return fmt.Errorf("journal route %q: %w", r.Route, err)
		}
	}
	if err := nlExec(ns, (*netlink.Handle).RouteDel, newNetlinkRoute(dst, via, r.Ifindex, r.Table)); err != nil && !isNoSuchObject(err) {
		return fmt.Errorf("delete route %s: %w", r.Route, err)
	}
	u.logf("deleted route %s", r.Route)
	return nil
}

// RuleRecord is a routing policy rule the run added in a namespace it did
// not create.
type RuleRecord struct {
	NS       NsID   `json:"ns"`
	Rule     string `json:"rule"`
	V6       bool   `json:"v6,omitempty"`
	Src      string `json:"src,omitempty"`
	Dst      string `json:"dst,omitempty"`
	IIF      string `json:"iif,omitempty"`
	OIF      string `json:"oif,omitempty"`
	Fwmark   uint32 `json:"fwmark,omitempty"`
	Table    int    `json:"table"`
	Priority int    `json:"priority,omitempty"`
}

// ruleRecord is the record of r added in ns.
func ruleRecord(ns *Netns, r RuleSpec) *RuleRecord {
	rec := &RuleRecord{NS: ns.id, Rule: r.String(), V6: r.V6(), Fwmark: r.Fwmark, Table: r.Table, Priority: r.Priority}
	if r.Src.IsValid() {
		rec.Src = r.Src.String()
	}
	if r.Dst.IsValid() {
		rec.Dst = r.Dst.String()
	}
	if r.IIF != nil {
		rec.IIF = r.IIF.name
	}
	if r.OIF != nil {
		rec.OIF = r.OIF.name
	}
	return rec
}

// Op implements Record.
func (r *RuleRecord) Op() string     { return "rule" }
func (r *RuleRecord) String() string { return r.Rule }

func (r *RuleRecord) undo(u *undoer) error {
	ns := u.in(r.NS, r)
	if ns == nil {
		return nil
	}
	var pfx [2]netip.Prefix
	for i, p := range []string{r.Src, r.Dst} {
		if p == "" {
			continue
		}
		var err error
		if pfx[i], err = netip.ParsePrefix(p); err != nil {
			return fmt.Errorf("journal rule %q: %w", r.Rule, err)
		}
	}
	nr := newNetlinkRule(r.V6, pfx[0], pfx[1], r.IIF, r.OIF, r.Fwmark, r.Table, r.Priority)
	if err := nlExec(ns, (*netlink.Handle).RuleDel, nr); err != nil && !isNoSuchObject(err) {
		return fmt.Errorf("delete rule %s: %w", r.Rule, err)
	}
	u.logf("deleted rule %s", r.Rule)
	return nil
}

// SysctlRecord is a setting the run changed in a namespace it did not
// create: Old is restored if the setting still holds New.
type SysctlRecord struct {
	NS  NsID   `json:"ns"`
	Key string `json:"key"`
	Old string `json:"old"`
	New string `json:"new"`
}

// Op implements Record.
func (r *SysctlRecord) Op() string     { return "sysctl" }
func (r *SysctlRecord) String() string { return r.Key }

func (r *SysctlRecord) undo(u *undoer) error {
	ns := u.in(r.NS, r)
	if ns == nil {
		return nil
	}
	cur, err := ReadSysctl(ns, r.Key)
	if err != nil {
		return err
	}
	if cur != r.New {
		// Someone else changed it after us: theirs wins.
		return nil
	}
	if err := writeSysctl(ns, r.Key, r.Old); err != nil {
		return fmt.Errorf("restore sysctl %s=%s: %w", r.Key, r.Old, err)
	}
	u.logf("restored %s", r.Key)
	return nil
}

// PinRecord is a BPF link a kept lab pinned at Path.
type PinRecord struct {
	Path   string `json:"path"`
	LinkID uint32 `json:"link_id"`
}

// Op implements Record.
func (r *PinRecord) Op() string     { return "pin" }
func (r *PinRecord) String() string { return r.Path }

// undo removes the pin if it still holds the same BPF link; the link (and
// its program) go away with the last reference.
func (r *PinRecord) undo(u *undoer) error {
	l, err := link.LoadPinnedLink(r.Path, nil)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("pin %s: %w", r.Path, err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return fmt.Errorf("pin %s: %w", r.Path, err)
	}
	if uint32(info.ID) != r.LinkID {
		u.logf("left pin %s: it holds another BPF link now", r.Path)
		return nil
	}
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("unpin %s: %w", r.Path, err)
	}
	u.logf("detached BPF link %d (%s)", info.ID, filepath.Base(r.Path))
	// Remove the run's directory and the nkscript directory once empty.
	dir := filepath.Dir(r.Path)
	if os.Remove(dir) == nil {
		os.Remove(filepath.Dir(dir))
	}
	return nil
}

// BPFFSRecord is a bpffs the run mounted at Path.
type BPFFSRecord struct {
	Path string `json:"path"`
}

// Op implements Record.
func (r *BPFFSRecord) Op() string     { return "bpffs" }
func (r *BPFFSRecord) String() string { return r.Path }

// undo unmounts the bpffs if it is empty.
func (r *BPFFSRecord) undo(*undoer) error {
	ents, err := os.ReadDir(r.Path)
	if err != nil {
		return nil
	}
	for _, ent := range ents {
		// The kernel preloads these iterators into every bpffs mount.
		if n := ent.Name(); n != "maps.debug" && n != "progs.debug" {
			return nil
		}
	}
	if err := unix.Unmount(r.Path, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", r.Path, err)
	}
	return nil
}

// TraceRecord is a tracing instance the run created at Path. Only
// nkscript names instances nkscript-PID; this one is the run's, by the
// journal.
type TraceRecord struct {
	Path string `json:"path"`
}

// Op implements Record.
func (r *TraceRecord) Op() string     { return "trace" }
func (r *TraceRecord) String() string { return r.Path }

func (r *TraceRecord) undo(u *undoer) error {
	if err := removeTraceInstance(r.Path); err != nil {
		return err
	}
	u.logf("removed tracing instance %s", r.Path)
	return nil
}

// TraceFSRecord is a tracefs the run mounted on a directory of its own,
// Path.
type TraceFSRecord struct {
	Path     string `json:"path"`
	Instance string `json:"instance,omitempty"` // the tracing instance it serves
}

// Op implements Record.
func (r *TraceFSRecord) Op() string     { return "tracefs" }
func (r *TraceFSRecord) String() string { return r.Path }

func (r *TraceFSRecord) undo(*undoer) error { return unmountTraceFS(r.Path, r.Instance) }

// recordTypes makes an empty record of each op, for reading journals.
var recordTypes = map[string]func() Record{
	"netns":      func() Record { return new(NetnsRecord) },
	"netns-tree": func() Record { return new(NetnsTreeRecord) },
	"link":       func() Record { return new(LinkRecord) },
	"route":      func() Record { return new(RouteRecord) },
	"rule":       func() Record { return new(RuleRecord) },
	"sysctl":     func() Record { return new(SysctlRecord) },
	"pin":        func() Record { return new(PinRecord) },
	"bpffs":      func() Record { return new(BPFFSRecord) },
	"trace":      func() Record { return new(TraceRecord) },
	"tracefs":    func() Record { return new(TraceFSRecord) },
}
