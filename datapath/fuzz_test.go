package datapath

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
)

// Fuzz targets for the parsers and checks that take user text: names,
// sysctl keys, hook names and journal files (program constants and map
// values are fuzzed in internal/btfcodec). Run one with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzCheckIfName$' -fuzztime 20s ./datapath/
//
// Without -fuzz, `go test` runs the seeds and testdata/fuzz/<Name>/.

// fzOracleNs is an anonymous namespace shared by the executions of one
// fuzzing process, in which the kernel is asked for its opinion. It goes
// away with the process.
var fzOracleNs = sync.OnceValues(NewAnonNetns)

// fzTempDir returns a directory for the files of one fuzzing process, on
// tmpfs when there is one: creating and deleting a file per execution on
// ext4 slows fuzzing a hundredfold.
func fzTempDir(f *testing.F) string {
	if d, err := os.MkdirTemp("/dev/shm", "nkscript-fuzz-"); err == nil {
		f.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return f.TempDir()
}

// fzQuoted reports whether msg quotes s as %q would.
func fzQuoted(msg, s string) bool { return strings.Contains(msg, strconv.Quote(s)) }

// fzClearLinks deletes every link but lo in ns (deleting one end of a
// pair deletes both).
func fzClearLinks(t *testing.T, ns *Netns) {
	t.Helper()
	for {
		links, err := ns.Handle().LinkList()
		if err != nil {
			t.Fatal(err)
		}
		var del netlink.Link
		for _, l := range links {
			if l.Attrs().Name != "lo" {
				del = l
			}
		}
		if del == nil {
			return
		}
		if err := ns.Handle().LinkDel(del); err != nil {
			t.Fatalf("delete %q: %v", del.Attrs().Name, err)
		}
	}
}

// FuzzCheckIfName: a name CheckIfName accepts is 1..15 bytes without '/',
// ':', NUL or ASCII whitespace, and, as root, the kernel creates a device
// under exactly that name (the lab finds and deletes its devices by
// name). Errors quote the name.
func FuzzCheckIfName(f *testing.F) {
	for _, s := range []string{
		"eth0", "nk0", "task_nk", "a-very-long-name0", "123456789012345", "x",
		"", ".", "..", "a/b", "a:b", "a b", "a\tb", "a\x00b", "a\x7fb",
		"v%s", "all", "default", "lo", "\xff", "é", "x\u2003y", "\xa0", "\u00a0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := CheckIfName(name)
		if err != nil {
			if name != "" && !fzQuoted(err.Error(), name) {
				t.Errorf("CheckIfName(%q) = %q: the error does not quote the name", name, err)
			}
			return
		}
		switch {
		case len(name) == 0 || len(name) > 15:
			t.Fatalf("CheckIfName accepted %q, %d bytes", name, len(name))
		case strings.ContainsAny(name, "/:\x00 \t\n\v\f\r"):
			t.Fatalf("CheckIfName accepted %q, which holds '/', ':', NUL or whitespace", name)
		case name == "." || name == "..":
			t.Fatalf("CheckIfName accepted %q", name)
		}
		if os.Geteuid() != 0 {
			return // the kernel oracle below creates links
		}
		ns, err := fzOracleNs()
		if err != nil {
			t.Fatal(err)
		}
		defer fzClearLinks(t, ns)
		peer := "fzpeer"
		if name == peer {
			peer = "fzpeer2"
		}
		if name == "lo" {
			return // exists already in every namespace
		}
		err = ns.Handle().LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer})
		if err != nil {
			if fzKnownIfNameGap(name) {
				t.Fatalf("CheckIfName accepts %q, the kernel refuses it: %v", name, err)
			}
			t.Fatalf("CheckIfName accepted %q but the kernel refuses it: %v", name, err)
		}
		if _, err := ns.Handle().LinkByName(name); err != nil {
			links, _ := ns.Handle().LinkList()
			var names []string
			for _, l := range links {
				names = append(names, strconv.Quote(l.Attrs().Name))
			}
			if strings.Contains(name, "%") {
				// The kernel takes a name with %d as a template ("v%d"
				// becomes "v0"); a lab would then look for and delete a
				// device that does not exist, and leave the pair behind.
				t.Fatalf("CheckIfName accepts %q, which the kernel turns into another name: %s", name, strings.Join(names, ", "))
			}
			t.Fatalf("CheckIfName accepted %q; the kernel created a device, but not under that name: %s", name, strings.Join(names, ", "))
		}
	})
}

