package main

import (
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"

	"github.com/go-sdtp/sdtp/llama"
)

// explainANSI prints the prompt with every pruned token dimmed: the earlier
// the stage that dropped it, the darker. Tokens are styled in spans of whole
// characters (llama.PromptSpans), so a character spelled by several byte
// tokens is never cut by a colour code; it takes the earliest stage that
// dropped one of its tokens.
func explainANSI(w io.Writer, st *llama.SDTPStats) {
	stages := len(st.Schedule.Layers)
	var b strings.Builder
	for _, sp := range st.PromptSpans() {
		if s := sp.DroppedAt; s > 0 {
			gray := 236 + (s-1)*14/max(1, stages) // 236 (dark) … 250
			fmt.Fprintf(&b, "\x1b[38;5;%dm%s\x1b[0m", gray, sp.Text)
		} else {
			b.WriteString(sp.Text)
		}
	}
	fmt.Fprintf(w, "%s\n\x1b[2m[dimmed: pruned; darker = earlier stage; %d of %d tokens reach the last layer]\x1b[0m\n",
		b.String(), st.KeptPerStage[len(st.KeptPerStage)-1], len(st.Pieces))
}

var explainPage = template.Must(template.New("explain").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>SDTP: which prompt tokens were pruned</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; line-height: 1.6; }
pre { white-space: pre-wrap; font-family: ui-monospace, monospace; background: #fafafa; padding: 1rem; border: 1px solid #ddd; }
.kept { color: #000; font-weight: 600; }
{{range .Stages}}.s{{.N}} { color: hsl(210, 15%, {{.Light}}%); }
{{end}}
table { border-collapse: collapse; } td, th { padding: 0 .6rem; text-align: right; }
</style></head><body>
<h1>Which prompt tokens SDTP pruned</h1>
<p>Mode <b>{{.Mode}}</b>. {{.Kept}} of {{.Total}} prompt tokens reach the last layer; prefill FLOPs are {{printf "%.2f" .FLOPRatio}}× fewer than dense.
Bold tokens were kept to the end; grey ones were dropped, the lighter the earlier the stage (hover for the stage).
A character spelled by several tokens is shown once, with the earliest stage that dropped one of them.</p>
<pre>{{range .Tokens}}<span class="{{.Class}}" title="{{.Title}}">{{.Text}}</span>{{end}}</pre>
<table><tr><th>stage</th><th>before layer</th><th>keep ratio</th><th>tokens entering</th></tr>
{{range .Stages}}<tr><td>{{.N}}</td><td>{{.Layer}}</td><td>{{.Ratio}}</td><td>{{.Entering}}</td></tr>
{{end}}</table>
</body></html>
`))

// explainHTML writes the same view as a self-contained HTML page, with the
// same spans of whole characters as explainANSI.
func explainHTML(w io.Writer, st *llama.SDTPStats) error {
	type token struct{ Text, Class, Title string }
	type stage struct {
		N, Layer, Entering int
		Ratio              float64
		Light              int
	}
	data := struct {
		Mode        string
		Kept, Total int
		FLOPRatio   float64
		Tokens      []token
		Stages      []stage
	}{Mode: st.Mode, Kept: st.KeptPerStage[len(st.KeptPerStage)-1], Total: len(st.Pieces), FLOPRatio: st.FLOPRatio}
	n := len(st.Schedule.Layers)
	for i, l := range st.Schedule.Layers {
		data.Stages = append(data.Stages, stage{N: i + 1, Layer: l, Ratio: st.Schedule.KeepRatios[i],
			Entering: st.KeptPerStage[i], Light: 80 - i*40/max(1, n)})
	}
	for _, sp := range st.PromptSpans() {
		t := token{Text: sp.Text, Class: "kept", Title: "kept to the last layer"}
		if s := sp.DroppedAt; s > 0 {
			t.Class = fmt.Sprintf("s%d", s)
			t.Title = fmt.Sprintf("pruned at stage %d (before layer %d)", s, st.Schedule.Layers[s-1])
		}
		if n := sp.To - sp.From; n > 1 {
			t.Title += fmt.Sprintf("; %d tokens, by stage that dropped each: %s", n, stagesOf(st.DroppedAt[sp.From:sp.To]))
		}
		data.Tokens = append(data.Tokens, t)
	}
	return explainPage.Execute(w, data)
}

// stagesOf lists the stage that dropped each token, "kept" for none.
func stagesOf(droppedAt []int) string {
	var s []string
	for _, d := range droppedAt {
		if d == 0 {
			s = append(s, "kept")
		} else {
			s = append(s, strconv.Itoa(d))
		}
	}
	return strings.Join(s, ", ")
}
