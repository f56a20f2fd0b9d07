package builtins

import (
	"context"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"testing"

	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/internal/testutil"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// TestDocsCoverUniverse checks that every predeclared name has an entry
// and that every function entry is a builtin.
func TestDocsCoverUniverse(t *testing.T) {
	for _, name := range Names() {
		e, ok := entry(name)
		if !ok {
			t.Errorf("builtin %s has no entry in Docs", name)
			continue
		}
		_, isFunc := universe[name]
		if isFunc != (e.Kind == KindFunc) {
			t.Errorf("%s: documented with kind %d, but builtin function is %v", name, e.Kind, isFunc)
		}
	}
	seen := map[string]bool{}
	for _, e := range Docs {
		if seen[e.Name] {
			t.Errorf("%s is documented twice", e.Name)
		}
		seen[e.Name] = true
		if e.Kind == KindFunc && universe[e.Name] == nil {
			t.Errorf("%s is documented as a builtin but is not one", e.Name)
		}
		if !strings.HasPrefix(e.Signature, e.Name) {
			t.Errorf("%s: signature %q does not start with the name", e.Name, e.Signature)
		}
		if (e.Kind == KindFunc || e.Kind == KindMethod) != strings.Contains(e.Signature, "(") {
			t.Errorf("%s: signature %q does not match kind %d", e.Name, e.Signature, e.Kind)
		}
		if e.Doc == "" || e.Example == "" {
			t.Errorf("%s: description or example missing", e.Name)
		}
		if _, err := syntax.Parse(e.Name+".example", e.Example+"\n", 0); err != nil {
			t.Errorf("%s: example does not parse: %v", e.Name, err)
		}
		if strings.Contains(e.Doc, "\n") {
			t.Errorf("%s: description is more than one paragraph", e.Name)
		}
	}
}

// TestDocsAttrs checks each value type's documented attributes against
// the ones it has, and that every method has its own entry.
func TestDocsAttrs(t *testing.T) {
	for name, v := range map[string]starlark.HasAttrs{
		"netns":           &Netns{},
		"host":            &Netns{isHost: true},
		"pair":            &Pair{},
		"link":            &Link{},
		"program":         &Program{},
		"attachment":      &Attachment{},
		"ping_result":     &PingResult{},
		"stats":           statsValue(datapath.Stats{}),
		"kernel":          &Kernel{},
		"server":          &Server{},
		"capture":         &Capture{},
		"captured_packet": &CapturedPacket{},
		"connect_result":  &ConnectResult{},
		"map":             &Map{},
		"policy":          &Policy{},
		"trace":           &Trace{},
		"packet":          &Packet{},
		"run_result":      &RunResult{},
	} {
		e, ok := entry(name)
		if !ok {
			t.Errorf("value type %s is not documented", name)
			continue
		}
		var documented []string
		for _, a := range e.Attrs {
			documented = append(documented, a.Name)
		}
		want := v.AttrNames()
		slices.Sort(want)
		if !slices.Equal(documented, want) {
			t.Errorf("%s: documented attributes %v, the value has %v (sorted)", name, documented, want)
		}
		for _, a := range e.Attrs {
			if !strings.HasPrefix(a.Doc, "method:") {
				continue
			}
			if _, ok := entry(name + "." + a.Name); !ok {
				t.Errorf("method %s.%s has no entry", name, a.Name)
			}
			if !strings.HasPrefix(a.Doc, "method: "+a.Name+"(") {
				t.Errorf("%s.%s: attribute doc %q should start with the call", name, a.Name, a.Doc)
			}
		}
	}
}

// testGlobals returns the predeclared names of a run against a lab on
// the recording backend (the calls made with them fail while unpacking
// their arguments, before any backend), and a thread to call them on.
func testGlobals(t *testing.T) (starlark.StringDict, *starlark.Thread) {
	t.Helper()
	var out strings.Builder
	r := NewRun(Options{Lab: testutil.RecordedLab(t), Context: context.Background(), Stdout: &out})
	return r.Globals(), r.Thread("doc_test.star")
}

const probeKw = "zz_nkscript_probe"

// TestDocsKeywords calls every documented function and method with each
// documented keyword followed by an unknown one: the unknown one must be
// the one refused, so the documented one is accepted. The calls always
// fail while unpacking arguments, before they change anything.
func TestDocsKeywords(t *testing.T) {
	globals, thread := testGlobals(t)
	callables := map[string]starlark.Callable{}
	for name, v := range globals {
		if c, ok := v.(starlark.Callable); ok {
			callables[name] = c
		}
	}
	receivers := map[string]starlark.HasAttrs{"netns": &Netns{}, "program": &Program{}, "link": &Link{}, "attachment": &Attachment{}, "server": &Server{}, "capture": &Capture{}, "map": &Map{}, "policy": &Policy{}, "trace": &Trace{}}
	for _, e := range Docs {
		if e.Kind != KindMethod {
			continue
		}
		obj, name, _ := strings.Cut(e.Name, ".")
		if recv := receivers[obj]; recv != nil {
			if m, err := recv.Attr(name); err == nil && m != nil {
				callables[e.Name] = m.(starlark.Callable)
			}
		}
	}
	for _, e := range Docs {
		if e.Kind != KindFunc && e.Kind != KindMethod {
			continue
		}
		fn := callables[e.Name]
		if fn == nil {
			t.Errorf("%s: documented, but there is no such function", e.Name)
			continue
		}
		if strings.Contains(e.Signature, "**") {
			continue // takes any keyword; see TestProgramKeywords
		}
		params := e.Params()
		for _, p := range params {
			_, err := starlark.Call(thread, fn, nil, []starlark.Tuple{
				{starlark.String(p), starlark.None},
				{starlark.String(probeKw), starlark.None},
			})
			msg := fmt.Sprint(err)
			if !strings.Contains(msg, fmt.Sprintf("unexpected keyword argument %q", probeKw)) &&
				!strings.Contains(msg, fmt.Sprintf("for parameter %q:", p)) {
				t.Errorf("%s(%s=None): %v; the documented keyword is not accepted", e.Name, p, err)
			}
		}
		// One positional argument more than documented is too many.
		args := make(starlark.Tuple, len(params)+1)
		for i := range args {
			args[i] = starlark.None
		}
		_, err := starlark.Call(thread, fn, args, nil)
		want := fmt.Sprintf("got %d arguments, want at most %d", len(args), len(params))
		if !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("%s with %d positional arguments: %v; want %q: the documented parameters are not all it takes", e.Name, len(args), err, want)
		}
		// The first required parameter is the first one documented.
		if len(params) > 0 && !strings.Contains(e.Signature, params[0]+"=") {
			_, err := starlark.Call(thread, fn, nil, nil)
			if want := "missing argument for " + params[0]; !strings.Contains(fmt.Sprint(err), want) {
				t.Errorf("%s(): %v; want %q", e.Name, err, want)
			}
		}
	}
}

