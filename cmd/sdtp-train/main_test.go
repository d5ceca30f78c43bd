package main

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/internal/fidelity"
	"github.com/go-sdtp/sdtp/predictor/gguf"
	"github.com/go-sdtp/sdtp/predictor/onnx"
	"github.com/go-sdtp/sdtp/sdtp"
	"github.com/go-sdtp/sdtp/sdtp/train"
)

// tinyModelAndText writes a tiny random-weight llama model and a text file
// of text into a new temporary directory.
func tinyModelAndText(t *testing.T, text string) (dir, model, data string) {
	dir = t.TempDir()
	model, data = filepath.Join(dir, "m.gguf"), filepath.Join(dir, "text.txt")
	require.NoError(t, testmodel.Write(model, testmodel.Llama()))
	require.NoError(t, os.WriteFile(data, []byte(text), 0o644))
	return dir, model, data
}

// End to end on a tiny model: calibration, training, ONNX + manifest, the
// GGUF with heads, and a resumed calibration that reuses its cache.
func TestTrainTinyModelEndToEnd(t *testing.T) {
	dir, model, data := tinyModelAndText(t, strings.Repeat("the quick brown fox jumps over the lazy dog while the cat sat on the mat\n", 40))
	cacheDir := filepath.Join(dir, "cal")
	out, embedded, rep := filepath.Join(dir, "pred"), filepath.Join(dir, "m-sdtp.gguf"), filepath.Join(dir, "report.json")
	args := []string{"--model", model, "--data", data, "--samples", "4", "--val-samples", "2", "--max-len", "64",
		"--min-len", "32", "--layers", "1,2", "--keep-ratio", "0.8", "--epochs", "3", "--cache", cacheDir, "-q",
		"-o", out, "--embed", embedded, "--report", rep, "--compare", "--threads", "1"}
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(args, &stdout, &stderr), stderr.String())
	assert.Contains(t, stderr.String(), "0 of 6 sequences done")
	assert.Contains(t, stdout.String(), "abs/pruned s")

	set, err := onnx.LoadFor(out, model, "llama", 4, 64, onnx.Options{})
	require.NoError(t, err)
	defer set.Close()
	assert.Equal(t, []int{1, 2}, set.Manifest.Layers)
	assert.Equal(t, []float64{0.8, 0.8}, set.Manifest.KeepRatios)
	assert.Equal(t, "abs", set.Manifest.Training["target"])
	assert.Equal(t, sdtp.ContextFeatures, set.Manifest.ContextFeatures, "context features by default")

	h, err := gguf.Read(embedded)
	require.NoError(t, err)
	require.NotNil(t, h)
	require.Len(t, h.MLPs, 2)
	for i, f := range set.Manifest.Files {
		m, err := onnx.ReadMLP(filepath.Join(out, f))
		require.NoError(t, err)
		assert.Equal(t, m, h.MLPs[i], "the GGUF heads are the ONNX predictors")
		assert.Equal(t, 16, m.H, "n_embd/4")
		assert.Equal(t, len(sdtp.ContextFeatures), m.Context)
	}

	var r report
	raw, err := os.ReadFile(rep)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &r))
	require.Len(t, r.Variants, 7, "--compare: abs on pruned and dense states, without context, and the four other targets on pruned")
	var targets []string
	for _, v := range r.Variants {
		targets = append(targets, v.Target)
	}
	assert.Equal(t, []string{"abs", "abs", "abs", "cumulative", "signed", "grad-norm", "alignment"}, targets)
	assert.Equal(t, []bool{true, true, false}, []bool{r.Variants[0].Context, r.Variants[1].Context, r.Variants[2].Context})
	require.Len(t, r.Decomposition, 2)
	for _, d := range r.Decomposition {
		assert.True(t, d.MeanAlignment > 0 && d.MeanAlignment <= 1, "|cos| %v", d.MeanAlignment)
		assert.True(t, d.WithGradNorm > -1 && d.WithGradNorm <= 1 && d.WithAlignment >= -1 && d.WithAlignment <= 1, "%+v", d)
	}
	assert.Contains(t, stdout.String(), "mean |cos| ×1000")
	for _, v := range r.Variants {
		require.Len(t, v.Spearman, 2)
		for _, s := range v.Spearman {
			assert.True(t, s >= -1 && s <= 1, "Spearman %v", s)
		}
	}

	// A killed run resumes: the cached records are reused, a missing one
	// is recomputed, and the result is the same.
	files, err := filepath.Glob(filepath.Join(cacheDir, "seq-*.gob"))
	require.NoError(t, err)
	require.Len(t, files, 6)
	require.NoError(t, os.Remove(files[0]))
	first, err := os.ReadFile(filepath.Join(out, "stage0.onnx"))
	require.NoError(t, err)
	stderr.Reset()
	require.NoError(t, run(args, &stdout, &stderr), stderr.String())
	assert.Contains(t, stderr.String(), "5 of 6 sequences done")
	second, err := os.ReadFile(filepath.Join(out, "stage0.onnx"))
	require.NoError(t, err)
	assert.Equal(t, first, second, "deterministic: same data, same seed, same predictors")

	// A record cached before records had gradient norms gets them from a
	// gradient pass; the predictors do not change.
	cc := train.Cache{Dir: cacheDir}
	raw, err = os.ReadFile(files[1])
	require.NoError(t, err)
	var rec train.Record
	require.NoError(t, gob.NewDecoder(bytes.NewReader(raw)).Decode(&rec))
	want := rec.GradNorm
	rec.GradNorm = nil
	require.NoError(t, cc.Store(rec))
	stderr.Reset()
	require.NoError(t, run(args, &stdout, &stderr), stderr.String())
	assert.Contains(t, stderr.String(), "6 of 6 sequences done, 1 of them without gradient norms")
	got, ok := cc.Load(train.Sequence{Prompt: rec.Tokens})
	require.True(t, ok)
	assert.Equal(t, want, got.GradNorm)
	third, err := os.ReadFile(filepath.Join(out, "stage0.onnx"))
	require.NoError(t, err)
	assert.Equal(t, first, third)

	// ... unless its saliency is not what this model computes.
	slices.Reverse(rec.Saliency[0])
	require.NoError(t, cc.Store(rec))
	err = run(args, &stdout, &stderr)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "disagrees with the cached saliency")
}