// fzKnownIfNameGap lists names CheckIfName accepts that the kernel
// refuses with an error (so nothing is created, only the message is
// less clear): "all" and "default" (names of /proc/sys/net/*/conf
// directories), names with the byte 0xa0 (a space to the kernel's
// isspace, Latin-1 NBSP), and templates other than a single %d.
func fzKnownIfNameGap(name string) bool {
	return name == "all" || name == "default" || strings.ContainsAny(name, "%") || strings.Contains(name, "\xa0")
}

// FuzzCheckNetnsName: an accepted namespace name is 1..255 bytes, has no
// '/', NUL, whitespace or control characters, is not "." or "..", names a
// file directly in NetnsDir, and is a file name the file system takes as
// is. Errors quote the name.
func FuzzCheckNetnsName(f *testing.F) {
	for _, s := range []string{
		"task_netns", "errt-a", "host", "", ".", "..", "...", "a/b", "/", "a\x00b",
		"a b", "a\nb", "\x7f", "-x", "\xff", strings.Repeat("n", 255), strings.Repeat("n", 256),
	} {
		f.Add(s)
	}
	dir := fzTempDir(f)
	f.Fuzz(func(t *testing.T, name string) {
		err := CheckNetnsName(name)
		if err != nil {
			if name != "" && !fzQuoted(err.Error(), name) {
				t.Errorf("CheckNetnsName(%q) = %q: the error does not quote the name", name, err)
			}
			return
		}
		if len(name) == 0 || len(name) > 255 {
			t.Fatalf("CheckNetnsName accepted %q, %d bytes", name, len(name))
		}
		if name == "." || name == ".." || strings.ContainsFunc(name, func(r rune) bool { return r == '/' || r <= ' ' || r == 0x7f }) {
			t.Fatalf("CheckNetnsName accepted %q", name)
		}
		p := filepath.Join(NetnsDir, name)
		if filepath.Dir(p) != NetnsDir || filepath.Base(p) != name {
			t.Fatalf("CheckNetnsName accepted %q, whose path %s is not a file in %s", name, p, NetnsDir)
		}
		// The file system stores the name as given.
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatalf("CheckNetnsName accepted %q, but it cannot name a file: %v", name, err)
		}
		ents, err := os.ReadDir(dir)
		for _, e := range ents {
			os.Remove(filepath.Join(dir, e.Name()))
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 || ents[0].Name() != name {
			t.Fatalf("CheckNetnsName accepted %q; the file system holds %v", name, ents)
		}
	})
}

// fzSysctlPath is where sysctl(8) and systemd-sysctl look for key: if its
// first separator is a '/', slashes separate and dots are part of names
// (an interface "eth0.100"); otherwise dots separate and slashes stand for
// dots in names.
func fzSysctlPath(key string) string {
	i := strings.IndexAny(key, "./")
	if i < 0 || key[i] == '/' {
		return filepath.Join("/proc/sys", key)
	}
	swapped := strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, key)
	return filepath.Join("/proc/sys", swapped)
}

