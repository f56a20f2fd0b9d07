package main

import "fmt"

// Verdicts of a goal.
const (
	met         = "met"
	missed      = "missed"
	notMeasured = "not measured"
)

// goal is one goal checked against this run's figures.
type goal struct {
	What     string // the goal, e.g. "shell ÷ nkscript ≥ 12× at N=100"
	Measured string // the figure it was checked against, or why there is none
	Verdict  string // met, missed or not measured
}

// check makes a goal from a figure: ok decides met or missed; a figure
// that could not be had (have false) leaves it not measured, with why.
func check(what string, have bool, figure string, ok bool, why string) goal {
	switch {
	case !have:
		return goal{what, why, notMeasured}
	case ok:
		return goal{what, figure, met}
	default:
		return goal{what, figure, missed}
	}
}

// goalTable renders goals as a table, with a lead-in line.
func goalTable(w *writer, goals []goal) {
	if len(goals) == 0 {
		return
	}
	w.line("Goals, checked against this run:")
	w.line("")
	w.line("| goal | this run | verdict |")
	w.line("|---|---|---|")
	for _, g := range goals {
		w.line(fmt.Sprintf("| %s | %s | **%s** |", g.What, g.Measured, g.Verdict))
	}
	w.line("")
}
