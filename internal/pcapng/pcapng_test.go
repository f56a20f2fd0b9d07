package pcapng

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := w.AddInterface("ns1/veth0", LinkTypeEthernet, 0)
	b, _ := w.AddInterface("host/nk0", LinkTypeRaw, 65535)
	t0 := time.Unix(1700000000, 123456789)
	want := []Packet{
		{Interface: a, Time: t0, Data: []byte{1, 2, 3}, OrigLen: 3},
		{Interface: b, Time: t0.Add(time.Millisecond), Data: []byte{4, 5, 6, 7, 8}, OrigLen: 1500},
		{Interface: a, Time: t0.Add(time.Second), Data: []byte{}, OrigLen: 0},
	}
	for _, p := range want {
		if err := w.WritePacket(p.Interface, p.Time, p.Data, p.OrigLen); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WritePacket(2, t0, nil, 0); err == nil {
		t.Error("a packet on an interface never added was written")
	}
	if buf.Len()%4 != 0 {
		t.Errorf("file length %d is not a multiple of 4", buf.Len())
	}
	f, err := Read(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	wantIfs := []Interface{{"ns1/veth0", LinkTypeEthernet, 0}, {"host/nk0", LinkTypeRaw, 65535}}
	if !slices.Equal(f.Interfaces, wantIfs) {
		t.Errorf("interfaces %+v, want %+v", f.Interfaces, wantIfs)
	}
	if len(f.Packets) != len(want) {
		t.Fatalf("%d packets, want %d", len(f.Packets), len(want))
	}
	for i, p := range f.Packets {
		w := want[i]
		if p.Interface != w.Interface || !p.Time.Equal(w.Time) || !bytes.Equal(p.Data, w.Data) || p.OrigLen != w.OrigLen {
			t.Errorf("packet %d: %+v, want %+v", i, p, w)
		}
	}
}

func TestReadRefuses(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf)
	w.AddInterface("x", LinkTypeRaw, 0)
	w.WritePacket(0, time.Unix(1, 0), []byte{1}, 1)
	good := buf.Bytes()
	for name, b := range map[string][]byte{
		"empty":       nil,
		"truncated":   good[:len(good)-1],
		"no header":   good[28:],
		"two headers": append(append([]byte(nil), good[:28]...), good...),
	} {
		if _, err := Read(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err %v, want ErrFormat", name, err)
		}
	}
}

// FuzzRead checks that Read never panics and that what it accepts is
// written back to bytes it reads the same.
func FuzzRead(f *testing.F) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf)
	w.AddInterface("ns/dev", LinkTypeEthernet, 0)
	w.WritePacket(0, time.Unix(5, 6), []byte("packet"), 60)
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Read(b)
		if err != nil {
			return
		}
		var out bytes.Buffer
		w, err := NewWriter(&out)
		if err != nil {
			t.Fatal(err)
		}
		for _, ifc := range file.Interfaces {
			w.AddInterface(ifc.Name, ifc.LinkType, ifc.SnapLen)
		}
		for _, p := range file.Packets {
			if err := w.WritePacket(p.Interface, p.Time, p.Data, p.OrigLen); err != nil {
				t.Fatal(err)
			}
		}
		again, err := Read(out.Bytes())
		if err != nil {
			t.Fatalf("written back, not read: %v", err)
		}
		if len(again.Packets) != len(file.Packets) || !slices.Equal(again.Interfaces, file.Interfaces) {
			t.Fatalf("read back %+v, want %+v", again, file)
		}
	})
}
