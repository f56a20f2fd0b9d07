package scaffold

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "web-filter")
	written, err := Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != len(files) {
		t.Fatalf("wrote %d files, want %d: %v", len(written), len(files), written)
	}
	src, err := os.ReadFile(filepath.Join(dir, "web-filter.bpf.c"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"int web_filter(struct __sk_buff *skb)", `bpf_printk("web_filter: dropping`, "volatile const __u16 blocked_port"} {
		if !strings.Contains(string(src), want) {
			t.Errorf("web-filter.bpf.c lacks %q", want)
		}
	}
	lab, _ := os.ReadFile(filepath.Join(dir, "lab.star"))
	for _, want := range []string{`netns("web-filter")`, `"to_web_filter"`, `program("web-filter.bpf.c"`, `.only("web_filter: ")`} {
		if !strings.Contains(string(lab), want) {
			t.Errorf("lab.star lacks %q", want)
		}
	}
	for _, f := range written {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), "{{") || strings.Contains(string(b), "<no value>") {
			t.Errorf("%s has template text left", f)
		}
	}
	if _, err := Write(dir); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("a second Write: %v, want it refused", err)
	}
}

func TestCheckName(t *testing.T) {
	for name, ok := range map[string]bool{
		"mylab": true, "my-lab": true, "Lab_2": true, "abcdefghijklmno": true,
		"": false, "2lab": false, "my lab": false, "my.lab": false, "-x": false, "abcdefghijklmnop": false,
	} {
		if err := CheckName(name); (err == nil) != ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}
