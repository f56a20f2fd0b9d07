// Command report renders BENCHMARKS.md from the results `make bench`
// recorded (hack/bench.sh): results.tsv, one record per line (see
// Results), and the text files beside it (profile.txt, goprofile.txt,
// bpf.txt, cli.txt, benchstat*.txt).
//
//	report -results DIR [-o BENCHMARKS.md] [-sections chain,bpf,...]
//
// Every figure and every verdict in the report is computed here from the
// records; a benchmark that failed or recorded nothing is reported as
// failed in its place and in the summary at the top. The exit status is 1
// when a benchmark failed or a record could not be read, after the report
// is written, and 2 when the report could not be written.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	dir := flag.String("results", "", "the results directory hack/bench.sh wrote")
	out := flag.String("o", "-", "where to write the report (- for standard output)")
	only := flag.String("sections", "", "comma-separated sections to render (default all): "+sectionNames())
	flag.Parse()
	if *dir == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	r, err := Load(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(2)
	}
	var names []string
	if *only != "" {
		names = strings.Split(*only, ",")
	}
	md, failed := Report(r, names)
	if *out == "-" {
		_, err = os.Stdout.WriteString(md)
	} else {
		err = os.WriteFile(*out, []byte(md), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(2)
	}
	if failed {
		fmt.Fprintln(os.Stderr, "report: some benchmarks failed; the report says which")
		os.Exit(1)
	}
}

func sectionNames() string {
	var s []string
	for _, sec := range sections {
		s = append(s, sec.name)
	}
	return strings.Join(s, ", ")
}
