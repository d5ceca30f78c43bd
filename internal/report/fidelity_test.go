package report

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func fidRow(mode, task, family string, n, correct, samples int, paired bool, denseOnly, modeOnly int) Row {
	fd := &Fidelity{Task: task, Family: family, Correct: correct, Acc: float64(correct) / float64(samples),
		Paired: paired, DenseOnly: denseOnly, ModeOnly: modeOnly, ComputeS: 60,
		Bands: []Band{{0, 0.25, samples / 2, correct / 2}, {0.25, 0.5, 0, 0}, {0.5, 0.75, samples - samples/2, correct - correct/2}, {0.75, 1, 0, 0}}}
	if family == FamilyQA {
		fd.EM, fd.F1 = 0.25, 0.5
	}
	return Row{Mode: mode, PromptTokens: n, KeepRatio: 1, Samples: samples, Fidelity: fd}
}

func syntheticFidelity() []Run {
	ruler := header(KindFidelity, "bin/sdtp-bench --json --ruler --lengths 2048,4096")
	ruler.PromptFormat, ruler.AnswerCommits = "completion", []string{"c1"}
	for _, n := range []int{2048, 4096} {
		ruler.Results = append(ruler.Results,
			fidRow("dense", "single-number", FamilyNeedles, n, 20, 24, false, 0, 0),
			fidRow("sdtp", "single-number", FamilyNeedles, n, 5, 24, true, 16, 1),
			fidRow("dense", "multi-key", FamilyNeedles, n, 12, 24, false, 0, 0),
			fidRow("sdtp", "multi-key", FamilyNeedles, n, 0, 24, true, 12, 0))
	}
	qa := header(KindFidelity, "bin/sdtp-bench --json --qa squad --lengths 2048")
	qa.PromptFormat, qa.AnswerCommits = "completion", []string{"c1", "c2"}
	qa.Results = []Row{fidRow("dense", "qa-squad", FamilyQA, 2048, 10, 24, false, 0, 0), fidRow("sdtp", "qa-squad", FamilyQA, 2048, 6, 24, true, 6, 2)}
	qa.Results[1].Scorer = "attention" // no learned predictors: the table says so
	return []Run{ruler, qa}
}

func TestWriteFidelity(t *testing.T) {
	dir := t.TempDir()
	runs := syntheticFidelity()
	require.NoError(t, Write(dir, runs, Meta{Commit: "abc", Date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)}))
	assert.Equal(t, []string{filepath.Join(dir, "FIDELITY.md")}, Outputs(dir, runs))
	assert.NoFileExists(t, filepath.Join(dir, "BENCHMARKS.md"), "no benchmark runs, no BENCHMARKS.md")
	raw, err := os.ReadFile(filepath.Join(dir, "FIDELITY.md"))
	require.NoError(t, err)
	md := string(raw)
	for _, want := range []string{
		"took 10.0 min of prefill and decode", // 10 rows × 60 s
		"| commit | `abc` |", "## m.gguf (completion prompts)", "llama.cpp: gemma3 270M;",
		// Family averages pool the tasks: needles at 2048, dense 32/48 (Wilson 0.525–0.783).
		"| 2048 | dense | 48 | 0.67 [0.53, 0.78] | 24 | 0.42 [0.24, 0.61] | 72 | 0.58 [0.47, 0.69] |",
		"| 4096 | sdtp | 48 | 0.10 [0.05, 0.22] | 0 | - | 48 | 0.10 [0.05, 0.22] |",
		// Per task, with EM/F1 for QA only, and depth bands as k/n.
		"| single-number | 2048 | sdtp | 24 | 0.21 [0.09, 0.40] | - | - | 2/12 | - | 3/12 | - |",
		"| qa-squad | 2048 | sdtp (attention) | 24 | 0.25 [0.12, 0.45] | 0.25 | 0.50 | 3/12 | - | 3/12 | - |",
		"| qa-squad | 2048 | sdtp (attention) | 24 | 6 | 2 | 16 |",
		"| depth 0–0.25 | depth 0.25–0.5 |",
		// Paired counts, dense itself left out.
		"| single-number | 2048 | sdtp | 24 | 16 | 1 | 7 |",
		"bin/sdtp-bench --json --qa squad --lengths 2048",
		"The answers were computed by the code at `c1`, `c2`.",
		"](fidelity/accuracy-m.png)",
	} {
		assert.Contains(t, md, want)
	}
	assert.NotContains(t, md, "| single-number | 2048 | dense | 24 | 20 |", "dense is not paired with itself")
	f, err := os.Open(filepath.Join(dir, FidelityDir, "accuracy-m.png"))
	require.NoError(t, err)
	defer f.Close()
	_, err = png.Decode(f)
	assert.NoError(t, err)

	// Mixed with benchmark runs, both reports are written.
	both := append(syntheticRuns(), runs...)
	require.NoError(t, Write(dir, both, Meta{Commit: "abc"}))
	assert.Len(t, Outputs(dir, both), 2)
	assert.FileExists(t, filepath.Join(dir, "BENCHMARKS.md"))
}
