package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/gguf"
	"github.com/go-sdtp/sdtp/predictor/onnx"
	"github.com/go-sdtp/sdtp/predictor/onnx/onnxtest"
)

func TestEmbedExtractRoundTrip(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Gemma3()))
	hash, err := predictor.EmbeddingHash(model)
	require.NoError(t, err)

	src := filepath.Join(dir, "onnx")
	m, mlps := onnxtest.WriteGemma3(t, src, hash, []int{2, 4}, 0.8, func(m *onnx.Manifest) {
		m.KeepRatios[1] = 0.9
		m.Training = map[string]any{"epochs": 2.0}
	})

	out := filepath.Join(dir, "m-sdtp.gguf")
	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"embed", "--model", model, "--predictors", src, "-o", out}, &stdout, &stderr))
	h, err := gguf.Read(out)
	require.NoError(t, err)
	assert.Equal(t, mlps, h.MLPs)
	assert.Equal(t, hash, h.ModelHash)

	back := filepath.Join(dir, "back")
	require.NoError(t, run([]string{"extract", "--model", out, "-o", back}, &stdout, &stderr))
	set, err := onnx.LoadFor(back, out, "gemma3", 6, 64, onnx.Options{})
	require.NoError(t, err)
	defer set.Close()
	assert.Equal(t, m.Layers, set.Manifest.Layers)
	assert.Equal(t, m.KeepRatios, set.Manifest.KeepRatios)
	assert.Equal(t, m.Training, set.Manifest.Training)
	for i := range mlps {
		got, err := onnx.ReadMLP(filepath.Join(back, set.Manifest.Files[i]))
		require.NoError(t, err)
		assert.Equal(t, mlps[i], got)
	}

	assertReembedIdentical(t, model, back, out)

	stdout.Reset()
	require.NoError(t, run([]string{"inspect", out}, &stdout, &stderr))
	assert.Contains(t, stdout.String(), "2 predictor heads")
	assert.Contains(t, stdout.String(), "Linear(64, 16)")
	stdout.Reset()
	require.NoError(t, run([]string{"inspect", back}, &stdout, &stderr))
	assert.Contains(t, stdout.String(), "2 ONNX predictors for gemma3")

	// Errors: no heads, predictors for another model, unknown command.
	assert.ErrorContains(t, run([]string{"extract", "--model", model, "-o", filepath.Join(dir, "x")}, &stdout, &stderr), "no predictor heads")
	other := filepath.Join(dir, "other.gguf")
	require.NoError(t, testmodel.Write(other, testmodel.Llama()))
	assert.ErrorContains(t, run([]string{"embed", "--model", other, "--predictors", src, "-o", filepath.Join(dir, "y.gguf")}, &stdout, &stderr), "the model is llama")
	assert.ErrorContains(t, run([]string{"embed", "--model", model}, &stdout, &stderr), "--predictors")
	assert.Error(t, run([]string{"bogus", "--model", model}, &stdout, &stderr))
	assert.Error(t, run(nil, &stdout, &stderr))
}

// assertReembedIdentical embeds the extracted predictors in dir into model
// again and checks the result equals embedded, byte for byte:
// embed(extract(embed(M))) == embed(M).
func assertReembedIdentical(t *testing.T, model, dir, embedded string) {
	t.Helper()
	again := filepath.Join(t.TempDir(), "again.gguf")
	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"embed", "--model", model, "--predictors", dir, "-o", again}, &stdout, &stderr))
	assert.True(t, sameFiles(t, embedded, again), "embed(extract(embed(M))) == embed(M)")
}

// sameFiles compares two files in chunks: the default model's copies are
// 253 MB each, too much to hold twice under the race detector.
func sameFiles(t *testing.T, a, b string) bool {
	t.Helper()
	fa, err := os.Open(a)
	require.NoError(t, err)
	defer fa.Close()
	fb, err := os.Open(b)
	require.NoError(t, err)
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, errA := io.ReadFull(fa, ba)
		nb, errB := io.ReadFull(fb, bb)
		for _, err := range []error{errA, errB} {
			if err != io.EOF && err != io.ErrUnexpectedEOF {
				require.NoError(t, err)
			}
		}
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false
		}
		if errA != nil || errB != nil { // a short chunk: the end of a file
			return (errA != nil) == (errB != nil)
		}
	}
}

