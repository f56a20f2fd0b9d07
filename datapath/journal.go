package datapath

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DefaultJournalDir is where runs record what they create, so that
// `nkscript cleanup` can undo runs that were killed with SIGKILL.
const DefaultJournalDir = "/run/nkscript"

// Entry is one record of a journal: an object a run created or a setting
// it changed, with what identifies it beyond its name.
type Entry struct {
	Op string `json:"op"` // "run", "netns", "link", "route", "sysctl", "pin", "bpffs", "undone"

	// "run": the process owning the journal.
	PID       int    `json:"pid,omitempty"`
	StartTime uint64 `json:"start_time,omitempty"` // /proc/PID/stat field 22
	Script    string `json:"script,omitempty"`
	Host      NsID   `json:"host,omitzero"`
	BootID    string `json:"boot_id,omitempty"`

	// "netns": Name, Path, NS. "link": NS, Ifindex, Name, Kind.
	// "route": NS, Route, Dst, Via, Table. "sysctl": NS, Key, Old, New.
	// "pin": Path, LinkID. "bpffs": Path (a mount).
	Name    string `json:"name,omitempty"`
	Path    string `json:"path,omitempty"`
	NS      NsID   `json:"ns,omitzero"`
	Ifindex int    `json:"ifindex,omitempty"`
	Kind    string `json:"kind,omitempty"`
	Route   string `json:"route,omitempty"`
	Dst     string `json:"dst,omitempty"`
	Via     string `json:"via,omitempty"`
	Table   int    `json:"table,omitempty"`
	Key     string `json:"key,omitempty"`
	Old     string `json:"old,omitempty"`
	New     string `json:"new,omitempty"`

	// "undone": Seq names an earlier entry the run already removed.
	Seq int `json:"seq,omitempty"`

	LinkID uint32 `json:"link_id,omitempty"`
}

// Journal is an append-only file of Entries, one JSON object per line.
// Every append is written through before the kernel object it describes is
// relied on, so a run killed at any point leaves a journal that names
// everything it made.
type Journal struct {
	path string
	f    *os.File
	seq  int
}

// CreateJournal starts the journal of the calling process in dir.
func CreateJournal(dir, script string, host NsID) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create journal dir: %w", err)
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
	if _, err := j.Append(Entry{Op: "run", PID: pid, StartTime: start, Script: script, Host: host, BootID: bootID()}); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return j, nil
}

// Path is the journal's file.
func (j *Journal) Path() string { return j.path }

// Append writes e and returns its sequence number.
func (j *Journal) Append(e Entry) (int, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return 0, fmt.Errorf("journal: %w", err)
	}
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return 0, fmt.Errorf("journal: %w", err)
	}
	j.seq++
	return j.seq, nil
}

// Undone records that the entry with sequence number seq was removed.
func (j *Journal) Undone(seq int) error {
	_, err := j.Append(Entry{Op: "undone", Seq: seq})
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

// ReadJournal parses a journal file. Entries marked undone are dropped; a
// torn last line (the process died mid-write) is ignored.
func ReadJournal(path string) (run Entry, entries []Entry, err error) {
	f, err := os.Open(path)
	if err != nil {
		return Entry{}, nil, err
	}
	defer f.Close()
	var all []Entry
	undone := map[int]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			break
		}
		all = append(all, e)
		if e.Op == "undone" {
			undone[e.Seq] = true
		}
	}
	if err := sc.Err(); err != nil {
		return Entry{}, nil, fmt.Errorf("read journal %s: %w", path, err)
	}
	if len(all) == 0 || all[0].Op != "run" {
		return Entry{}, nil, fmt.Errorf("read journal %s: no run header", path)
	}
	for i, e := range all[1:] {
		if e.Op != "undone" && !undone[i+2] {
			entries = append(entries, e)
		}
	}
	return all[0], entries, nil
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
