package vm

// Messages on the control port, one JSON object per line.

// request is what the host sends the guest as soon as qemu starts.
type request struct {
	Args    []string `json:"args"`
	Env     []string `json:"env"`
	Dir     string   `json:"dir"`
	Modules string   `json:"modules,omitempty"` // host path of the kernel's modules directory
	Verbose bool     `json:"verbose,omitempty"`
}

// message is what the guest sends the host, and the host's ack.
type message struct {
	Type string `json:"type"` // ready, start, error, exit (guest); ack (host)

	// error
	Error string `json:"error,omitempty"`

	// exit
	Code   int   `json:"code"`
	Stdout int64 `json:"stdout,omitempty"` // bytes written to the stdout port
	Stderr int64 `json:"stderr,omitempty"`
}

// Names of the virtio-serial ports, as the guest sees them in
// /sys/class/virtio-ports/*/name.
const (
	portControl = "nkscript.control"
	portStdout  = "nkscript.stdout"
	portStderr  = "nkscript.stderr"
)

// guestEnvMarker is a kernel command line parameter; the kernel hands
// unknown name=value parameters to init as environment variables. Its value
// tells the guest's stages apart: the kernel starts the first, which sets
// the guest up and executes the program again, with the marker changed, for
// the second, which runs main.
const (
	guestEnvMarker = "NKSCRIPT_VM"
	guestStage1    = "1"
	guestStage2    = "2"
)

// modprobeName is the base name of the path the guest kernel runs as its
// module loader (/proc/sys/kernel/modprobe): a symlink to /init.
const modprobeName = "nkscript-modprobe"

// Paths inside the guest's initramfs.
const (
	guestStateDir     = "/.nkscript"
	guestHostRoot     = guestStateDir + "/root"    // the host's root filesystem (9p)
	guestBootMods     = guestStateDir + "/modules" // modules needed to mount it
	guestModprobePath = guestStateDir + "/" + modprobeName
	guestModulesDir   = guestStateDir + "/kmod" // symlink to the kernel's module directory
	guestTmpDir       = guestStateDir + "/tmp"  // tmpfs holding the guest's writes to /tmp
	guestStage2File   = guestStateDir + "/stage2.json"
	hostRootTag       = "nkroot"
)
