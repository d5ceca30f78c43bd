package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/internal/cache"
)

// The shipped predictors on the default model (integration; `make deps`
// fetches the model): the ONNX and in-graph paths agree, and
// embed → extract → embed reproduces the GGUF byte for byte.
func TestShippedPredictorsOnDefaultModel(t *testing.T) {
	model := cache.DefaultModel()
	_, err := os.Stat(model)
	require.NoError(t, err, "default model missing: run `make deps` (or `make test`)")
	shipped := filepath.Join("..", "..", "predictors", "gemma-3-270m")
	dir := t.TempDir()

	text := filepath.Join(dir, "text.txt")
	para := "The river rises in the hills north of the town, where the old mill still stands. " +
		"In spring the water runs high and the fields along its banks flood for weeks. "
	require.NoError(t, os.WriteFile(text, []byte(strings.Repeat(para, 12)), 0o644)) // ~420 tokens: 10 stages keep ~150
	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"check", "--model", model, "--predictors", shipped, "--text", text}, &stdout, &stderr), stdout.String())
	assert.Contains(t, stdout.String(), "kept sets identical: true")
	t.Log(strings.TrimSpace(stdout.String()))

	out, back := filepath.Join(dir, "m-sdtp.gguf"), filepath.Join(dir, "back")
	require.NoError(t, run([]string{"embed", "--model", model, "--predictors", shipped, "-o", out}, &stdout, &stderr))
	require.NoError(t, run([]string{"extract", "--model", out, "-o", back}, &stdout, &stderr))
	assertReembedIdentical(t, model, back, out)
}
