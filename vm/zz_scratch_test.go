package vm

import (
	"context"
	"os"
	"testing"
)

func TestScratch(t *testing.T) {
	needVM(t)
	o := Options{Verbose: os.Getenv("V") != ""}
	r := runGuest(t, context.Background(), o, "write", "x", "", "0")
	t.Logf("err=%v code=%d timing=%+v", r.err, r.code, r.timing)
	os.WriteFile("/tmp/exp/console.txt", []byte(r.stderr), 0o644)
}
