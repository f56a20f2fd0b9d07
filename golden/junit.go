package golden

import (
	"encoding/xml"
	"fmt"
	"os"
	"strings"
	"time"
)

// JUnitSuites is the root element of a JUnit XML report, in the form CI
// systems (Jenkins, GitLab, GitHub test reporters) read: one testsuite per
// kernel.
type JUnitSuites struct {
	XMLName xml.Name `xml:"testsuites"`
	JUnitCounts
	Suites []JUnitSuite `xml:"testsuite"`
}

// JUnitCounts are the attributes testsuites and testsuite share: the
// name, how many tests there are, failed (errors is always 0: a test that
// cannot run fails), were skipped, and the seconds they took.
type JUnitCounts struct {
	Name     string `xml:"name,attr"`
	Tests    int    `xml:"tests,attr"`
	Failures int    `xml:"failures,attr"`
	Errors   int    `xml:"errors,attr"`
	Skipped  int    `xml:"skipped,attr"`
	Time     string `xml:"time,attr"`
}

// JUnitSuite is the testsuite of one kernel.
type JUnitSuite struct {
	JUnitCounts
	Timestamp  string          `xml:"timestamp,attr"`
	Hostname   string          `xml:"hostname,attr"`
	Properties []JUnitProperty `xml:"properties>property"`
	Cases      []JUnitCase     `xml:"testcase"`
}

// JUnitProperty is a name=value property of a suite.
type JUnitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

// JUnitCase is one test on one kernel.
type JUnitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *JUnitFailure `xml:"failure"`
	Skipped   *JUnitSkipped `xml:"skipped"`
	SystemOut string        `xml:"system-out,omitempty"`
}

// JUnitFailure says why a test failed: Message is its first line, the
// body all of it (the script error and the golden diff).
type JUnitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

// JUnitSkipped says why a test was skipped.
type JUnitSkipped struct {
	Message string `xml:"message,attr"`
}

// JUnitClassname is the classname of the tests run on kernel: the kernel
// with its dots made underscores, as many CI systems read a dot in a
// classname as a package separator.
func JUnitClassname(kernel string) string {
	return "kernel-" + strings.NewReplacer(".", "_", "/", "_").Replace(kernel)
}

// JUnit builds the report of results, one suite per kernel in the order of
// kernels, stamped with the time the batch started.
func JUnit(kernels []string, results []Result, started time.Time) JUnitSuites {
	host, _ := os.Hostname()
	root := JUnitSuites{JUnitCounts: JUnitCounts{Name: "nkscript"}}
	var total float64
	for _, k := range kernels {
		s := JUnitSuite{JUnitCounts: JUnitCounts{Name: k}, Timestamp: started.UTC().Format("2006-01-02T15:04:05"), Hostname: host,
			Properties: []JUnitProperty{{"kernel", k}}}
		var secs float64
		for _, r := range results {
			if r.Kernel != k {
				continue
			}
			c := JUnitCase{Name: r.Name, Classname: JUnitClassname(k), Time: seconds(r.Seconds), SystemOut: r.Output}
			switch r.Status {
			case Fail:
				first, _, _ := strings.Cut(strings.TrimSpace(r.Message), "\n")
				if first == "" {
					first = "failed"
				}
				c.Failure = &JUnitFailure{Message: first, Type: "nkscript.failure", Body: r.Message}
				s.Failures++
			case Skip:
				c.Skipped = &JUnitSkipped{Message: r.Message}
				s.Skipped++
			}
			s.Tests++
			secs += r.Seconds
			s.Cases = append(s.Cases, c)
		}
		s.Time = seconds(secs)
		total += secs
		root.Tests += s.Tests
		root.Failures += s.Failures
		root.Skipped += s.Skipped
		root.Suites = append(root.Suites, s)
	}
	root.Time = seconds(total)
	return root
}

func seconds(s float64) string { return fmt.Sprintf("%.3f", s) }

// WriteJUnit writes the report of results to the file path.
func WriteJUnit(path string, kernels []string, results []Result, started time.Time) error {
	b, err := xml.MarshalIndent(JUnit(kernels, results, started), "", "  ")
	if err != nil {
		return err
	}
	b = append([]byte(xml.Header), append(b, '\n')...)
	return os.WriteFile(path, b, 0o644)
}

// writeReports writes the --junit file and the --json document, if asked.
func writeReports(cfg Config, kernels []string, results []Result, started time.Time) bool {
	ok := true
	if cfg.JUnit != "" {
		if err := WriteJUnit(cfg.JUnit, kernels, results, started); err != nil {
			fmt.Fprintf(cfg.Stderr, "nkscript test: --junit: %v\n", err)
			ok = false
		}
	}
	if cfg.JSON {
		if err := WriteJSON(cfg.Stdout, results); err != nil {
			fmt.Fprintf(cfg.Stderr, "nkscript test: --json: %v\n", err)
			ok = false
		}
	}
	return ok
}
