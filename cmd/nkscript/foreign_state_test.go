package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/internal/testenv"
	"github.com/rogpeppe/go-internal/testscript"
)

// keptLabScript is the lab another user keeps up with --keep: two
// namespaces joined by a veth pair, nothing in the host namespace.
const keptLabScript = `
a = netns("a")
b = netns("b")
veth_pair("fx0", "fx1", primary_ns = a, peer_ns = b)
print("built")
`

// staleLabScript is a run another user killed with SIGKILL: it makes a
// namespace, then waits until it is killed.
const staleLabScript = `
netns("s")
print("ready")
exec(host, "sleep 60")
`

// txtarNamespaces are, by testscript, names of namespaces it makes before
// its prefix $P is put in front: another suite's, or a user's own lab,
// can hold them on the machine.
var txtarNamespaces = map[string][]string{
	"attach.txtar": {"at_a", "at_b"},
	"errors.txtar": {"errt-pre"},
	"keep.txtar":   {"keept-a", "keept-b"},
}

// foreignObjects is what others have on the machine: namespaces by name,
// identity and links, and journals in the machine's default journal
// directory by path and content.
type foreignObjects struct {
	netns    map[string]uint64 // name in /run/netns -> inode
	links    map[string]string // name in /run/netns -> `ip -br link` in it
	journals map[string][]byte
}

// TestForeignStateSurvives puts, in the machine's default journal
// directory, what other users can have there: a lab kept with --keep and
// the stale journal of a run killed with SIGKILL, with names no other
// suite uses; and namespaces named as testscripts name theirs before
// their prefix $P is put in front (txtarNamespaces). It then runs every
// testscript that calls `nkscript cleanup` and those of txtarNamespaces,
// and checks that the namespaces (the same namespaces, by inode, with the
// same links) and journals (the same bytes) are still there. At the end
// it removes them itself, by identity.
func TestForeignStateSurvives(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root: the labs create namespaces")
	}
	bin := nkscriptBinary(t)
	dir := t.TempDir()
	prefix := fmt.Sprintf("fs%d-", os.Getpid())
	own := &foreignObjects{netns: map[string]uint64{}, links: map[string]string{}, journals: map[string][]byte{}}
	t.Cleanup(func() { own.remove(t) })

	kept := filepath.Join(dir, "kept.star")
	stale := filepath.Join(dir, "stale.star")
	for path, src := range map[string]string{kept: keptLabScript, stale: staleLabScript} {
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "--vm=never", "--keep", "--prefix="+prefix+"k-", kept)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nkscript --keep: %v\n%s", err, out)
	}
	own.add(t, cmd.Process.Pid, prefix+"k-a", prefix+"k-b")
	own.add(t, killedRun(t, bin, prefix+"s-", stale), prefix+"s-s")
	for _, names := range txtarNamespaces {
		for _, n := range names {
			own.addNetns(t, n)
		}
	}

	p := scriptParams(t)
	p.Dir, p.Files = "", foreignStateScripts(t)
	t.Run("scripts", func(t *testing.T) { testscript.Run(t, p) })

	if d := own.changed(); d != "" {
		t.Errorf("the testscripts touched another user's kept lab, stale journal or namespace:\n%s", d)
	}
}

// foreignStateScripts are the testscripts TestForeignStateSurvives runs:
// those that call `nkscript cleanup` (exec nkscript or nkrun) and those
// of txtarNamespaces.
func foreignStateScripts(t *testing.T) []string {
	t.Helper()
	scripts, err := filepath.Glob("../../testdata/script/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	callsCleanup := regexp.MustCompile(`(?m)^[^#\n]*\b(nkscript|nkrun)\b.*\bcleanup\b`)
	for _, f := range scripts {
		if b, err := os.ReadFile(f); err == nil && callsCleanup.Match(commandsOf(b)) {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		t.Fatal("no testscript calls nkscript cleanup: the test checks nothing")
	}
	t.Logf("testscripts that call nkscript cleanup: %v", files)
	for name := range txtarNamespaces {
		f := filepath.Join("../../testdata/script", name)
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("txtarNamespaces: %v", err)
		}
		if !slices.Contains(files, f) {
			files = append(files, f)
		}
	}
	return files
}

// commandsOf returns a txtar archive's script: what comes before its
// first file.
func commandsOf(archive []byte) []byte {
	if i := bytes.Index(archive, []byte("\n-- ")); i >= 0 {
		return archive[:i]
	}
	return archive
}

// killedRun runs script with prefix in the default journal directory,
// waits until its namespace exists and kills it with SIGKILL, leaving a
// stale journal. It returns the run's process ID.
func killedRun(t *testing.T, bin, prefix, script string) int {
	t.Helper()
	cmd := exec.Command(bin, "--vm=never", "--prefix="+prefix, script)
	// The run's own children (sleep) go with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() {
		syscall.Kill(-pid, syscall.SIGKILL)
		cmd.Wait()
	}()
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("the run to be killed ended before it was ready")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run to be killed was not ready after 30s")
	}
	return pid
}

