package main

import (
	"regexp"
	"strconv"
	"strings"
)

// goBench is what `go test -bench -v` printed for one benchmark: its
// metrics by unit, one value per run (-count), and how it ended if not
// with a result.
type goBench struct {
	Name    string
	Metrics map[string][]float64
	Status  string // "", "FAIL" or "SKIP"
	Message string // the lines the benchmark logged, joined
}

var (
	benchResult = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+\d+\s+(.*)$`)
	benchHeader = regexp.MustCompile(`^(Benchmark\S+)$`)
	benchStatus = regexp.MustCompile(`^--- (FAIL|SKIP): (Benchmark\S+?)(-\d+)?$`)
)

// parseGoBench reads `go test -run '^$' -bench ... -v` output. Messages
// are the indented lines after a benchmark's header (-v) or after its
// status line (without -v). Benchmarks come back in the order they first
// appeared.
func parseGoBench(out string) []*goBench {
	var order []*goBench
	byName := map[string]*goBench{}
	get := func(name string) *goBench {
		if b, ok := byName[name]; ok {
			return b
		}
		b := &goBench{Name: name, Metrics: map[string][]float64{}}
		byName[name] = b
		order = append(order, b)
		return b
	}
	var logged []string // indented lines since the last header or status
	var last *goBench   // the benchmark they belong to
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, " \r")
		switch {
		case strings.HasPrefix(line, "    ") && last != nil:
			logged = append(logged, strings.TrimSpace(line))
			if last.Status != "" {
				last.Message = strings.Join(logged, " ")
			}
		case benchStatus.MatchString(line):
			m := benchStatus.FindStringSubmatch(line)
			b := get(m[2])
			b.Status = m[1]
			if b == last && len(logged) > 0 {
				b.Message = strings.Join(logged, " ")
			} else {
				logged = nil
			}
			last = b
		case benchResult.MatchString(line):
			m := benchResult.FindStringSubmatch(line)
			addMetrics(get(m[1]), m[3])
			last, logged = nil, nil
		case benchHeader.MatchString(line):
			last, logged = get(line), nil
		default:
			last, logged = nil, nil
		}
	}
	// A header only appears for benchmarks that ran: a parent whose
	// sub-benchmarks reported is not a result of its own.
	var kept []*goBench
	for _, b := range order {
		if len(b.Metrics) > 0 || b.Status != "" {
			kept = append(kept, b)
		}
	}
	return kept
}

// addMetrics adds "VALUE UNIT" pairs of a result line.
func addMetrics(b *goBench, fields string) {
	f := strings.Fields(fields)
	for i := 0; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return
		}
		b.Metrics[f[i+1]] = append(b.Metrics[f[i+1]], v)
	}
}
