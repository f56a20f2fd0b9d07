package golden

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Names lists the names of the selected tests of files, in the order they
// run: a script's path, or path:test_name for each selected case.
func Names(files []*Script) []string {
	var names []string
	for _, tf := range files {
		names = append(names, tf.names()...)
	}
	return names
}

// names lists the script's selected tests.
func (tf *Script) names() []string {
	if tf.Cases == nil {
		return []string{tf.Path}
	}
	var names []string
	for _, c := range tf.Run {
		names = append(names, tf.Path+":"+c)
	}
	return names
}

// ParseShard reads "K/N" (1 ≤ K ≤ N).
func ParseShard(s string) (k, n int, err error) {
	ks, ns, ok := strings.Cut(s, "/")
	k, err1 := strconv.Atoi(ks)
	n, err2 := strconv.Atoi(ns)
	if !ok || err1 != nil || err2 != nil || n < 1 || k < 1 || k > n {
		return 0, 0, fmt.Errorf("--shard %q: want K/N with 1 ≤ K ≤ N, e.g. 2/4", s)
	}
	return k, n, nil
}

// Shard keeps the tests of files that fall in the k-th of n shards (k
// counts from 1). The names of all the tests are sorted and dealt out
// round-robin, so the shards differ in size by one at most, and which
// shard a test falls in depends only on the set of names, not on the
// order of files or on the machine: every test is in exactly one shard.
// A script keeps the cases of its shard; one left without any is
// dropped.
func Shard(files []*Script, k, n int) []*Script {
	names := Names(files)
	slices.Sort(names)
	mine := map[string]bool{}
	for i, name := range names {
		if i%n == k-1 {
			mine[name] = true
		}
	}
	var sel []*Script
	for _, tf := range files {
		if tf.Cases == nil {
			if mine[tf.Path] {
				sel = append(sel, tf)
			}
			continue
		}
		var run []string
		for _, c := range tf.Run {
			if mine[tf.Path+":"+c] {
				run = append(run, c)
			}
		}
		if len(run) > 0 {
			cp := *tf
			cp.Run = run
			sel = append(sel, &cp)
		}
	}
	return sel
}
