package golden

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// findTests are the tests the test command finds under dir.
func findTests(t *testing.T, dir string) []*Script {
	t.Helper()
	files, err := Find([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	files = Select(files, nil)
	if len(Names(files)) < 10 {
		t.Fatalf("found only %v", Names(files))
	}
	return files
}

func TestShardPartition(t *testing.T) {
	files := findTests(t, "..") // the whole repository
	all := Names(files)
	for n := 1; n <= 7; n++ {
		seen := map[string]int{}
		sizes := []int{}
		for k := 1; k <= n; k++ {
			part := Names(Shard(files, k, n))
			sizes = append(sizes, len(part))
			for _, name := range part {
				seen[name]++
			}
			// Reordering the scripts changes no shard.
			shuffled := slices.Clone(files)
			rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			again := Names(Shard(shuffled, k, n))
			slices.Sort(again)
			want := slices.Clone(part)
			slices.Sort(want)
			if !reflect.DeepEqual(again, want) {
				t.Errorf("shard %d/%d after reordering: %v, want %v", k, n, again, want)
			}
		}
		for _, name := range all {
			if seen[name] != 1 {
				t.Errorf("N=%d: %s is in %d shards, want 1", n, name, seen[name])
			}
		}
		if len(seen) != len(all) {
			t.Errorf("N=%d: shards hold %d tests, want %d", n, len(seen), len(all))
		}
		if slices.Max(sizes)-slices.Min(sizes) > 1 {
			t.Errorf("N=%d: shard sizes %v differ by more than one", n, sizes)
		}
	}
}

func TestShardKeepsCases(t *testing.T) {
	files := []*Script{
		{Path: "b.star"},
		{Path: "a.star", Cases: []string{"test_x", "test_y", "test_z"}, Run: []string{"test_x", "test_y", "test_z"}},
	}
	// Sorted: a.star:test_x a.star:test_y a.star:test_z b.star.
	for _, tc := range []struct {
		k    int
		want []string
	}{
		{1, []string{"a.star:test_x", "a.star:test_z"}},
		{2, []string{"b.star", "a.star:test_y"}},
	} {
		if got := Names(Shard(files, tc.k, 2)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("shard %d/2: %v, want %v", tc.k, got, tc.want)
		}
	}
	if !reflect.DeepEqual(files[1].Run, []string{"test_x", "test_y", "test_z"}) {
		t.Errorf("Shard changed its input: %v", files[1].Run)
	}
}

func TestParseShard(t *testing.T) {
	if k, n, err := ParseShard("2/4"); k != 2 || n != 4 || err != nil {
		t.Errorf("ParseShard(2/4) = %d, %d, %v", k, n, err)
	}
	for _, bad := range []string{"", "1", "0/3", "4/3", "a/b", "1/0", "-1/2", "1/2/3"} {
		if _, _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q): no error", bad)
		}
	}
}