func TestInitAndCheck(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Gemma3()))
	preds := filepath.Join(dir, "preds")
	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"init", "--model", model, "-o", preds, "--seed", "3"}, &stdout, &stderr))
	set, err := onnx.LoadFor(preds, model, "gemma3", 6, 64, onnx.Options{})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2, 3, 4, 5}, set.Manifest.Layers, "the default schedule for 6 layers")
	set.Close()

	text := filepath.Join(dir, "text.txt")
	require.NoError(t, os.WriteFile(text, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. ", 10)), 0o644))
	require.NoError(t, run([]string{"check", "--model", model, "--predictors", preds, "--text", text}, &stdout, &stderr))
	assert.Contains(t, stdout.String(), "kept sets identical: true")
	assert.Regexp(t, `max \|ONNX − in-graph score\| = \d\.\d\de-0[5-9]`, stdout.String())

	// A corpus instead of a prompt is refused up front, not run for hours.
	require.NoError(t, os.WriteFile(text, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. ", 300)), 0o644))
	err = run([]string{"check", "--model", model, "--predictors", preds, "--text", text}, &stdout, &stderr)
	assert.ErrorContains(t, err, "more than the model's training context (2048)")
}

// Issue 19: a flag the command does not read is refused, not ignored.
func TestFlagsACommandIgnoresAreRefused(t *testing.T) {
	var stdout, stderr bytes.Buffer
	for _, args := range [][]string{
		{"inspect", "--model", "m.gguf", "dir"},
		{"embed", "--model", "m", "--predictors", "p", "-o", "o", "--seed", "2"},
		{"extract", "--model", "m", "-o", "o", "--text", "t"},
		{"check", "--model", "m", "--predictors", "p", "-o", "o"},
		{"init", "--model", "m", "-o", "o", "--predictors", "p"},
	} {
		err := run(args, &stdout, &stderr)
		assert.ErrorContains(t, err, args[0]+" does not use --", args)
	}
	assert.ErrorContains(t, run([]string{"extract", "--model", "m", "-o", ""}, &stdout, &stderr), `--out ""`)
}

// A predictor set with a fusion block: init writes it, embed carries it
// into the GGUF's sdtp.fusion.* keys, extract and inspect read it back, and
// check runs the hybrid in both forms (ONNX and in-graph, each fused with
// the same accumulated attention) and finds the same scores and kept sets,
// reading the fusion block from predictors.json and from the GGUF.
func TestHybridInitEmbedCheck(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Gemma3()))
	text := filepath.Join(dir, "text.txt")
	require.NoError(t, os.WriteFile(text, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. ", 10)), 0o644))
	for _, method := range []string{predictor.FuseRank, predictor.FuseZScore} {
		t.Run(method, func(t *testing.T) {
			preds := filepath.Join(dir, method)
			var stdout, stderr bytes.Buffer
			require.NoError(t, run([]string{"init", "--model", model, "-o", preds, "--seed", "5", "--fusion", method}, &stdout, &stderr))
			set, err := onnx.LoadFor(preds, model, "gemma3", 6, 64, onnx.Options{})
			require.NoError(t, err)
			want := predictor.DefaultFusion(5)
			want.Method = method
			require.NotNil(t, set.Manifest.Fusion)
			assert.Equal(t, want, *set.Manifest.Fusion)
			set.Close()

			require.NoError(t, run([]string{"check", "--model", model, "--predictors", preds, "--text", text}, &stdout, &stderr))
			assert.Contains(t, stdout.String(), "kept sets identical: true")
			assert.Regexp(t, `hybrid \(`+method+` fusion, attention weights \[0.25 0.25 0.25 0.25 0.25\]\): max \|ONNX − in-graph fused score\| = (0\.00e\+00|\d\.\d\de-0[4-9])`, stdout.String())

			embedded := filepath.Join(dir, method+".gguf")
			require.NoError(t, run([]string{"embed", "--model", model, "--predictors", preds, "-o", embedded}, &stdout, &stderr))
			h, err := gguf.Read(embedded)
			require.NoError(t, err)
			require.NotNil(t, h.Fusion)
			assert.Equal(t, want, *h.Fusion)
			stdout.Reset()
			require.NoError(t, run([]string{"check", "--model", embedded, "--predictors", preds, "--text", text}, &stdout, &stderr))
			assert.Contains(t, stdout.String(), "kept sets identical: true")
			stdout.Reset()
			require.NoError(t, run([]string{"inspect", embedded}, &stdout, &stderr))
			assert.Contains(t, stdout.String(), "fusion      v1 "+method+", attention weights [0.25 0.25 0.25 0.25 0.25]; heads pooled by max, layers by mean, sliding-window layers full-mask; attention of every layer, queries: the last 16 tokens and at most 48 more spread over the rest of it")

			back := filepath.Join(dir, method+"-back")
			require.NoError(t, run([]string{"extract", "--model", embedded, "-o", back}, &stdout, &stderr))
			assertReembedIdentical(t, model, back, embedded)
		})
	}

	// A GGUF whose fusion block differs from the directory's is caught.
	preds := filepath.Join(dir, "rank")
	plain := filepath.Join(dir, "plain")
	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"init", "--model", model, "-o", plain, "--seed", "5"}, &stdout, &stderr))
	err := run([]string{"check", "--model", filepath.Join(dir, "zscore.gguf"), "--predictors", preds, "--text", text}, &stdout, &stderr)
	assert.ErrorContains(t, err, "fusion block")
	stdout.Reset()
	require.NoError(t, run([]string{"inspect", plain}, &stdout, &stderr))
	assert.Contains(t, stdout.String(), "fusion      none")
	assert.ErrorContains(t, run([]string{"init", "--model", model, "-o", filepath.Join(dir, "bad"), "--fusion", "sum"}, &stdout, &stderr), `fusion method "sum"`)
	assert.ErrorContains(t, run([]string{"check", "--model", model, "--predictors", preds, "--fusion", "rank"}, &stdout, &stderr), "check does not use --fusion")
}
