package report

import (
	"fmt"
	"math"
	"strings"
)

// doc builds the Markdown text.
type doc struct{ strings.Builder }

func (d *doc) f(format string, args ...any) { fmt.Fprintf(d, format, args...) }

// table writes a Markdown table; align has one letter per column, 'l' or
// 'r' (numbers).
func (d *doc) table(align string, head []string, rows [][]string) {
	d.f("| %s |\n|", strings.Join(head, " | "))
	for _, a := range align {
		if a == 'r' {
			d.f("---:|")
		} else {
			d.f("---|")
		}
	}
	d.f("\n")
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		d.f("| %s |\n", strings.Join(cells, " | "))
	}
	d.f("\n")
}

// commands lists the invocations behind a table, with their cost.
func (d *doc) commands(runs []Run) {
	d.f("```sh\n")
	for _, r := range runs {
		d.f("# wall %s, threads: %d\n%s\n", minutes(r.WallS), r.Threads, r.Command)
	}
	d.f("```\n\n")
}

// f formats a figure, "-" where there is none (a ratio to a missing
// reference).
func f(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

// orDash formats a figure that only some modes have (0: not measured).
func orDash(v float64, prec int) string {
	if v == 0 {
		return "-"
	}
	return f(v, prec)
}

// times formats a ratio; 0 means no reference was measured.
func times(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", v)
}

func minutes(s float64) string {
	if s < 90 {
		return fmt.Sprintf("%.0f s", s)
	}
	return fmt.Sprintf("%.1f min", s/60)
}
