package kernelcheck

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
)

// NetkitInfo creates a netkit pair with `ip link add nkc0 type netkit
// ARGS...` in a network namespace of its own (unshare --net) and returns
// what `ip -d -j link show` reports as key in the device's link info data
// ("" if it reports nothing), or "" and no error if ip or the kernel
// refuses ARGS. It tells whether a kernel has a netkit knob from what the
// kernel reports back, as an independent tool sees it: distribution
// kernels carry features before the release that brought them.
func NetkitInfo(key string, args ...string) (string, error) {
	script := "ip link add nkc0 type netkit " + strings.Join(args, " ") + " && ip -d -j link show nkc0"
	out, err := exec.Command("unshare", "--net", "sh", "-c", script).Output()
	if err != nil {
		return "", nil
	}
	var links []struct {
		Info struct {
			Data map[string]any `json:"info_data"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return "", fmt.Errorf("check netkit %s: ip -d -j link: %v: %s", key, err, out)
	}
	v, ok := links[0].Info.Data[key]
	if !ok {
		return "", nil
	}
	return fmt.Sprint(v), nil
}

// NetkitQueues reports whether `ip link add nkc0 numtxqueues TX
// numrxqueues RX type netkit` succeeds in a network namespace of its own:
// Linux 6.7 takes more than one queue each way, later kernels refuse more
// than one transmit queue.
func NetkitQueues(tx, rx int) bool {
	script := fmt.Sprintf("ip link add nkc0 numtxqueues %d numrxqueues %d type netkit", tx, rx)
	return exec.Command("unshare", "--net", "sh", "-c", script).Run() == nil
}
