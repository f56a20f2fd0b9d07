package machine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// perLinkSysctls are the settings of each link's conf directory that are
// listed: the ones labs and routers change. Every setting of the all and
// default directories is listed, and every top-level one.
var perLinkSysctls = map[string][]string{
	"ipv4": {"forwarding", "rp_filter", "accept_local", "proxy_arp", "mc_forwarding"},
	"ipv6": {"forwarding", "disable_ipv6"},
}

// sysctls lists the network settings nkscript can change in the
// namespace the calling thread is in (labelled ns): every file directly
// in /proc/sys/net/ipv4 and /proc/sys/net/ipv6, all of conf/all and
// conf/default, and perLinkSysctls of each link in names. Files that
// cannot be read (write-only ones, an unset stable_secret) are left out.
func (c *collector) sysctls(ns string, names map[int]string) error {
	for _, fam := range []string{"ipv4", "ipv6"} {
		base := filepath.Join("/proc/sys/net", fam)
		dirs := []string{base, base + "/conf/all", base + "/conf/default"}
		for _, d := range dirs {
			if err := c.sysctlDir(ns, d); err != nil {
				return err
			}
		}
		for _, dev := range names {
			for _, key := range perLinkSysctls[fam] {
				c.sysctlFile(ns, filepath.Join(base, "conf", dev, key))
			}
		}
	}
	return nil
}

func (c *collector) sysctlDir(ns, dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil // IPv6 is off in this kernel
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			c.sysctlFile(ns, filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

func (c *collector) sysctlFile(ns, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	key := strings.ReplaceAll(strings.TrimPrefix(path, "/proc/sys/"), "/", ".")
	c.add("sysctl %s %s=%s", ns, key, strings.Join(strings.Fields(string(b)), " "))
}
