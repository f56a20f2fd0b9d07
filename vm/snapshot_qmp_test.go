package vm

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// qmpConn is a connection to qemu's machine protocol (QMP) monitor, for
// the snapshot benchmark: stop, migrate, cont and their queries.
type qmpConn struct {
	c net.Conn
	r *bufio.Reader
}

// dialQMP connects to the QMP socket at path, which qemu creates as it
// starts, trying until timeout, and leaves the capabilities negotiation.
func dialQMP(path string, timeout time.Duration) (*qmpConn, error) {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			q := &qmpConn{c: c, r: bufio.NewReader(c)}
			c.SetDeadline(time.Now().Add(timeout))
			if _, err := q.r.ReadBytes('\n'); err != nil { // the greeting
				c.Close()
				return nil, fmt.Errorf("qmp greeting: %w", err)
			}
			if _, err := q.do("qmp_capabilities", nil); err != nil {
				c.Close()
				return nil, err
			}
			return q, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("qmp: %w", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// do executes cmd with args (nil for none) and returns its result,
// skipping the events qemu sends meanwhile.
func (q *qmpConn) do(cmd string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	q.c.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := q.c.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	for {
		line, err := q.r.ReadBytes('\n')
		if err != nil {
			return nil, fmt.Errorf("qmp %s: %w", cmd, err)
		}
		var resp struct {
			Return json.RawMessage `json:"return"`
			Event  string          `json:"event"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
		}
		if err := json.Unmarshal(line, &resp); err != nil {
			return nil, fmt.Errorf("qmp %s: %w", cmd, err)
		}
		switch {
		case resp.Event != "":
			continue
		case resp.Error != nil:
			return nil, fmt.Errorf("qmp %s: %s: %s", cmd, resp.Error.Class, resp.Error.Desc)
		}
		return resp.Return, nil
	}
}

// waitFor polls the query cmd every few milliseconds until the "status"
// field of its result is one of want, and returns that status. A status in
// fail is an error.
func (q *qmpConn) waitFor(cmd string, want, fail []string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		ret, err := q.do(cmd, nil)
		if err != nil {
			return "", err
		}
		var st struct {
			Status    string `json:"status"`
			ErrorDesc string `json:"error-desc"`
		}
		if err := json.Unmarshal(ret, &st); err != nil {
			return "", fmt.Errorf("qmp %s: %w", cmd, err)
		}
		for _, s := range want {
			if st.Status == s {
				return s, nil
			}
		}
		for _, s := range fail {
			if st.Status == s {
				return "", fmt.Errorf("qmp %s: %s %s", cmd, s, st.ErrorDesc)
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("qmp %s: still %q after %v", cmd, st.Status, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (q *qmpConn) close() { q.c.Close() }
