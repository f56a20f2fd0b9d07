package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// resultsFile is the record file hack/bench.sh appends to, in the results
// directory.
const resultsFile = "results.tsv"

// Run is one timed run of a series, as bench/nsrelease reports it.
type Run struct {
	WallUS    float64 // the process's wall time
	ReleaseUS float64 // from its exit until its namespaces were released; -1: not within the timeout
}

// Results is what one `make bench` recorded: the records of results.tsv
// and the text files beside it. A record is one line of tab-separated
// fields, its kind first:
//
//	meta   KEY VALUE           the machine and the run (date, kernel, cpus, mem_kib, nkscript_bytes)
//	param  KEY VALUE           how the run was made (counts, the base commit)
//	run    SERIES WALL_US RELEASE_US   one timed run
//	value  SERIES NUMBER       one measured figure
//	fail   SERIES MESSAGE      SERIES (or a whole section) failed
//	skip   SERIES REASON       SERIES was deliberately not run
//
// Records of other kinds are ignored, so that a section the generator does
// not know can record its own; its fail records are still reported.
type Results struct {
	Dir    string
	Meta   map[string]string
	Params map[string]string
	Runs   map[string][]Run
	Values map[string][]float64
	Fails  map[string][]string
	Skips  map[string]string
	// Order holds every series in the order it first appeared.
	Order []string
	// Malformed describes lines that could not be read; they count as
	// failures.
	Malformed []string
}

// Load reads dir/results.tsv. A missing file is an error; a malformed line
// is recorded in Malformed.
func Load(dir string) (*Results, error) {
	f, err := os.Open(filepath.Join(dir, resultsFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &Results{Dir: dir, Meta: map[string]string{}, Params: map[string]string{},
		Runs: map[string][]Run{}, Values: map[string][]float64{}, Fails: map[string][]string{}, Skips: map[string]string{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		if err := r.add(strings.Split(sc.Text(), "\t")); err != nil {
			r.Malformed = append(r.Malformed, fmt.Sprintf("%s:%d: %v", resultsFile, line, err))
		}
	}
	return r, sc.Err()
}

func (r *Results) add(f []string) error {
	if len(f) < 3 {
		return fmt.Errorf("%q: want a kind, a name and a value", strings.Join(f, " "))
	}
	kind, name := f[0], f[1]
	switch kind {
	case "meta":
		r.Meta[name] = f[2]
		return nil
	case "param":
		r.Params[name] = f[2]
		return nil
	case "fail":
		r.Fails[name] = append(r.Fails[name], strings.Join(f[2:], " "))
	case "skip":
		r.Skips[name] = strings.Join(f[2:], " ")
	case "value":
		v, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			return fmt.Errorf("value of %s: %v", name, err)
		}
		r.Values[name] = append(r.Values[name], v)
	case "run":
		if len(f) != 4 {
			return fmt.Errorf("run %s: want wall_us and release_us", name)
		}
		wall, err1 := strconv.ParseFloat(f[2], 64)
		rel, err2 := strconv.ParseFloat(f[3], 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("run %s: %q %q are not numbers", name, f[2], f[3])
		}
		r.Runs[name] = append(r.Runs[name], Run{wall, rel})
	default:
		return nil
	}
	if !slices.Contains(r.Order, name) {
		r.Order = append(r.Order, name)
	}
	return nil
}

// Text returns the contents of a text file of the results directory, and
// whether it exists.
func (r *Results) Text(name string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(r.Dir, name))
	if err != nil {
		return "", false
	}
	return string(b), true
}

// Param returns a parameter as an integer, or def.
func (r *Results) Param(name string, def int) int {
	if v, err := strconv.Atoi(r.Params[name]); err == nil {
		return v
	}
	return def
}

// failed returns the failures recorded for series or any series under it
// (prefix "series/").
func (r *Results) failed(series string) []string {
	var msgs []string
	for _, s := range r.Order {
		if s == series || strings.HasPrefix(s, series+"/") {
			msgs = append(msgs, r.Fails[s]...)
		}
	}
	return msgs
}

// Stat is the median, minimum and maximum of some figures and how many
// there were.
type Stat struct {
	Median, Min, Max float64
	N                int
}

// stat summarises vs; the median of an even count is the lower middle
// one.
func stat(vs []float64) (Stat, bool) {
	if len(vs) == 0 {
		return Stat{}, false
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	return Stat{Median: s[(len(s)-1)/2], Min: s[0], Max: s[len(s)-1], N: len(s)}, true
}

// wall summarises the wall times of a series, in µs.
func (r *Results) wall(series string) (Stat, bool) {
	var vs []float64
	for _, run := range r.Runs[series] {
		vs = append(vs, run.WallUS)
	}
	return stat(vs)
}

// release is the median release time of a series, in µs.
func (r *Results) release(series string) (Stat, bool) {
	var vs []float64
	for _, run := range r.Runs[series] {
		vs = append(vs, run.ReleaseUS)
	}
	return stat(vs)
}

// value is the median of a series' values.
func (r *Results) value(series string) (Stat, bool) { return stat(r.Values[series]) }