// Answer-conditioned saliency end to end: JSONL records with answers and
// prompts of the fidelity tasks (a needle task over a haystack, SQuAD-style
// QA) become prompt + answer records, whose loss is the answer's; the
// predictors train on their prompts.
func TestTrainWithAnswersAndTasks(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Llama()))
	var qa strings.Builder
	for i := range 6 {
		fmt.Fprintf(&qa, `{"prompt":"%s Question %d: which colour is the door?","answer":"The door is painted green number %d."}`+"\n",
			strings.Repeat("A long note about a house with a door and a garden. ", 2), i, i)
	}
	data := filepath.Join(dir, "qa.jsonl")
	require.NoError(t, os.WriteFile(data, []byte(qa.String()), 0o644))
	haystack := filepath.Join(dir, "hay.txt")
	require.NoError(t, os.WriteFile(haystack, []byte(strings.Repeat("The river ran past the old mill. Birds sang in the trees.\n", 40)), 0o644))
	qaDir := filepath.Join(dir, "qa")
	require.NoError(t, os.MkdirAll(qaDir, 0o755))
	var arts []string
	for i := range fidelity.SQuADDevArticles { // 13 questions each: 221, 21 more than the suite keeps
		var qas []string
		for j := range 13 {
			qas = append(qas, fmt.Sprintf(`{"id":"q%d-%d","question":"Where is the key of box %d?","is_impossible":false,"answers":[{"text":"under stone %d"}]}`, i, j, j, j))
		}
		arts = append(arts, fmt.Sprintf(`{"title":"t%d","paragraphs":[{"context":"Paragraph %d tells where the keys of the boxes are.","qas":[%s]}]}`, i, i, strings.Join(qas, ",")))
	}
	require.NoError(t, os.WriteFile(filepath.Join(qaDir, "squad.json"), []byte(`{"data":[`+strings.Join(arts, ",")+`]}`), 0o644))

	cacheDir := filepath.Join(dir, "cal")
	args := []string{"--model", model, "--data", data, "--tasks", "single-number,qa-squad", "--task-samples", "2",
		"--haystack", haystack, "--qa-data", qaDir, "--samples", "8", "--val-samples", "2", "--max-len", "256", "--min-len", "32",
		"--max-answer", "12", "--layers", "1,2", "--keep-ratio", "0.8", "--epochs", "2", "--cache", cacheDir, "-q",
		"-o", filepath.Join(dir, "pred"), "--threads", "1"}
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(args, &stdout, &stderr), stderr.String())
	assert.Contains(t, stderr.String(), "(of 10, 10 with answers)", "6 records + 2 prompts of each of 2 tasks")

	files, err := filepath.Glob(filepath.Join(cacheDir, "seq-*.gob"))
	require.NoError(t, err)
	require.Len(t, files, 10)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var rec train.Record
		require.NoError(t, gob.NewDecoder(bytes.NewReader(raw)).Decode(&rec))
		require.NotEmpty(t, rec.Answer, f)
		assert.LessOrEqual(t, len(rec.Answer), 12, "--max-answer")
		assert.Equal(t, len(rec.Tokens)-1, rec.LossFrom, "the loss is the answer's")
		assert.Len(t, rec.Saliency[0], len(rec.Tokens), "saliency of the prompt's tokens")
	}

	// The same records as plain text: no answers, other records.
	plain := append(slices.Clone(args[:4]), "--answer-loss=false", "--samples", "4", "--val-samples", "2", "--max-len", "96", "--min-len", "32",
		"--layers", "1,2", "--epochs", "1", "--cache", cacheDir, "-q", "-o", filepath.Join(dir, "pred2"), "--threads", "1")
	stderr.Reset()
	require.NoError(t, run(plain, &stdout, &stderr), stderr.String())
	assert.Contains(t, stderr.String(), "(of 6, 0 with answers)")
}

