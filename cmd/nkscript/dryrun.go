package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/nkscript/nkscript/datapath"
)

// dryRun runs the script against a lab that changes nothing and writes,
// to stdout, the shell commands that would build the lab. The script's
// own output becomes comments between them. It needs no netkit, and so
// never boots a microVM.
func dryRun(o *options, script string, scriptArgs []string, stdout, stderr io.Writer) int {
	lab, err := dryLab(o, script, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "nkscript: %v\n", err)
		return exitFail
	}
	code := execScript(context.Background(), o, lab, script, scriptArgs, &commentWriter{w: stdout}, stderr)
	lab.Close()
	return code
}

func dryLab(o *options, script string, w io.Writer) (*datapath.Lab, error) {
	abs, _ := filepath.Abs(script)
	return datapath.NewLab(datapath.LabConfig{Prefix: o.prefix, Backend: datapath.NewShell(w, filepath.Base(abs))})
}

// commentWriter turns each line written to it into a shell comment.
type commentWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func (c *commentWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	for {
		i := bytes.IndexByte(c.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(c.w, "# %s\n", c.buf[:i])
		c.buf = c.buf[i+1:]
	}
	return len(p), nil
}