// FuzzSysctlPath: an accepted key maps into /proc/sys/net, never
// contains "..", and names the file sysctl(8) would. Errors quote the key.
func FuzzSysctlPath(f *testing.F) {
	for _, s := range []string{
		"net.ipv4.ip_forward", "net/ipv4/ip_forward", "net.ipv6.conf.all.forwarding",
		"kernel.ostype", "net", "net.", "net..x", "net/../kernel", "/net/x", "net.a b", "", "net.\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		p, err := sysctlPath(key)
		if err != nil {
			if !fzQuoted(err.Error(), key) {
				t.Errorf("sysctlPath(%q) = %q: the error does not quote the key", key, err)
			}
			return
		}
		if strings.Contains(key, "..") {
			t.Fatalf("sysctlPath accepted %q, which contains \"..\"", key)
		}
		if filepath.Clean(p) != p || !strings.HasPrefix(p+"/", "/proc/sys/net/") {
			t.Fatalf("sysctlPath(%q) = %q, outside /proc/sys/net", key, p)
		}
		for _, el := range strings.Split(p, "/") {
			if el == ".." {
				t.Fatalf("sysctlPath(%q) = %q", key, p)
			}
		}
		if want := fzSysctlPath(key); p != want {
			// sysctl(8) reads a key in slash form as is (an interface
			// may have a dot in its name: "net/ipv4/conf/v0.1/forwarding"),
			// and a '/' in a dotted key as the dot it stands for.
			t.Fatalf("sysctlPath(%q) = %q; sysctl(8) reads %q", key, p, want)
		}
	})
}

// FuzzParseHook: ParseHook and Hook.String round-trip for the four hooks;
// nothing else parses, and the error quotes the input.
func FuzzParseHook(f *testing.F) {
	for _, s := range []string{"ingress", "egress", "primary", "peer", "", "Ingress", "Hook(0)", "Hook(1)", "ingress ", "tcx"} {
		f.Add(s, 0)
	}
	f.Add("", 1)
	f.Add("", 4)
	f.Add("", 5)
	f.Add("", -1)
	f.Fuzz(func(t *testing.T, s string, n int) {
		h, err := ParseHook(s)
		if err != nil {
			if !fzQuoted(err.Error(), s) {
				t.Errorf("ParseHook(%q) = %q: the error does not quote the input", s, err)
			}
		} else {
			if h < HookIngress || h > HookXDP {
				t.Fatalf("ParseHook(%q) = %d, not a hook", s, int(h))
			}
			if h.String() != s {
				t.Fatalf("ParseHook(%q).String() = %q", s, h.String())
			}
			if _, ok := h.attachType(); !ok {
				t.Fatalf("ParseHook(%q) = %s has no attach type", s, h)
			}
		}

		h = Hook(n)
		back, err := ParseHook(h.String())
		_, hasType := h.attachType()
		if h >= HookIngress && h <= HookXDP {
			if err != nil || back != h || !hasType {
				t.Fatalf("Hook(%d): ParseHook(%q) = %d, %v; attach type %v", n, h.String(), int(back), err, hasType)
			}
		} else if err == nil || hasType {
			t.Fatalf("invalid Hook(%d) = %q parses as %d (attach type %v)", n, h.String(), int(back), hasType)
		}
	})
}

var fzJournalSeq atomic.Int64

// fzReadBytes runs ReadJournal on data written to a fresh file in dir.
func fzReadBytes(t *testing.T, dir string, data []byte) (RunHeader, []Record, error) {
	t.Helper()
	p := filepath.Join(dir, fmt.Sprintf("%d.journal", fzJournalSeq.Add(1)))
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(p)
	return ReadJournal(p)
}