// --baseline scores the held-out records with an existing set: a set
// scores them as it did in its own run, stages it lacks show "-", and a set
// of another model, or with no stage of the run, is refused before any
// calibration.
func TestTrainBaseline(t *testing.T) {
	dir, model, data := tinyModelAndText(t, strings.Repeat("a red fox ran past seven old barns and one new mill by the river\n", 30))
	trainRun := func(layers, out string, extra ...string) (report, string, error) {
		rep := filepath.Join(dir, out+".json")
		args := append([]string{"--model", model, "--data", data, "--samples", "4", "--val-samples", "2", "--max-len", "64", "--min-len", "32",
			"--layers", layers, "--keep-ratio", "0.8", "--epochs", "2", "-q", "--threads", "1", "--cache", filepath.Join(dir, "cal-"+layers),
			"-o", filepath.Join(dir, out), "--report", rep}, extra...)
		var stdout, stderr bytes.Buffer
		if err := run(args, &stdout, &stderr); err != nil {
			return report{}, stderr.String(), err
		}
		var r report
		raw, err := os.ReadFile(rep)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(raw, &r))
		return r, stdout.String(), nil
	}
	first, _, err := trainRun("1,2", "first")
	require.NoError(t, err)
	assert.Nil(t, first.Baseline)

	second, stdout, err := trainRun("1,2", "second", "--baseline", filepath.Join(dir, "first"))
	require.NoError(t, err)
	require.NotNil(t, second.Baseline)
	require.Len(t, second.Baseline.Stages, 2)
	for s, st := range second.Baseline.Stages {
		assert.Equal(t, []int{1, 2}[s], st.Layer)
		assert.InDelta(t, first.Variants[0].Spearman[s], st.Spearman, 1e-12, "same records, same predictor, same figure")
		assert.InDelta(t, first.Variants[0].Kendall[s], st.Kendall, 1e-12)
	}
	assert.Contains(t, stdout, "baseline s")

	third, stdout, err := trainRun("2,3", "third", "--baseline", filepath.Join(dir, "first"))
	require.NoError(t, err)
	require.Len(t, third.Baseline.Stages, 1)
	assert.Equal(t, 2, third.Baseline.Stages[0].Layer)
	assert.Regexp(t, `baseline s +-?\d\.\d{3} +-\n`, stdout, "no predictor at layer 3")

	_, stderr, err := trainRun("3", "fourth", "--baseline", filepath.Join(dir, "first"))
	assert.ErrorContains(t, err, "prune before layers [1 2], none of this run's [3]")
	assert.NotContains(t, stderr, "calibration cache", "refused before calibrating")

	man := filepath.Join(dir, "first", onnx.ManifestName)
	raw, err := os.ReadFile(man)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	m["model"].(map[string]any)["embd_hash"] = strings.Repeat("ab", 32)
	raw, err = json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(man, raw, 0o644))
	_, _, err = trainRun("1,2", "fifth", "--baseline", filepath.Join(dir, "first"))
	assert.ErrorContains(t, err, "were trained for another model (embedding hash mismatch)")
}

