package datapath

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// BPFFSDir is where kept labs pin their BPF links.
const BPFFSDir = "/sys/fs/bpf"

// ensureBPFFS mounts bpffs on BPFFSDir unless it is mounted; it reports
// whether it mounted it.
func ensureBPFFS() (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(BPFFSDir, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return false, nil
	}
	if err := unix.Mount("bpf", BPFFSDir, "bpf", 0, "mode=0700"); err != nil {
		return false, fmt.Errorf("mount bpffs on %s: %w", BPFFSDir, err)
	}
	return true, nil
}
