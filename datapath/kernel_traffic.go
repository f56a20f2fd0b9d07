package datapath

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func (k *kernel) WaitLinks(ctx context.Context, ns *Netns, oper, nd []int, timeout time.Duration) error {
	return waitLinks(ctx, ns, oper, nd, timeout)
}

func (k *kernel) AddrOwners(addr netip.Addr, nss []*Netns, _ []*Link) ([]*Netns, error) {
	var found []*Netns
	for _, ns := range nss {
		addrs, err := ns.addrList(netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("list addresses in %s: %w", ns.name, err)
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
				found = append(found, ns)
				break
			}
		}
	}
	return found, nil
}

func (k *kernel) Ping(ctx context.Context, src *Netns, dst netip.Addr, opts PingOptions) (PingResult, error) {
	return Ping(ctx, src, dst, opts)
}

func (k *kernel) Probe(ctx context.Context, o ProbeOptions, _ bool) (ProbeResult, error) {
	return Probe(ctx, o)
}

func (k *kernel) Connect(ctx context.Context, src *Netns, proto string, dst netip.AddrPort, timeout time.Duration) (ConnectResult, error) {
	return Connect(ctx, src, proto, dst, timeout)
}

func (k *kernel) Serve(ns *Netns, proto string, port int, reply string) (*Server, error) {
	return Serve(ns, proto, port, reply)
}

func (k *kernel) Capture(s CaptureSpec) (*Capture, error) { return StartCapture(s) }

func (k *kernel) Exec(ctx context.Context, ns *Netns, argv []string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("exec: empty command")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGKILL}
	cmd.WaitDelay = time.Second
	// The child is forked from the locked thread inside ns, so it starts
	// in that namespace.
	if err := ns.Do(cmd.Start); err != nil {
		return "", fmt.Errorf("exec %q in %s: %w", strings.Join(argv, " "), ns.name, err)
	}
	if err := cmd.Wait(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		if msg != "" {
			return stdout.String(), fmt.Errorf("exec %q in %s: %w: %s", strings.Join(argv, " "), ns.name, err, msg)
		}
		return stdout.String(), fmt.Errorf("exec %q in %s: %w", strings.Join(argv, " "), ns.name, err)
	}
	return stdout.String(), nil
}

func (k *kernel) Trace(record func(Record) error) (*Tracer, error) { return startTracer(record) }

func (k *kernel) DropMonitor() (*DropMonitor, error) { return startDropMonitor() }