// FuzzReadJournal reads arbitrary bytes as a journal: it never panics; a
// result has a run header of this version, each record the decoding of a
// line of the file, in order; and a torn line appended to a file that ends
// with a newline changes nothing.
func FuzzReadJournal(f *testing.F) {
	hdr := `{"op":"run","version":2,"pid":1,"start_time":2,"script":"s.star","host":{"dev":4,"ino":5}}` + "\n"
	f.Add([]byte(""), uint16(0))
	f.Add([]byte(hdr), uint16(10))
	f.Add([]byte(hdr+`{"op":"netns","name":"a","path":"/run/netns/a","ns":{"dev":4,"ino":6}}`+"\n"), uint16(3))
	f.Add([]byte(hdr+`{"op":"link","ns":{"dev":4,"ino":5},"ifindex":7,"name":"v0","kind":"veth"}`+"\n"+`{"op":"undone","seq":2}`+"\n"), uint16(40))
	f.Add([]byte(hdr+`{"op":"link","name":"v0"}`+"\n"+`{"op":"undo`), uint16(0))
	f.Add([]byte(hdr+"\n"+`{"op":"link"}`+"\n"), uint16(5))
	f.Add([]byte(`{"op":"link"}`+"\n"+hdr), uint16(5))
	f.Add([]byte("null\n{}\n"), uint16(1))
	f.Add([]byte(hdr+`{"op":"undone","seq":1}`+"\n"), uint16(1))
	dir := fzTempDir(f)
	tornSrc := []byte(`{"op":"undone","seq":2}`)
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		run, records, err := fzReadBytes(t, dir, data)
		if err != nil {
			return
		}
		if run.Version != JournalVersion || run.PID == 0 {
			t.Fatalf("header %+v is not a run of this version", run)
		}
		// Every record decodes from a line, in file order.
		lines := bytes.Split(data, []byte("\n"))
		li := 1
		for _, r := range records {
			for ; li < len(lines); li++ {
				if fzDecodes(lines[li], r) {
					break
				}
			}
			if li == len(lines) {
				t.Fatalf("record %+v is not a line of the file, or out of order", r)
			}
			li++
		}
		// A run killed mid-write leaves a torn last line: ignored.
		if len(data) == 0 || data[len(data)-1] != '\n' {
			return
		}
		torn := append(bytes.Clone(data), tornSrc[:int(cut)%len(tornSrc)]...)
		run2, records2, err := fzReadBytes(t, dir, torn)
		if err != nil || run2 != run || !reflect.DeepEqual(records, records2) {
			t.Fatalf("a torn last line %q changed the result: %v\nbefore %+v %+v\nafter  %+v %+v", torn[len(data):], err, run, records, run2, records2)
		}
	})
}

// fzDecodes reports whether line decodes as r.
func fzDecodes(line []byte, r Record) bool {
	got, err := decodeRecord(r.Op(), line)
	if err != nil {
		return false
	}
	var tag struct {
		Op string `json:"op"`
	}
	return json.Unmarshal(line, &tag) == nil && tag.Op == r.Op() && reflect.DeepEqual(got, r)
}

// fzLine is one line a journal writer wrote: a record, or an undone mark.
type fzLine struct {
	rec    Record
	undone int
}

// fzRecord makes the record that op byte b asks for, or nil for an
// undone mark.
func fzRecord(b byte, i int, ifname, nsname string, host NsID) Record {
	switch b % 6 {
	case 0:
		return nil
	case 1:
		return &NetnsRecord{Name: nsname, Path: filepath.Join(NetnsDir, nsname), NS: NsID{Dev: 4, Ino: uint64(i)}}
	case 2:
		return &LinkRecord{NS: host, Ifindex: i + 2, Name: ifname, Kind: "veth"}
	case 3:
		return &RouteRecord{NS: host, Route: "10.0.0.0/24 dev " + ifname, Dst: "10.0.0.0/24", Ifindex: i + 2}
	case 4:
		return &SysctlRecord{NS: host, Key: "net.ipv4.conf." + ifname + ".forwarding", Old: "0", New: "1"}
	}
	return &PinRecord{Path: "/sys/fs/bpf/nkscript/" + ifname, LinkID: uint32(b)}
}

