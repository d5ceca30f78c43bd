package main

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	flag "github.com/spf13/pflag"

	"github.com/go-sdtp/sdtp/internal/report"
)

// runReport is `sdtp-bench report [--out DIR] FILE...`: BENCHMARKS.md
// (speed, quality, passkey, multiple-choice runs) and FIDELITY.md (--ruler
// and --qa runs) with their plots, from the --json results of other
// sdtp-bench runs.
func runReport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sdtp-bench report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "docs", "directory for BENCHMARKS.md and FIDELITY.md; the plots go to its "+report.PlotDir+"/ and "+report.FidelityDir+"/")
	commit := fs.String("commit", "", "commit the results were measured at (default: git rev-parse HEAD)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("report needs the JSON files of sdtp-bench --json runs")
	}
	runs, err := report.Load(fs.Args())
	if err != nil {
		return err
	}
	if *commit == "" {
		*commit = gitCommit()
	}
	if err := report.Write(*out, runs, report.Meta{Commit: *commit, Date: time.Now()}); err != nil {
		return err
	}
	for _, f := range report.Outputs(*out, runs) {
		fmt.Fprintln(stdout, "wrote", f)
	}
	return nil
}

// gitCommit is HEAD, marked when source or build files differ from it (the
// results may then not come from HEAD's code).
func gitCommit() string {
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	c := strings.TrimSpace(string(rev))
	code := []string{":(top)*.go", ":(top)*.c", ":(top)*.cpp", ":(top)*.h", ":(top)go.mod", ":(top)go.sum", ":(top)Makefile"}
	st, err := exec.Command("git", append([]string{"status", "--porcelain", "--untracked-files=no", "--"}, code...)...).Output()
	if err == nil && len(st) > 0 {
		c += " with uncommitted changes"
	}
	return c
}
