package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestCleanupJournalDir(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"cleanup", "--journal-dir", dir}, exitOK, "nothing to clean up\n", ""},
		{[]string{"cleanup", "--journal-dir=" + dir}, exitOK, "nothing to clean up\n", ""},
		{[]string{"--journal-dir=" + dir, "cleanup"}, exitOK, "nothing to clean up\n", ""},
		{[]string{"--journal-dir=" + dir, "cleanup", "extra"}, exitUsage, "", "takes no arguments"},
		{[]string{"cleanup", "--bogus"}, exitUsage, "", "unknown flag: --bogus"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code || stdout.String() != tc.stdout || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("nkscript %v: exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr with %q",
				tc.args, code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}
