// Package caps reads the effective capabilities of the running process and
// says which of those a lab on the host needs it lacks.
package caps

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// A Cap is one Linux capability: its bit in the capability sets and its
// name.
type Cap struct {
	Bit  uint
	Name string
}

// The capabilities a lab on the host uses.
var (
	// NetAdmin makes links, addresses, routes and qdiscs.
	NetAdmin = Cap{12, "CAP_NET_ADMIN"}
	// SysAdmin makes and enters network namespaces and mounts bpffs.
	SysAdmin = Cap{21, "CAP_SYS_ADMIN"}
	// BPF loads programs and makes maps (CAP_SYS_ADMIN also does).
	BPF = Cap{39, "CAP_BPF"}
)

// Effective returns the effective capability set of this process, read
// from the CapEff line of /proc/self/status.
func Effective() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("capabilities: %w", err)
	}
	return parseCapEff(string(b))
}

// parseCapEff reads the CapEff line of a /proc/PID/status text.
func parseCapEff(status string) (uint64, error) {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			set, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("capabilities: CapEff %q: %w", v, err)
			}
			return set, nil
		}
	}
	return 0, fmt.Errorf("capabilities: no CapEff line in /proc/self/status")
}

// missingFromSet returns the names of the capabilities a host lab needs
// that set lacks: CAP_NET_ADMIN, CAP_SYS_ADMIN, and CAP_BPF unless
// CAP_SYS_ADMIN stands in for it.
func missingFromSet(set uint64) []string {
	has := func(c Cap) bool { return set&(1<<c.Bit) != 0 }
	var missing []string
	for _, c := range []Cap{NetAdmin, SysAdmin, BPF} {
		if !has(c) && !(c == BPF && has(SysAdmin)) {
			missing = append(missing, c.Name)
		}
	}
	return missing
}

// MissingForLab returns the names of the capabilities a lab on the host
// needs that this process lacks, none if it has them all or its set
// cannot be read (the run then reports what fails).
func MissingForLab() []string {
	set, err := Effective()
	if err != nil {
		return nil
	}
	return missingFromSet(set)
}

// List names caps in prose: "CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_BPF".
func List(caps []string) string {
	if len(caps) < 2 {
		return strings.Join(caps, "")
	}
	return strings.Join(caps[:len(caps)-1], ", ") + " and " + caps[len(caps)-1]
}

// LabReason says which capabilities a lab on the host needs this process
// lacks, "" if it has them all: "this process (uid 1000) lacks
// CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_BPF, which a lab on the host needs".
func LabReason() string {
	missing := MissingForLab()
	if len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("this process (uid %d) lacks %s, which a lab on the host needs", os.Geteuid(), List(missing))
}

// LabError is why a lab cannot run on the host for lack of capabilities,
// naming them and the ways out (root, or a microVM unless vmErr, called
// only then, says why none can run here), or nil.
func LabError(vmErr func() error) error {
	missing := MissingForLab()
	if len(missing) == 0 {
		return nil
	}
	way := "or in a microVM with --vm"
	if err := vmErr(); err != nil {
		way = fmt.Sprintf("(a microVM, --vm, cannot run here: %v)", err)
	}
	return fmt.Errorf("a lab on the host needs %s, which this process (uid %d) lacks: run nkscript as root (sudo), %s",
		List(missing), os.Geteuid(), way)
}