// FuzzJournalRoundTrip writes a journal with the real writer, as a run
// would: records named with fuzzed names the name checks accept, some
// undone, and tears cut bytes off its end, as SIGKILL can. Reading
// it back gives exactly the records whose lines are complete, minus those
// a complete "undone" line names; a cut inside the header is an error.
func FuzzJournalRoundTrip(f *testing.F) {
	f.Add("v0", "task_netns", []byte{1, 2, 0, 4, 9}, uint32(0))
	f.Add("v0", "ns", []byte{1, 0, 3, 6, 0}, uint32(20))
	f.Add("v0", "ns", []byte{1, 2, 6}, uint32(1))
	f.Add("eth0", "a", []byte{}, uint32(10))
	f.Add("x<&>\"\\", "n\u00e9", []byte{5, 5, 5, 0, 0, 0}, uint32(321))
	base := fzTempDir(f)
	f.Fuzz(func(t *testing.T, ifname, nsname string, ops []byte, cut uint32) {
		if CheckIfName(ifname) != nil {
			ifname = "v0"
		}
		if CheckNetnsName(nsname) != nil {
			nsname = "ns"
		}
		if len(ops) > 64 {
			ops = ops[:64]
		}
		dir, err := os.MkdirTemp(base, "")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		host := NsID{Dev: 4, Ino: 4026531840}
		j, err := CreateJournal(dir, "fuzz "+nsname+".star", host)
		if err != nil {
			t.Fatal(err)
		}
		header := RunHeader{Version: JournalVersion, PID: os.Getpid(), Script: "fuzz " + nsname + ".star", Host: host, BootID: bootID()}
		written := fzWrite(t, j, ops, ifname, nsname, host)
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(j.Path())
		if err != nil {
			t.Fatal(err)
		}
		// cut bytes are torn off the end (the header's length varies
		// with the process, the rest does not).
		n := len(data) - int(cut%uint32(len(data)+1))
		if err := os.WriteFile(j.Path(), data[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		complete := fzCompleteLines(data, n)
		run, records, err := ReadJournal(j.Path())
		if complete == 0 {
			if err == nil {
				t.Fatalf("journal cut at %d/%d bytes, inside the header, read without error: %+v", n, len(data), run)
			}
			return
		}
		if err != nil {
			t.Fatalf("journal cut at %d/%d bytes: %v", n, len(data), err)
		}
		want := fzLive(written[:complete-1])
		run.StartTime = 0 // /proc/PID/stat field 22, not known here
		if run != header || !reflect.DeepEqual(records, want) {
			t.Fatalf("journal cut at %d/%d bytes (%d complete lines):\nread  %+v\n      %+v\nwant  %+v\n      %+v", n, len(data), complete, run, records, header, want)
		}
	})
}

// fzWrite appends the records ops ask for to j, some undone, and returns
// the lines written after the header.
func fzWrite(t *testing.T, j *Journal, ops []byte, ifname, nsname string, host NsID) []fzLine {
	var written []fzLine
	var live []int // seqs not undone yet
	for i, b := range ops {
		r := fzRecord(b, i, ifname, nsname, host)
		var line fzLine
		var seq int
		var err error
		if r == nil {
			if len(live) == 0 {
				continue
			}
			k := int(b/6) % len(live)
			line.undone = live[k]
			live = append(live[:k], live[k+1:]...)
			err = j.Undone(line.undone)
			seq = len(written) + 2
		} else {
			line.rec = r
			seq, err = j.Append(r)
			live = append(live, seq)
		}
		if err != nil {
			t.Fatal(err)
		}
		if seq != len(written)+2 {
			t.Fatalf("the %d-th line got seq %d", len(written)+2, seq)
		}
		written = append(written, line)
	}
	return written
}

// fzCompleteLines counts the lines whose JSON is complete within the
// first n bytes of data.
func fzCompleteLines(data []byte, n int) int {
	complete, off := 0, 0
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if off+len(bytes.TrimSuffix(line, []byte("\n"))) > n || len(line) == 0 {
			break
		}
		off += len(line)
		complete++
	}
	return complete
}

// fzLive is the records of lines that no line among them marks undone.
func fzLive(lines []fzLine) []Record {
	undone := map[int]bool{}
	for _, l := range lines {
		if l.rec == nil {
			undone[l.undone] = true
		}
	}
	var want []Record
	for i, l := range lines {
		if l.rec != nil && !undone[i+2] {
			want = append(want, l.rec)
		}
	}
	return want
}
