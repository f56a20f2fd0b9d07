package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/nkscript/nkscript/datapath"
	"github.com/spf13/pflag"
)

const graphUsage = `nkscript graph draws the lab a script builds: namespaces as boxes, links
with their names and addresses, pairs as edges, BPF programs on each hook.
The script runs as with --dry-run: nothing changes, no root or netkit needed.

Usage:
  nkscript graph [--format mermaid|dot|svg] [-o FILE] SCRIPT.star [ARGS...]

svg needs Graphviz (apt-get install graphviz).

Flags:
`

// cmdGraph implements `nkscript graph`.
func cmdGraph(o *options, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("nkscript graph", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SetInterspersed(false)
	format := fs.String("format", "mermaid", "mermaid, dot or svg")
	outPath := fs.StringP("output", "o", "", "write to `FILE` instead of standard output")
	fs.Usage = func() { fmt.Fprint(stderr, graphUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	switch *format {
	case "mermaid", "dot", "svg":
	default:
		fmt.Fprintf(stderr, "nkscript graph: --format=%s: use mermaid, dot or svg\n", *format)
		return exitUsage
	}
	if fs.NArg() < 1 {
		fmt.Fprintln(stderr, "nkscript graph: which script? Usage: nkscript graph [--format mermaid|dot|svg] SCRIPT.star")
		return exitUsage
	}
	script := fs.Arg(0)
	if _, err := os.Stat(script); err != nil {
		fmt.Fprintf(stderr, "nkscript graph: %s: no such script file\n", script)
		return exitUsage
	}
	lab, err := datapath.NewLab(datapath.LabConfig{Prefix: o.prefix, Backend: datapath.NewRecorder()})
	if err != nil {
		fmt.Fprintf(stderr, "nkscript graph: %v\n", err)
		return exitFail
	}
	defer lab.Close()
	if code := execScript(context.Background(), o, lab, script, fs.Args()[1:], io.Discard, stderr); code != exitOK {
		return code
	}
	var text string
	switch *format {
	case "mermaid":
		text = mermaid(lab)
	default:
		text = dot(lab)
	}
	out := []byte(text)
	if *format == "svg" {
		if _, err := exec.LookPath("dot"); err != nil {
			fmt.Fprintln(stderr, "nkscript graph: --format=svg needs Graphviz's dot: apt-get install graphviz (or use --format=dot and render it elsewhere)")
			return exitFail
		}
		cmd := exec.Command("dot", "-Tsvg")
		cmd.Stdin = strings.NewReader(text)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if out, err = cmd.Output(); err != nil {
			fmt.Fprintf(stderr, "nkscript graph: dot -Tsvg: %v\n%s", err, errb.String())
			return exitFail
		}
	}
	if *outPath != "" {
		if err := os.WriteFile(*outPath, out, 0o644); err != nil {
			fmt.Fprintf(stderr, "nkscript graph: %v\n", err)
			return exitFail
		}
		return exitOK
	}
	stdout.Write(out)
	return exitOK
}

// graphModel is what the pictures show, in the lab's order.
type graphModel struct {
	spaces []graphNs
	edges  [][3]string // from id, to id, label
}

type graphNs struct {
	id, name string
	links    []graphLink
}

type graphLink struct {
	id    string
	lines []string // name, addresses, programs
}

func graphID(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('_')
		}
		for _, r := range p {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
				b.WriteRune(r)
			} else {
				b.WriteByte('_')
			}
		}
	}
	return b.String()
}

func buildGraph(lab *datapath.Lab) graphModel {
	var m graphModel
	order := append([]*datapath.Netns{lab.Host()}, lab.Namespaces()...)
	index := map[*datapath.Netns]int{}
	for i, ns := range order {
		name := ns.Name()
		if ns == lab.Host() {
			name = "host"
		}
		index[ns] = i
		m.spaces = append(m.spaces, graphNs{id: graphID("ns", name), name: name})
	}
	progs := map[*datapath.Link][]string{}
	for _, a := range lab.Attachments() {
		if d := a.Device(); d != nil {
			label := a.Hook().String() + ": " + a.Program()
			switch {
			case a.Mechanism() == datapath.MechTC:
				label = a.Hook().String() + " (tc): " + a.Program()
			case a.XDPMode() != datapath.XDPAuto:
				label = a.Hook().String() + " (" + a.XDPMode().String() + "): " + a.Program()
			}
			if a.Detached() {
				label += " (detached)"
			}
			progs[d] = append(progs[d], label)
		}
	}
	links := append(lab.Links(), lab.Loopbacks()...)
	ids := map[*datapath.Link]string{}
	for _, k := range links {
		i, ok := index[k.Netns()]
		if !ok {
			continue
		}
		id := graphID(m.spaces[i].name, k.Name())
		ids[k] = id
		lines := []string{k.Name()}
		for _, p := range k.Addrs() {
			lines = append(lines, p.String())
		}
		lines = append(lines, progs[k]...)
		m.spaces[i].links = append(m.spaces[i].links, graphLink{id: id, lines: lines})
	}
	for _, k := range lab.Links() {
		if p := k.Pair(); p != nil && k.IsPrimary() {
			label := string(p.Kind)
			if p.Mode != "" {
				label += " " + p.Mode
			}
			m.edges = append(m.edges, [3]string{ids[p.Primary], ids[p.Peer], label})
		}
	}
	// Namespaces without links (besides the host) still show.
	return m
}

// graphSyntax is how one graph language writes a lab's parts.
type graphSyntax struct {
	head, tail    string
	space, endSp  string // a namespace's opening (id, name) and closing
	link          string // a device (id, label)
	lineBreak     string // between a device's lines
	edge          string // a pair (from, to, label)
	quoteSpaceArg func(string) string
}

var (
	mermaidSyntax = graphSyntax{
		head: "flowchart LR\n", space: "  subgraph %s[\"%s\"]\n", endSp: "  end\n",
		link: "    %s[\"%s\"]\n", lineBreak: "<br/>", edge: "  %s ---|%[3]s| %[2]s\n",
		quoteSpaceArg: func(s string) string { return s },
	}
	dotSyntax = graphSyntax{
		head: "graph lab {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n", tail: "}\n",
		space: "  subgraph cluster_%s {\n    label=%s;\n", endSp: "  }\n",
		link: "    %s [label=%q];\n", lineBreak: "\n", edge: "  %s -- %s [label=%q];\n",
		quoteSpaceArg: func(s string) string { return fmt.Sprintf("%q", s) },
	}
)

// mermaid renders the lab as a Mermaid flowchart (GitHub renders it).
func mermaid(lab *datapath.Lab) string { return renderGraph(buildGraph(lab), mermaidSyntax) }

// dot renders the lab for Graphviz.
func dot(lab *datapath.Lab) string { return renderGraph(buildGraph(lab), dotSyntax) }

// renderGraph writes m in the language syn describes.
func renderGraph(m graphModel, syn graphSyntax) string {
	var b strings.Builder
	b.WriteString(syn.head)
	for _, s := range m.spaces {
		if s.name == "host" && len(s.links) == 0 {
			continue
		}
		fmt.Fprintf(&b, syn.space, s.id, syn.quoteSpaceArg(s.name))
		for _, k := range s.links {
			fmt.Fprintf(&b, syn.link, k.id, strings.Join(k.lines, syn.lineBreak))
		}
		b.WriteString(syn.endSp)
	}
	for _, e := range m.edges {
		fmt.Fprintf(&b, syn.edge, e[0], e[1], e[2])
	}
	b.WriteString(syn.tail)
	return b.String()
}