// add records the journal of the run with process ID pid and the
// namespaces named names, which that run made.
func (o *foreignObjects) add(t *testing.T, pid int, names ...string) {
	t.Helper()
	js, err := filepath.Glob(filepath.Join(datapath.DefaultJournalDir, fmt.Sprintf("%d-*.journal", pid)))
	if err != nil || len(js) != 1 {
		t.Fatalf("journal of run %d in %s: %v %v", pid, datapath.DefaultJournalDir, js, err)
	}
	b, err := os.ReadFile(js[0])
	if err != nil {
		t.Fatal(err)
	}
	o.journals[js[0]] = b
	for _, n := range names {
		ino, err := netnsInode(n)
		if err != nil {
			t.Fatalf("namespace %s of run %d: %v", n, pid, err)
		}
		o.netns[n], o.links[n] = ino, netnsLinks(n)
	}
}

// addNetns makes the namespace name with `ip netns add` and records it;
// it fails if name is taken: then it is someone else's, which this test
// must not touch.
func (o *foreignObjects) addNetns(t *testing.T, name string) {
	t.Helper()
	if _, err := netnsInode(name); err == nil {
		t.Fatalf("namespace %s exists already, someone else's: this test cannot check that it survives", name)
	}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	ino, err := netnsInode(name)
	if err != nil {
		t.Fatal(err)
	}
	o.netns[name], o.links[name] = ino, netnsLinks(name)
}

// changed says what of o is gone or different, or "".
func (o *foreignObjects) changed() string {
	var d []string
	for n, ino := range o.netns {
		if got, err := netnsInode(n); err != nil {
			d = append(d, fmt.Sprintf("namespace %s: %v", n, err))
		} else if got != ino {
			d = append(d, fmt.Sprintf("namespace %s is another namespace (inode %d, was %d)", n, got, ino))
		} else if l := netnsLinks(n); l != o.links[n] {
			d = append(d, fmt.Sprintf("namespace %s has other links:\n%s\nwas:\n%s", n, l, o.links[n]))
		}
	}
	for path, content := range o.journals {
		if b, err := os.ReadFile(path); err != nil {
			d = append(d, fmt.Sprintf("journal %s: %v", path, err))
		} else if !bytes.Equal(b, content) {
			d = append(d, fmt.Sprintf("journal %s changed", path))
		}
	}
	return strings.Join(d, "\n")
}

// remove deletes what o records and nothing else: a namespace only if
// its name still holds the same namespace, a journal only if it still has
// the same content.
func (o *foreignObjects) remove(t *testing.T) {
	// The kept lab and the killed run go as `nkscript cleanup` undoes
	// them, from their journals, if those are still as they were.
	for path, content := range o.journals {
		if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, content) {
			continue
		}
		_, recs, err := datapath.ReadJournal(path)
		if err == nil {
			err = datapath.Cleanup(datapath.StaleRun{Journal: path, Records: recs}, io.Discard)
		}
		if err != nil {
			t.Errorf("clean up %s: %v", path, err)
		}
	}
	for n, ino := range o.netns {
		if got, err := netnsInode(n); err == nil && got == ino {
			if out, err := exec.Command("ip", "netns", "del", n).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", n, err, out)
			}
		}
	}
}

// netnsLinks is what `ip -br link` shows in the namespace name, or the
// error it printed.
func netnsLinks(name string) string {
	out, _ := exec.Command("ip", "-n", name, "-br", "link").CombinedOutput()
	return string(out)
}

// netnsInode is the inode of the namespace mounted at /run/netns/name.
func netnsInode(name string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join("/run/netns", name), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
