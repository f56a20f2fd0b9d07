package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// foreignObjects is what another user's runs left in the machine's
// default journal directory: namespaces by name and identity, and
// journals by path and content.
type foreignObjects struct {
	netns    map[string]uint64 // name in /run/netns -> inode
	journals map[string][]byte
}

// TestForeignStateSurvives puts, in the machine's default journal
// directory, what other users can have there: a lab kept with --keep and
// the stale journal of a run killed with SIGKILL, with names no other
// suite uses. It then runs every testscript that calls `nkscript
// cleanup`, and checks that both labs' namespaces (the same namespaces,
// by inode) and journals (the same bytes) are still there. At the end it
// removes them itself, by identity.
func TestForeignStateSurvives(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root: the labs create namespaces")
	}
	bin := nkscriptBinary(t)
	dir := t.TempDir()
	prefix := fmt.Sprintf("fs%d-", os.Getpid())
	own := &foreignObjects{netns: map[string]uint64{}, journals: map[string][]byte{}}
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

	var files []string
	scripts, err := filepath.Glob("../../testdata/script/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	callsCleanup := regexp.MustCompile(`(?m)^[^#\n]*\bnkscript\b.*\bcleanup\b`)
	for _, f := range scripts {
		if b, err := os.ReadFile(f); err == nil && callsCleanup.Match(commandsOf(b)) {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		t.Fatal("no testscript calls nkscript cleanup: the test checks nothing")
	}
	t.Logf("testscripts that call nkscript cleanup: %v", files)
	p := scriptParams(t)
	p.Dir, p.Files = "", files
	t.Run("scripts", func(t *testing.T) { testscript.Run(t, p) })

	if d := own.changed(); d != "" {
		t.Errorf("the testscripts touched another user's kept lab or stale journal:\n%s", d)
	}
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
		o.netns[n] = ino
	}
}

// changed says what of o is gone or different, or "".
func (o *foreignObjects) changed() string {
	var d []string
	for n, ino := range o.netns {
		if got, err := netnsInode(n); err != nil {
			d = append(d, fmt.Sprintf("namespace %s: %v", n, err))
		} else if got != ino {
			d = append(d, fmt.Sprintf("namespace %s is another namespace (inode %d, was %d)", n, got, ino))
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
	for n, ino := range o.netns {
		if got, err := netnsInode(n); err == nil && got == ino {
			if out, err := exec.Command("ip", "netns", "del", n).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", n, err, out)
			}
		}
	}
	for path, content := range o.journals {
		if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, content) {
			if err := os.Remove(path); err != nil {
				t.Error(err)
			}
		}
	}
}

// netnsInode is the inode of the namespace mounted at /run/netns/name.
func netnsInode(name string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join("/run/netns", name), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
