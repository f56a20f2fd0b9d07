package datapath

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJournalPrivate checks that runs and cleanup refuse a journal
// directory, or a journal, that others could have written: whoever writes
// a journal decides what cleanup deletes.
func TestJournalPrivate(t *testing.T) {
	requireRoot(t)
	open := t.TempDir()
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateJournal(open, "x.star", NsID{}); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("CreateJournal in a 0777 directory: %v", err)
	}
	if _, err := StaleRuns(open); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("StaleRuns of a 0777 directory: %v", err)
	}

	dir := t.TempDir()
	theirs := filepath.Join(dir, "1-1.journal")
	if err := os.WriteFile(theirs, []byte(`{"op":"run","version":2,"pid":1,"start_time":1}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := StaleRuns(dir); err == nil || !strings.Contains(err.Error(), "owned by uid 65534, not root") {
		t.Errorf("StaleRuns with a journal of uid 65534: %v", err)
	}
	if err := os.Chown(theirs, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(theirs, 0o622); err != nil {
		t.Fatal(err)
	}
	if _, err := StaleRuns(dir); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("StaleRuns with a 0622 journal: %v", err)
	}
}

// TestJournalVersion checks that a journal of another format version is
// refused with a message that says so, rather than misread.
func TestJournalVersion(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "1-1.journal")
	if err := os.WriteFile(old, []byte(`{"op":"run","pid":1,"start_time":1}`+"\n"+`{"op":"netns","name":"a","path":"/run/netns/a"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := ReadJournal(old)
	if err == nil || !strings.Contains(err.Error(), "format version 0, this nkscript reads version 2") {
		t.Errorf("ReadJournal of a version-0 journal: %v", err)
	}
}