// TestProgramKeywords checks program's documented section= and cflags=
// keywords, which the generic check cannot: program takes any keyword as
// a constant.
func TestProgramKeywords(t *testing.T) {
	globals, thread := testGlobals(t)
	_, err := starlark.Call(thread, globals["program"], starlark.Tuple{starlark.String("pass")},
		[]starlark.Tuple{{starlark.String("section"), starlark.String("x")}})
	if !strings.Contains(fmt.Sprint(err), "section= is for ELF objects") {
		t.Errorf("program(\"pass\", section=\"x\"): %v", err)
	}
	_, err = starlark.Call(thread, globals["program"], starlark.Tuple{starlark.String("pass")},
		[]starlark.Tuple{{starlark.String("cflags"), starlark.NewList([]starlark.Value{starlark.String("-DX")})}})
	if !strings.Contains(fmt.Sprint(err), "cflags= is for BPF C sources") {
		t.Errorf("program(\"pass\", cflags=[\"-DX\"]): %v", err)
	}
	_, err = starlark.Call(thread, globals["program"], starlark.Tuple{starlark.String("x.bpf.c")},
		[]starlark.Tuple{{starlark.String("cflags"), starlark.String("-DX")}})
	if !strings.Contains(fmt.Sprint(err), "cflags must be a list of strings, not") {
		t.Errorf("program(\"x.bpf.c\", cflags=\"-DX\"): %v", err)
	}
	e, _ := entry("program")
	if got := e.Params(); !slices.Equal(got, []string{"name", "section", "cflags", "consts"}) {
		t.Errorf("program params %v", got)
	}
}

func TestSuggestKeyword(t *testing.T) {
	base := errors.New(`netkit_pair: unexpected keyword argument "peer_nss"`)
	err := SuggestKeyword(base)
	if want := `netkit_pair: unexpected keyword argument "peer_nss" (did you mean "peer_ns"?)`; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	if !errors.Is(err, base) {
		t.Error("the suggestion hides the original error from errors.Is")
	}
	for in, want := range map[string]string{
		`addr: unexpected keyword argument "cdir"`:                               `addr: unexpected keyword argument "cdir" (did you mean "cidr"?)`,
		`expect_drop: unexpected keyword argument "bye"`:                         `expect_drop: unexpected keyword argument "bye" (did you mean "by"?)`,
		`ping: unexpected keyword argument "Count"`:                              `ping: unexpected keyword argument "Count" (did you mean "count"?)`,
		`ping: unexpected keyword argument "destination"`:                        `ping: unexpected keyword argument "destination"`,
		`expect_pass: unexpected keyword argument "by"`:                          `expect_pass: unexpected keyword argument "by"`,
		`nosuch: unexpected keyword argument "peer_nss"`:                         `nosuch: unexpected keyword argument "peer_nss"`,
		`veth_pair: unexpected keyword argument "peer_nss" (did you mean peer?)`: `veth_pair: unexpected keyword argument "peer_nss" (did you mean "peer_ns"?)`,
		`veth_pair: got 6 arguments, want at most 5`:                             `veth_pair: got 6 arguments, want at most 5`,
		`route: unexpected keyword argument "dev" (already)`:                     `route: unexpected keyword argument "dev" (already)`,
	} {
		if got := SuggestKeyword(errors.New(in)).Error(); got != want {
			t.Errorf("SuggestKeyword(%q) = %q, want %q", in, got, want)
		}
	}
	if SuggestKeyword(nil) != nil {
		t.Error("SuggestKeyword(nil) is not nil")
	}
}

