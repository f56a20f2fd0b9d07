package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

func (k *kernel) LoadProgram(spec ProgramSpec) (*Program, error) { return LoadProgram(spec) }

func (k *kernel) Attach(p *Program, target *Link, hook Hook, opts AttachOptions) (*Attachment, error) {
	return AttachProgram(p, target.ns, target.index, hook, opts)
}

func (k *kernel) Chain(target *Link, hook Hook, _ []*Attachment) ([]string, error) {
	if (hook == HookIngress || hook == HookEgress) && errors.Is(HaveTCX(), ErrNotSupported) {
		return legacyChain(target.ns, target.index, hook)
	}
	return Chain(target.ns, target.index, hook)
}

// Pin pins every live attachment under BPFFSDir/nkscript/name, journaling
// each pin by path and BPF link ID so that cleanup removes exactly those.
func (k *kernel) Pin(as []*Attachment, name string, record func(Record) error) error {
	var live []*Attachment
	for _, a := range as {
		if !a.Detached() && !a.isLegacy() {
			live = append(live, a)
		}
	}
	if len(live) == 0 {
		return nil
	}
	mounted, err := ensureBPFFS()
	if err != nil {
		return err
	}
	if mounted {
		if err := record(&BPFFSRecord{Path: BPFFSDir}); err != nil {
			return err
		}
	}
	dir := filepath.Join(BPFFSDir, "nkscript", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keep: %w", err)
	}
	for _, a := range live {
		path := filepath.Join(dir, fmt.Sprintf("link-%d", a.id))
		if err := record(&PinRecord{Path: path, LinkID: a.id}); err != nil {
			return err
		}
		if _, err := a.pin(path); err != nil {
			return fmt.Errorf("keep: pin %s: %w", a.prog, err)
		}
	}
	return nil
}
