package datapath

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// StaleRun is the journal of a run whose process is gone.
type StaleRun struct {
	Journal string
	PID     int
	Script  string
	Records []Record
}

// StaleRuns lists the journals in dir whose processes no longer run:
// runs killed with SIGKILL, runs whose cleanup failed, and labs kept with
// --keep. A directory or journal that is not root's alone is refused.
func StaleRuns(dir string) ([]StaleRun, error) {
	if err := checkPrivate(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("journal directory: %w", err)
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.journal"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var out []StaleRun
	for _, p := range paths {
		if err := checkPrivate(p); err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		run, records, err := ReadJournal(p)
		if errors.Is(err, errNoHeader) && headerless(p) {
			// Killed before it wrote its header: it made nothing.
			continue
		}
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
		out = append(out, StaleRun{Journal: p, PID: run.PID, Script: run.Script, Records: records})
	}
	return out, nil
}

// Cleanup undoes a stale run from its journal, in reverse order, with the
// undo of each record that Lab.Close uses: a namespace must still be the
// same inode, a link the same ifindex, name and kind, a sysctl still hold
// the value the run set. Objects that are gone or changed hands are left
// alone. The journal is removed when everything succeeded. Progress goes
// to log.
func Cleanup(r StaleRun, log io.Writer) error {
	host, err := HostNetns()
	if err != nil {
		return err
	}
	defer host.Close()
	said := &countingWriter{w: log}
	u := newUndoer(host, map[NsID]*Netns{host.id: host}, said)
	u.crashed = true
	var errs []error
	for i := len(r.Records) - 1; i >= 0; i-- {
		if err := r.Records[i].undo(u); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := os.Remove(r.Journal); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if said.n == 0 {
		fmt.Fprintf(log, "  nothing was left of it (removed by hand, or by the run before it was killed); journal removed\n")
	}
	return nil
}

// countingWriter counts what is written through it.
type countingWriter struct {
	w io.Writer
	n int
}

func (c *countingWriter) Write(b []byte) (int, error) {
	c.n += len(b)
	return c.w.Write(b)
}

// headerless reports whether a journal with no header is to be passed
// over: its process, named by the file name PID-STARTTIME.journal, is
// still starting, or was killed right after creating it, before it wrote
// the header or made anything (then the journal is removed).
func headerless(path string) bool {
	var pid int
	var start uint64
	if _, err := fmt.Sscanf(filepath.Base(path), "%d-%d.journal", &pid, &start); err != nil {
		return false
	}
	if processAlive(pid, start) {
		return true
	}
	os.Remove(path)
	return true
}