// TestSuggestKeywordScript checks that the builtins a script calls carry
// the suggestion, and that the call did nothing.
func TestSuggestKeywordScript(t *testing.T) {
	_, err := runScript(t, `veth_pair("$P-a", "$P-b", peer_nss = host)`)
	var ee *starlark.EvalError
	if !errors.As(err, &ee) {
		t.Fatalf("got %v, want an evaluation error", err)
	}
	if want := `veth_pair: unexpected keyword argument "peer_nss" (did you mean "peer_ns"?)`; ee.Msg != want {
		t.Errorf("got %q, want %q", ee.Msg, want)
	}
}

func TestHelpText(t *testing.T) {
	globals, _ := testGlobals(t)
	addr, _ := (&Link{}).Attr("addr")
	detach, _ := (&Attachment{}).Attr("detach")
	for _, c := range []struct {
		v    starlark.Value
		want string
	}{
		{globals["netkit_pair"], "netkit_pair(primary, peer, "},
		{globals["exec"], "exec(ns, cmd)"},
		{globals["host"], "host\n"},
		{&Netns{}, "netns(name)"},
		{&Pair{}, "pair\n"},
		{&Link{}, "link\n"},
		{addr, "link.addr(cidr)"},
		{detach, "attachment.detach()"},
		{&PingResult{}, "ping_result\n"},
		{statsValue(datapath.Stats{}), "stats(prog)"},
		{&Kernel{}, "kernel\n"},
		{&Server{}, "server\n"},
		{&ConnectResult{}, "connect_result\n"},
		{&Capture{}, "capture(links, pcap=None)"},
		{&Map{}, "map\n"},
		{&Policy{}, "policy(router, "},
		{&Trace{}, "trace(prog=None)"},
		{method(&Map{}, "pop"), "map.pop(key, default)"},
		{method(&Capture{}, "count"), "capture.count("},
		{method(&Server{}, "stop"), "server.stop()"},
		{method(&Policy{}, "remove"), "policy.remove()"},
		{method(&Trace{}, "lines"), "trace.lines()"},
	} {
		got := HelpText(c.v)
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("HelpText(%s): got %q, want it to start with %q", c.v.Type(), got, c.want)
		}
		if !strings.Contains(got, "Example:") {
			t.Errorf("HelpText(%s) has no example", c.v.Type())
		}
	}
	for _, v := range []starlark.Value{starlark.String("x"), globals["argv"], starlark.NewBuiltin("len", nil)} {
		if got := HelpText(v); got != "" {
			t.Errorf("HelpText(%s) = %q, want \"\"", v, got)
		}
	}
}

// method returns the method name of v.
func method(v starlark.HasAttrs, name string) starlark.Value {
	m, _ := v.Attr(name)
	return m
}

// TestHelpTextTypes checks that help() knows every documented value type.
func TestHelpTextTypes(t *testing.T) {
	for _, e := range Docs {
		if e.Kind != KindType {
			continue
		}
		found := false
		for _, v := range []starlark.Value{&Pair{}, &Link{}, &Attachment{}, &PingResult{}, &Server{}, &ConnectResult{}, &Map{}, &RunResult{}, &CapturedPacket{}} {
			found = found || HelpText(v) == e.Text()
		}
		if !found {
			t.Errorf("help() shows no value the entry of type %s", e.Name)
		}
	}
}

// TestPackageDoc checks that the package comment lists every builtin with
// its documented signature.
func TestPackageDoc(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "universe.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(f.Doc.Text()), " ")
	for name := range universe {
		e, ok := entry(name)
		if !ok {
			continue // TestDocsCoverUniverse reports it
		}
		if sig := strings.Join(strings.Fields(e.Signature), " "); !strings.Contains(text, sig) {
			t.Errorf("the package comment does not list %s", sig)
		}
	}
}

func TestDoc(t *testing.T) {
	text, ok := Doc("ping")
	if !ok || !strings.HasPrefix(text, `ping(dst, src=host, count=3, timeout="1s", ttl=64) -> ping_result`+"\n\n") {
		t.Errorf("Doc(ping) = %q, %v", text, ok)
	}
	for _, l := range strings.Split(text, "\n") {
		if len(l) > 80 && !strings.HasPrefix(l, "ping(") {
			t.Errorf("line longer than 80 bytes: %q", l)
		}
	}
	if _, ok := Doc("pong"); ok {
		t.Error("Doc(pong) found something")
	}
	ref := Reference()
	for _, e := range Docs {
		if !strings.Contains(ref, "### `"+e.Name+"`\n") {
			t.Errorf("reference has no section for %s", e.Name)
		}
	}
}
