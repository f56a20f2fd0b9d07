package golden

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// Verdicts of a Result.
const (
	Pass = "pass"
	Fail = "fail"
	Skip = "skip"
)

// Result is the verdict of one test on one kernel: what --junit and
// --json report.
type Result struct {
	// Kernel names the kernel the test ran on as --kernels named it
	// ("host", "6.1", a bzImage path).
	Kernel string `json:"kernel"`
	// Name is the test's name: the script's path, plus ":test_name" for
	// a case.
	Name string `json:"name"`
	// Status is Pass, Fail or Skip.
	Status string `json:"status"`
	// Message is why a test failed (the script error FILE:LINE:COL, the
	// golden diff) or why it was skipped.
	Message string `json:"message,omitempty"`
	// Output is what the run printed.
	Output string `json:"output,omitempty"`
	// Seconds is how long the run took.
	Seconds float64 `json:"seconds"`
}

// resultMarker prefixes the lines on which a guest run with ResultsOut
// hands its results to the host.
const resultMarker = "nkscript-result "

// Counts returns how many results passed, failed and were skipped.
func Counts(results []Result) (passed, failed, skipped int) {
	for _, r := range results {
		switch r.Status {
		case Pass:
			passed++
		case Fail:
			failed++
		default:
			skipped++
		}
	}
	return passed, failed, skipped
}

// WriteJSON writes results as one JSON document: the counts and every
// result, in the order of the table.
func WriteJSON(w io.Writer, results []Result) error {
	p, f, s := Counts(results)
	doc := struct {
		Passed  int      `json:"passed"`
		Failed  int      `json:"failed"`
		Skipped int      `json:"skipped"`
		Results []Result `json:"results"`
	}{p, f, s, results}
	if doc.Results == nil {
		doc.Results = []Result{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// writeTable writes the kernel × test table: one row per test, one
// column per kernel, in the order of kernels.
func writeTable(w io.Writer, kernels []string, results []Result) {
	var names []string
	verdict := map[[2]string]string{}
	for _, r := range results {
		if !slices.Contains(names, r.Name) {
			names = append(names, r.Name)
		}
		v := map[string]string{Pass: "ok", Fail: "FAIL", Skip: "skip"}[r.Status]
		verdict[[2]string{r.Name, r.Kernel}] = v
	}
	slices.Sort(names)
	width := len("TEST")
	for _, n := range names {
		width = max(width, len(n))
	}
	cols := make([]int, len(kernels))
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s", width, "TEST")
	for i, k := range kernels {
		cols[i] = max(len(k), len("FAIL"))
		fmt.Fprintf(&b, "  %-*s", cols[i], k)
	}
	fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	for _, n := range names {
		b.Reset()
		fmt.Fprintf(&b, "%-*s", width, n)
		for i, k := range kernels {
			v := verdict[[2]string{n, k}]
			if v == "" {
				v = "-"
			}
			fmt.Fprintf(&b, "  %-*s", cols[i], v)
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// lineWriter hands whole lines to w under a lock shared by the writers of
// concurrent runs, so that their lines do not interleave mid-line.
type lineWriter struct {
	mu  *sync.Mutex
	w   io.Writer
	buf []byte
}

// Write buffers p and writes out every complete line.
func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	if i := strings.LastIndexByte(string(l.buf), '\n'); i >= 0 {
		l.mu.Lock()
		_, err := l.w.Write(l.buf[:i+1])
		l.mu.Unlock()
		l.buf = append(l.buf[:0], l.buf[i+1:]...)
		if err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// flush writes what is left of an unfinished line.
func (l *lineWriter) flush() {
	if len(l.buf) > 0 {
		l.mu.Lock()
		l.w.Write(append(l.buf, '\n'))
		l.mu.Unlock()
		l.buf = nil
	}
}
