package main

import (
	"fmt"
	"io"
	"net/netip"

	"github.com/nkscript/nkscript/datapath"
)

// explainDrops starts the lab's drop monitor and prints every drop it
// sees to w, one line each (--explain).
func explainDrops(lab *datapath.Lab, w io.Writer) error {
	m, err := lab.DropMonitor()
	if err != nil {
		return err
	}
	m.Subscribe(func(d datapath.Drop) {
		fmt.Fprintf(w, "drop: %s %s\n", packetSaid(d), lab.ExplainDrop(d))
	})
	return nil
}

// packetSaid says what a dropped packet was: "tcp 10.0.0.1:40000 ->
// 10.0.1.2:80".
func packetSaid(d datapath.Drop) string {
	if !d.Src.IsValid() {
		return d.Proto()
	}
	src, dst := d.Src.String(), d.Dst.String()
	if d.Sport != 0 || d.Dport != 0 {
		src, dst = netip.AddrPortFrom(d.Src, d.Sport).String(), netip.AddrPortFrom(d.Dst, d.Dport).String()
	}
	return fmt.Sprintf("%s %s -> %s", d.Proto(), src, dst)
}
