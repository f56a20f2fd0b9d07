package datapath

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DefaultJournalDir is where runs record what they create, so that
// `nkscript cleanup` can undo runs that were killed with SIGKILL.
const DefaultJournalDir = "/run/nkscript"

// JournalVersion is the version of the journal format this nkscript
// writes and reads; `nkscript cleanup` refuses journals of other versions.
const JournalVersion = 2

// RunHeader is a journal's first line: the process that owns it.
type RunHeader struct {
	Version   int    `json:"version"`
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"` // /proc/PID/stat field 22
	Script    string `json:"script,omitempty"`
	Host      NsID   `json:"host"`
	BootID    string `json:"boot_id,omitempty"`
}

// undone marks an earlier record, by sequence number, as undone.
type undone struct {
	Seq int `json:"seq"`
}

// Journal is an append-only file of records, one JSON object per line
// tagged with its "op". Every append is written through before the kernel
// object it describes is relied on, so a run killed at any point leaves a
// journal that names everything it made.
type Journal struct {
	path string
	f    *os.File
	seq  int
}

// CreateJournal starts the journal of the calling process in dir. The
// directory must be root's and writable by nobody else.
func CreateJournal(dir, script string, host NsID) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create journal dir: %w", err)
	}
	if err := checkPrivate(dir); err != nil {
		return nil, fmt.Errorf("create journal: %w", err)
	}
	pid := os.Getpid()
	start, err := processStartTime(pid)
	if err != nil {
		return nil, fmt.Errorf("create journal: %w", err)
	}
	path := filepath.Join(dir, fmt.Sprintf("%d-%d.journal", pid, start))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create journal: %w", err)
	}
	j := &Journal{path: path, f: f}
	hdr := RunHeader{Version: JournalVersion, PID: pid, StartTime: start, Script: script, Host: host, BootID: bootID()}
	if _, err := j.write("run", hdr); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return j, nil
}

// checkPrivate refuses a journal directory or file that is not owned by
// root or that group or others may write: whoever can write a journal
// decides what `nkscript cleanup` deletes.
func checkPrivate(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !ok:
		return fmt.Errorf("%s: cannot tell its owner", path)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s is a symbolic link; journals must be plain files in a plain directory", path)
	case st.Uid != 0:
		return fmt.Errorf("%s is owned by uid %d, not root: a journal names what nkscript deletes, so only root may write it; chown it to root", path, st.Uid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s is writable by group or others (mode %04o): a journal names what nkscript deletes, so only root may write it; chmod go-w it", path, fi.Mode().Perm())
	}
	return nil
}

// Path is the journal's file.
func (j *Journal) Path() string { return j.path }

// Append writes r and returns its sequence number.
func (j *Journal) Append(r Record) (int, error) { return j.write(r.Op(), r) }

func (j *Journal) write(op string, v any) (int, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("journal: %w", err)
	}
	line := fmt.Appendf(nil, `{"op":%q`, op)
	if len(b) > 2 {
		line = append(append(line, ','), b[1:]...)
	} else {
		line = append(line, '}')
	}
	if _, err := j.f.Write(append(line, '\n')); err != nil {
		return 0, fmt.Errorf("journal: %w", err)
	}
	j.seq++
	return j.seq, nil
}

// Undone records that the record with sequence number seq was removed.
func (j *Journal) Undone(seq int) error {
	_, err := j.write("undone", undone{Seq: seq})
	return err
}

// Close closes the file, leaving it in place (for --keep).
func (j *Journal) Close() error { return j.f.Close() }

// Remove closes and deletes the journal: the run left nothing behind.
func (j *Journal) Remove() error {
	j.f.Close()
	if err := os.Remove(j.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove journal: %w", err)
	}
	return nil
}

// errNoHeader is a journal whose first line is not a complete run header.
var errNoHeader = errors.New("no run header")

// ErrJournalVersion is returned for a journal written by an nkscript
// with another journal format.
var ErrJournalVersion = errors.New("journal of another nkscript version")

// ReadJournal parses a journal file. Records marked undone are dropped; a
// torn last line (the process died mid-write) is ignored.
func ReadJournal(path string) (run RunHeader, records []Record, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return RunHeader{}, nil, err
	}
	var all []Record
	done := map[int]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var tag struct {
			Op string `json:"op"`
		}
		if json.Unmarshal(sc.Bytes(), &tag) != nil {
			break
		}
		switch {
		case n == 1 && tag.Op == "run":
			if err := json.Unmarshal(sc.Bytes(), &run); err != nil {
				return RunHeader{}, nil, fmt.Errorf("read journal %s: %w", path, err)
			}
			if run.Version != JournalVersion {
				return run, nil, fmt.Errorf("read journal %s: it has format version %d, this nkscript reads version %d; clean it up with the nkscript that wrote it: %w", path, run.Version, JournalVersion, ErrJournalVersion)
			}
		case n == 1:
			return RunHeader{}, nil, fmt.Errorf("read journal %s: %w", path, errNoHeader)
		case tag.Op == "undone":
			var u undone
			if json.Unmarshal(sc.Bytes(), &u) == nil {
				done[u.Seq] = true
			}
			all = append(all, nil)
		default:
			r, err := decodeRecord(tag.Op, sc.Bytes())
			if err != nil {
				return run, nil, fmt.Errorf("read journal %s line %d: %w", path, n, err)
			}
			all = append(all, r)
		}
	}
	if run.PID == 0 {
		return RunHeader{}, nil, fmt.Errorf("read journal %s: %w", path, errNoHeader)
	}
	for i, r := range all {
		// Sequence numbers count from the header, 1.
		if r != nil && !done[i+2] {
			records = append(records, r)
		}
	}
	return run, records, nil
}

func decodeRecord(op string, line []byte) (Record, error) {
	mk, ok := recordTypes[op]
	if !ok {
		return nil, fmt.Errorf("unknown record %q", op)
	}
	r := mk()
	if err := json.Unmarshal(line, r); err != nil {
		return nil, fmt.Errorf("record %q: %w", op, err)
	}
	return r, nil
}

// processStartTime returns the start time of pid in clock ticks since
// boot, which together with the pid identifies a process across pid reuse.
func processStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after it are
	// counted from its closing parenthesis.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// processAlive reports whether the process that wrote a journal still runs.
func processAlive(pid int, start uint64) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	got, err := processStartTime(pid)
	return err == nil && got == start
}

// bootID identifies the running boot: a journal from an earlier boot
// describes objects that no longer exist.
func bootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}
