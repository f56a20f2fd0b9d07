package datapath

import (
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestFaultPointsAreTheWrappedMethods checks that FaultPoints lists
// exactly the points fault.go passes, and that each point is named after
// the faulty method that passes it: a wrapped method missing from the
// list would never be required of a sweep.
func TestFaultPointsAreTheWrappedMethods(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "fault.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Recv == nil || !strings.Contains(types(fn.Recv), "faulty") {
			continue
		}
		if _, isBackend := reflect.TypeFor[Backend]().MethodByName(fn.Name.Name); !isBackend {
			continue // a helper
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "fault" && sel.Sel.Name != "then" && sel.Sel.Name != "undoFault") {
				return true
			}
			point := "Undo"
			if sel.Sel.Name != "undoFault" {
				lit, ok := call.Args[0].(*ast.BasicLit)
				if !ok {
					t.Errorf("%s: the fault point is not a literal", fn.Name.Name)
					return true
				}
				point, _ = strconv.Unquote(lit.Value)
			}
			if point != fn.Name.Name {
				t.Errorf("method %s passes fault point %q, want its own name", fn.Name.Name, point)
			}
			found = append(found, point)
			return true
		})
	}
	slices.Sort(found)
	if want := FaultPoints(); !slices.Equal(found, want) {
		t.Errorf("fault.go passes points %v, FaultPoints() = %v", found, want)
	}
	if !slices.IsSorted(FaultPoints()) {
		t.Errorf("FaultPoints() is not sorted: %v", FaultPoints())
	}
}

func types(fl *ast.FieldList) string {
	var b strings.Builder
	for _, f := range fl.List {
		ast.Inspect(f.Type, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok {
				b.WriteString(id.Name)
			}
			return true
		})
	}
	return b.String()
}

func TestParseFaultPlan(t *testing.T) {
	for _, tc := range []struct {
		in         string
		at, undoAt int
		panics     bool
	}{
		{"count", 0, 0, false},
		{"3", 3, 0, false},
		{"panic:4", 4, 0, true},
		{"undo:2", 0, 2, false},
		{"undo-panic:5", 0, 5, true},
	} {
		p, err := ParseFaultPlan(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if p.At != tc.at || p.UndoAt != tc.undoAt || p.Panic != tc.panics {
			t.Errorf("%q: got At=%d UndoAt=%d Panic=%v", tc.in, p.At, p.UndoAt, p.Panic)
		}
	}
	for _, bad := range []string{"", "0", "-1", "panic:", "undo:0", "fail:3", "x"} {
		if _, err := ParseFaultPlan(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestFaultPlanUndo fails, then panics in, the first undo step of a lab
// on the recorder backend: Close reports it as an error either way and
// the plan counts the points and phases the run passed.
func TestFaultPlanUndo(t *testing.T) {
	for _, panics := range []bool{false, true} {
		var phases []string
		p := &FaultPlan{UndoAt: 1, Panic: panics, Phase: func(s string) { phases = append(phases, s) }}
		lab, err := NewLab(LabConfig{Backend: NewRecorder(), JournalDir: t.TempDir(), Script: t.Name(), Faults: p})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lab.Netns("nkt-undo"); err != nil {
			t.Fatal(err)
		}
		p.SetPhase("teardown")
		err = lab.Close()
		want := "injected fault at undo step 1 (Undo)"
		if panics {
			want = "panic: undo netns nkt-undo: injected panic at undo step 1 (Undo)"
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("panic=%v: Close: %v, want %q", panics, err, want)
		}
		if got := p.FormatReached(); got != "CreateNetns=1 Undo=1" {
			t.Errorf("reached %q", got)
		}
		if p.Ops() != 1 || p.Undos() != 1 {
			t.Errorf("ops %d, undos %d", p.Ops(), p.Undos())
		}
		if !slices.Equal(phases, []string{"building", "teardown"}) {
			t.Errorf("phases %v", phases)
		}
	}
}
