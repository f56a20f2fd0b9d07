package vm

// Messages on the control port, one JSON object per line.

// request is what the host sends the guest as soon as qemu starts.
type request struct {
	Args    []string `json:"args"`
	Env     []string `json:"env"`
	Dir     string   `json:"dir"`
	Modules string   `json:"modules,omitempty"` // host path of the kernel's modules directory
	Verbose bool     `json:"verbose,omitempty"`
	// Serve makes the guest a warm guest: instead of running Args once,
	// it serves runs (warmMsg) on the control port until told to power off.
	Serve bool `json:"serve,omitempty"`
	// RunEnv is added to the environment of each run of a warm guest
	// (Options.Prepare).
	RunEnv []string `json:"run_env,omitempty"`
}

// message is what the guest sends the host, and the host's ack.
type message struct {
	Type string `json:"type"` // ready, start, serving, error, exit (guest); ack (host)

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
	// A warm guest also mounts the host's root without caching, for what
	// changes while it runs (all but liveStable), from a second 9p device.
	guestHostLive = guestStateDir + "/live"
	hostLiveTag   = "nklive"
)

// warmMsg is a message of a warm guest's protocol, which follows the
// "serving" message on the control port and which the host's clients
// speak with the warm guest's daemon on its socket. Every message but the
// daemon's own (stop, status) belongs to a session S, one per client
// connection; the daemon numbers them.
type warmMsg struct {
	// Host to guest: run, stdin, eof, signal, winsize, hangup, status,
	// poweroff; client to daemon also stop. Guest to host: out, exit,
	// status, error.
	Type string `json:"type"`
	S    int    `json:"s,omitempty"`

	// run
	Args  []string `json:"args,omitempty"`
	Env   []string `json:"env,omitempty"`
	Dir   string   `json:"dir,omitempty"`
	Stdin bool     `json:"stdin,omitempty"` // stdin messages follow; else /dev/null
	TTY   bool     `json:"tty,omitempty"`   // run on a terminal, of Rows x Cols
	Rows  int      `json:"rows,omitempty"`
	Cols  int      `json:"cols,omitempty"`
	Check bool     `json:"check,omitempty"` // check the guest is as before after the run
	Keep  bool     `json:"keep,omitempty"`  // the run may leave its lab: the state after it is the new normal

	// stdin, out
	Data []byte `json:"data,omitempty"`
	FD   int    `json:"fd,omitempty"` // out: 1 or 2

	// signal
	Sig int `json:"sig,omitempty"`

	// exit
	Code  int    `json:"code"`
	Dirty string `json:"dirty,omitempty"` // how the guest differs from before the run

	// error
	Error string `json:"error,omitempty"`

	// status
	Status *WarmStatus `json:"status,omitempty"`
}

// WarmStatus is what a warm guest tells about itself.
type WarmStatus struct {
	// Runs is the number of runs it served, Active how many run now.
	Runs   int `json:"runs"`
	Active int `json:"active"`
	// Kept lists the journals of labs the guest keeps (--keep, a run
	// killed in a way that left them), by file name.
	Kept []string `json:"kept,omitempty"`
	// Tainted says why the guest should not serve more runs, if it
	// should not.
	Tainted string `json:"tainted,omitempty"`
}