func TestBadFlags(t *testing.T) {
	for name, args := range map[string][]string{
		"no data":       {"-o", "x"},
		"no output":     {"--data", "x"},
		"bad target":    {"--data", "x", "-o", "y", "--target", "both"},
		"bad states":    {"--data", "x", "-o", "y", "--states", "sparse"},
		"bad portion":   {"--data", "x", "-o", "y", "--text-from", "0.8", "--text-to", "0.2"},
		"bad lengths":   {"--data", "x", "-o", "y", "--max-len", "10"},
		"zero samples":  {"--data", "x", "-o", "y", "--samples", "0"},
		"missing model": {"--data", "x", "-o", "y", "--model", "/nonexistent.gguf"},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			assert.Error(t, run(args, &stdout, &stderr))
		})
	}
}

// Issue 19: explicit edge values are refused before any work, naming the
// flag; llama.cpp's -t -1 means every core.
func TestTrainRefusesExplicitEdgeValues(t *testing.T) {
	base := []string{"--data", "d.jsonl", "--out", "o"}
	var stderr bytes.Buffer
	for _, c := range []struct{ flag, value, want string }{
		{"--keep-ratio", "0", "--keep-ratio 0: the keep ratio"},
		{"--keep-ratio", "1.5", "--keep-ratio 1.5"},
		{"--hidden", "0", "--hidden 0"},
		{"--hidden", "-4", "--hidden -4"},
		{"--epochs", "0", "--epochs 0"},
		{"--batch", "1", "--batch 1"},
		{"--lr", "0", "--lr 0"},
		{"--pairs", "-1", "--pairs -1"},
		{"--patience", "-1", "--patience -1"},
		{"--threads", "-2", "--threads -2"},
		{"--cache", "", `--cache ""`},
		{"--embed", "", `--embed ""`},
		{"--baseline", "", `--baseline ""`},
		{"--max-answer", "0", "--max-answer 0"},
		{"--task-samples", "3", "--task-samples applies to --tasks"},
		{"--tasks", "needle", `unknown task "needle"`},
		{"--haystack", "", `--haystack ""`},
		{"--prompt-format", "yaml", `--prompt-format "yaml"`},
	} {
		_, err := parseFlags(append(base, c.flag, c.value), &stderr)
		assert.ErrorContains(t, err, c.want, c.flag+" "+c.value)
	}
	_, err := parseFlags(append(base, "--tasks", "qa-squad", "--task-samples", "0"), &stderr)
	assert.ErrorContains(t, err, "--task-samples 0")
	cfg, err := parseFlags(append(base, "--threads", "-1", "--pairs", "0"), &stderr)
	require.NoError(t, err)
	assert.Zero(t, cfg.threads, "-1 = all cores")
	cfg, err = parseFlags(base, &stderr)
	require.NoError(t, err)
	assert.Zero(t, cfg.fit.Hidden, "unset: n_embd/4 once the model is loaded")
}
