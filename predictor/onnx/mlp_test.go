package onnx

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The ONNX encoding is stable: reading each shipped predictor (files that
// ONNX Runtime loads in TestShippedPredictorsOnDefaultModel and sdtp-run)
// and writing it again gives the same bytes.
func TestWriteMLPReproducesShippedPredictors(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "predictors", "gemma-3-270m", "stage*.onnx"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, path := range files {
		want, err := os.ReadFile(path)
		require.NoError(t, err)
		m, err := ReadMLP(path)
		require.NoError(t, err, path)
		out := filepath.Join(t.TempDir(), "p.onnx")
		require.NoError(t, WriteMLP(out, m))
		got, err := os.ReadFile(out)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(want, got), "%s: rewritten file differs (%d vs %d bytes)", path, len(got), len(want))
	}
}
