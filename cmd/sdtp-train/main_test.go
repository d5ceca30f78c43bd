package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/predictor/gguf"
	"github.com/go-sdtp/sdtp/predictor/onnx"
	"github.com/go-sdtp/sdtp/sdtp"
)

// End to end on a tiny model: calibration, training, ONNX + manifest, the
// GGUF with heads, and a resumed calibration that reuses its cache.
func TestTrainTinyModelEndToEnd(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Llama()))
	text := strings.Repeat("the quick brown fox jumps over the lazy dog while the cat sat on the mat\n", 40)
	data := filepath.Join(dir, "text.txt")
	require.NoError(t, os.WriteFile(data, []byte(text), 0o644))
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
	require.Len(t, r.Variants, 5, "--compare: abs on pruned and dense states, without context, cumulative and signed on pruned")
	assert.Equal(t, []bool{true, true, false, true, true}, []bool{r.Variants[0].Context, r.Variants[1].Context,
		r.Variants[2].Context, r.Variants[3].Context, r.Variants[4].Context})
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
