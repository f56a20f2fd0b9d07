package compile

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// multiarchInclude returns the directory of the machine's UAPI headers
// for its multiarch tuple (/usr/include/x86_64-linux-gnu holds
// <asm/types.h>), which clang does not search for -target bpf, or "" when
// there is none.
var multiarchInclude = sync.OnceValue(func() string {
	for _, tuple := range []string{
		command("gcc", "-print-multiarch"),
		command("dpkg-architecture", "-qDEB_HOST_MULTIARCH"),
		unameTuple(),
	} {
		if tuple == "" {
			continue
		}
		d := filepath.Join("/usr/include", tuple)
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d
		}
	}
	return ""
})

// command returns the trimmed output of a command, "" when it fails.
func command(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// unameTuple is the Debian multiarch tuple of the machine nkscript was
// built for.
func unameTuple() string {
	return map[string]string{
		"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu", "386": "i386-linux-gnu",
		"arm": "arm-linux-gnueabihf", "ppc64le": "powerpc64le-linux-gnu", "s390x": "s390x-linux-gnu",
		"riscv64": "riscv64-linux-gnu", "loong64": "loongarch64-linux-gnu",
	}[runtime.GOARCH]
}
