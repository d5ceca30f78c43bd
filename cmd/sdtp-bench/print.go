package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/go-sdtp/sdtp/internal/report"
)

// print writes rep as JSON (--json) or as the text table of its kind.
func (b *bench) print(stdout io.Writer, rep report.Run) error {
	if b.cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	switch rep.Kind {
	case report.KindFidelity:
		printFidelity(stdout, rep)
	case report.KindMC:
		printMC(stdout, rep)
	case report.KindPasskey:
		printPasskey(stdout, rep)
	case report.KindQuality:
		printQuality(stdout, rep)
	default:
		printTable(stdout, rep)
	}
	return nil
}

func printHeader(w io.Writer, rep report.Run) {
	fmt.Fprintf(w, "model: %s   threads: %d   build flags: %s\n\n", rep.Model, rep.Threads, rep.BuildFlags)
}

// printRows writes rep's header line, then a table of the column names in
// head and one line per result, all tab-separated.
func printRows(w io.Writer, rep report.Run, head string, line func(report.Row) string) {
	printHeader(w, rep)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, head)
	for _, r := range rep.Results {
		fmt.Fprintln(tw, line(r))
	}
	tw.Flush()
}

func printTable(w io.Writer, rep report.Run) {
	printRows(w, rep, "tokens\tmode\tlayers\tkeep\tKV budget\tprefill ms\tpredictor ms\tspeedup\tFLOP ratio\tlast-layer tokens\tdecode tok/s\tKV MiB\ttop1\tmax|Δlogit|\t", func(r report.Row) string {
		return fmt.Sprintf("%d\t%s\t%s\t%.2f\t%s\t%.1f\t%.2f\t%.2fx\t%.2fx\t%d\t%.1f\t%.1f\t%.3f\t%.3g\t", r.PromptTokens, r.Label(), r.Layers(), r.KeepRatio, kvBudget(r),
			r.PrefillMS, r.PredictorMS, r.SpeedupVsLlamaCpp, r.FLOPRatioVsDense, r.KeptTokensPerLayer[len(r.KeptTokensPerLayer)-1], r.DecodeTokS,
			float64(r.KVBytes)/(1<<20), r.Top1VsLlamaCpp, r.MaxAbsLogitDiff)
	})
}

func printPasskey(w io.Writer, rep report.Run) {
	head := "tokens\tmode\tlayers\tkeep\tprompts\taccuracy\t"
	for _, d := range rep.PasskeyDepths {
		head += fmt.Sprintf("depth %.1f\t", d)
	}
	printRows(w, rep, head, func(r report.Row) string {
		line := fmt.Sprintf("%d\t%s\t%s\t%.2f\t%d\t%.2f\t", r.PromptTokens, r.Label(), r.Layers(), r.KeepRatio, r.Samples, r.PasskeyAcc)
		for _, a := range r.PasskeyDepthAcc {
			line += fmt.Sprintf("%.2f\t", a)
		}
		return line
	})
}

func printMC(w io.Writer, rep report.Run) {
	printRows(w, rep, "mean prompt\tmode\tlayers\tkeep\titems\taccuracy\t", func(r report.Row) string {
		return fmt.Sprintf("%d\t%s\t%s\t%.2f\t%d\t%.3f\t", r.PromptTokens, r.Label(), r.Layers(), r.KeepRatio, r.Samples, r.MCAcc)
	})
}

func printQuality(w io.Writer, rep report.Run) {
	printRows(w, rep, "context\tmode\tlayers\tkeep\tKV budget\tsamples\tppl\tppl / dense [95% CI]\tKL vs dense\ttop-1 vs dense\tpeak KV MiB\t", func(r report.Row) string {
		return fmt.Sprintf("%d\t%s\t%s\t%.2f\t%s\t%d\t%.3f\t%s\t%.4f\t%.3f\t%.2f\t", r.PromptTokens, r.Label(), r.Layers(), r.KeepRatio, kvBudget(r), r.Samples,
			r.PPL, report.PPLRatio(&rep, r), r.KLVsDense, r.Top1VsDense, float64(r.KVBytes)/(1<<20))
	})
}

// kvBudget is a row's KV budget, or "-" without a KV policy.
func kvBudget(r report.Row) string {
	if r.KVPolicy == "" {
		return "-"
	}
	return fmt.Sprint(r.KVBudget)
}
