package vm

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// WarmDir is the directory of the warm guests' sockets and state files,
// its owner's only: $NKSCRIPT_VM_DIR, else /run/nkscript/vm.
var WarmDir = warmDirDefault()

func warmDirDefault() string {
	if d := os.Getenv("NKSCRIPT_VM_DIR"); d != "" {
		return d
	}
	return "/run/nkscript/vm"
}

// ErrNoWarmGuest means no warm guest runs for the kernel asked for.
var ErrNoWarmGuest = errors.New("no warm guest runs for this kernel")

// WarmState is what the state file of a warm guest records.
type WarmState struct {
	// Key names the guest's kernel in file names; Kernel is how the user
	// named it ("" for the default) and Release its version.
	Key     string `json:"key"`
	Kernel  string `json:"kernel"`
	Release string `json:"release"`
	// Daemon and Qemu are the host processes, by identity.
	Daemon ProcID `json:"daemon"`
	Qemu   ProcID `json:"qemu"`
	// Binary is the identity of the executable the guest runs.
	Binary  string    `json:"binary"`
	Started time.Time `json:"started"`
	// ByKeep says that `--keep` started the guest: cleanup stops it once
	// it keeps no lab.
	ByKeep bool `json:"by_keep,omitempty"`
}

// ProcID identifies a process: its PID and its start time in clock ticks
// since boot (/proc/PID/stat), which a recycled PID does not share.
type ProcID struct {
	PID   int    `json:"pid"`
	Start string `json:"start"`
}

// procID returns the identity of the live process pid.
func procID(pid int) (ProcID, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcID{}, err
	}
	s := string(b)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return ProcID{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 20 {
		return ProcID{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return ProcID{PID: pid, Start: f[19]}, nil
}

// Alive reports whether the process p identifies still runs.
func (p ProcID) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	now, err := procID(p.PID)
	return err == nil && now == p
}

// Kill sends sig to p if p still runs.
func (p ProcID) Kill(sig syscall.Signal) {
	if p.Alive() {
		syscall.Kill(p.PID, sig)
	}
}

// warmKey returns the file name key of kernel: a pinned kernel's release,
// or a hash of a bzImage's absolute path.
func warmKey(kernel string) (key, release string) {
	if kernel == "" {
		return DefaultKernel.Release, DefaultKernel.Release
	}
	if spec, ok := PinnedKernel(kernel); ok {
		return spec.Release, spec.Release
	}
	abs, err := filepath.Abs(kernel)
	if err != nil {
		abs = kernel
	}
	h := fnv.New64a()
	h.Write([]byte(abs))
	return fmt.Sprintf("image-%016x", h.Sum64()), abs
}

func (s *WarmState) socketPath() string { return filepath.Join(WarmDir, s.Key+".sock") }
func statePath(key string) string       { return filepath.Join(WarmDir, key+".json") }

// SocketPath is the control socket of the guest.
func (s *WarmState) SocketPath() string { return s.socketPath() }

// LogPath is where the guest's daemon writes the guest's console and what
// went wrong.
func (s *WarmState) LogPath() string { return filepath.Join(WarmDir, s.Key+".log") }

// binaryID identifies the executable path by device, inode, size and
// modification time: a rebuilt binary differs.
func binaryID(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st == nil {
		return ""
	}
	return fmt.Sprintf("%d:%d:%d:%d", st.Dev, st.Ino, fi.Size(), fi.ModTime().UnixNano())
}

// ensureWarmDir creates WarmDir, root's only, and checks nobody else can
// write to it.
func ensureWarmDir() error {
	if err := os.MkdirAll(WarmDir, 0o700); err != nil {
		return err
	}
	fi, err := os.Lstat(WarmDir)
	if err != nil {
		return err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 || st == nil || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s must be a directory only its owner can use (mode 0700)", WarmDir)
	}
	return nil
}

// writeState writes s to its state file, atomically.
func writeState(s *WarmState) error {
	b, err := json.MarshalIndent(s, "", "\t")
	if err != nil {
		return err
	}
	tmp := statePath(s.Key) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, statePath(s.Key))
}

// readState reads the state file of key; a guest whose daemon is gone is
// ErrNoWarmGuest, and its files are removed.
func readState(key string) (*WarmState, error) {
	b, err := os.ReadFile(statePath(key))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoWarmGuest
	}
	if err != nil {
		return nil, err
	}
	var s WarmState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", statePath(key), err)
	}
	if !s.Daemon.Alive() {
		s.Qemu.Kill(syscall.SIGKILL)
		s.removeFiles()
		return nil, ErrNoWarmGuest
	}
	return &s, nil
}

// removeFiles removes the guest's socket and state file.
func (s *WarmState) removeFiles() {
	os.Remove(s.socketPath())
	os.Remove(statePath(s.Key))
}

// WarmGuests lists the running warm guests.
func WarmGuests() ([]*WarmState, error) {
	paths, err := filepath.Glob(filepath.Join(WarmDir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []*WarmState
	for _, p := range paths {
		s, err := readState(strings.TrimSuffix(filepath.Base(p), ".json"))
		if errors.Is(err, ErrNoWarmGuest) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// FindWarm returns the running warm guest for kernel (as Options.Kernel
// names it), or ErrNoWarmGuest.
func FindWarm(kernel string) (*WarmState, error) {
	key, _ := warmKey(kernel)
	return readState(key)
}
