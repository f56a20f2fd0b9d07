package datapath

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// StaleRun is the journal of a run whose process is gone.
type StaleRun struct {
	Journal string
	PID     int
	Script  string
	Entries []Entry
}

// StaleRuns lists the journals in dir whose processes no longer run:
// runs killed with SIGKILL, runs whose cleanup failed, and labs kept with
// --keep.
func StaleRuns(dir string) ([]StaleRun, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.journal"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var out []StaleRun
	for _, p := range paths {
		run, entries, err := ReadJournal(p)
		if err != nil {
			return nil, err
		}
		if run.BootID != "" && run.BootID != bootID() {
			// Written before a reboot: everything it names is gone, and
			// ifindexes may have been reused since.
			os.Remove(p)
			continue
		}
		if processAlive(run.PID, run.StartTime) {
			continue
		}
		out = append(out, StaleRun{Journal: p, PID: run.PID, Script: run.Script, Entries: entries})
	}
	return out, nil
}

// Cleanup undoes a stale run from its journal, in reverse order, checking
// each object's identity first: a namespace must still be the same inode,
// a link the same ifindex, name and kind, a sysctl still hold the value the
// run set. Objects that are gone or changed hands are left alone. The
// journal is removed when everything succeeded. Progress goes to log.
func Cleanup(r StaleRun, log io.Writer) error {
	host, err := HostNetns()
	if err != nil {
		return err
	}
	defer host.Close()
	var errs []error
	for i := len(r.Entries) - 1; i >= 0; i-- {
		e := r.Entries[i]
		var err error
		switch e.Op {
		case "netns":
			err = cleanupNetns(e, log)
		case "pin":
			err = cleanupPin(e, log)
		case "bpffs":
			err = cleanupBPFFS(e)
		case "trace":
			// Only nkscript names instances nkscript-PID; this one
			// is the run's, by the journal.
			if err = removeTraceInstance(e.Path); err == nil {
				fmt.Fprintf(log, "  removed tracing instance %s\n", e.Path)
			}
		case "tracefs":
			err = unmountIfUnused(e.Path)
		case "link", "route", "sysctl":
			if e.NS != host.id {
				fmt.Fprintf(log, "  skip %s %s: recorded in namespace %s, cleanup runs in %s\n", e.Op, e.Name+e.Route+e.Key, e.NS, host.id)
				continue
			}
			switch e.Op {
			case "link":
				err = deleteLinkByIdentity(host, e.Ifindex, e.Name, e.Kind)
				if err == nil {
					fmt.Fprintf(log, "  deleted link %s (ifindex %d)\n", e.Name, e.Ifindex)
				}
			case "route":
				err = cleanupRoute(host, e)
				if err == nil {
					fmt.Fprintf(log, "  deleted route %s\n", e.Route)
				}
			case "sysctl":
				err = restoreSysctl(host, e.Key, e.Old, e.New)
				if err == nil {
					fmt.Fprintf(log, "  restored %s\n", e.Key)
				}
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := os.Remove(r.Journal); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func cleanupNetns(e Entry, log io.Writer) error {
	id, err := statNsPath(e.Path)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("netns %s: %w", e.Name, err)
	}
	if id != e.NS {
		// The run claimed the name and was killed before mounting the
		// namespace there: the placeholder is an empty file, which
		// nobody else can have claimed since (names are claimed with
		// O_EXCL). Anything else is not the run's.
		var st unix.Statfs_t
		if fi, err := os.Lstat(e.Path); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 &&
			unix.Statfs(e.Path, &st) == nil && st.Type != unix.NSFS_MAGIC {
			if err := os.Remove(e.Path); err != nil {
				return fmt.Errorf("netns %s: %w", e.Name, err)
			}
			fmt.Fprintf(log, "  removed the unmounted name %s\n", e.Path)
			return nil
		}
		fmt.Fprintf(log, "  left netns %s: it is another namespace now\n", e.Name)
		return nil
	}
	if err := unmountNetns(e.Path); err != nil {
		return err
	}
	fmt.Fprintf(log, "  deleted netns %s\n", e.Name)
	return nil
}

func cleanupRoute(ns *Netns, e Entry) error {
	dst, err := netip.ParsePrefix(e.Dst)
	if err != nil {
		return fmt.Errorf("journal route %q: %w", e.Route, err)
	}
	r := &netlink.Route{Dst: prefixToIPNet(dst), LinkIndex: e.Ifindex, Table: e.Table}
	if e.Via != "" {
		via, err := netip.ParseAddr(e.Via)
		if err != nil {
			return fmt.Errorf("journal route %q: %w", e.Route, err)
		}
		r.Gw = via.AsSlice()
	}
	if err := ns.nl.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete route %s: %w", e.Route, err)
	}
	return nil
}
