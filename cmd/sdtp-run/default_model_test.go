package main

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/internal/cache"
)

// Integration: on the default model (Gemma 3, byte fallback for characters
// outside its vocabulary; `make deps` fetches it), --explain and
// --explain-html keep U+13000, U+2000B and U+1F756 whole.
func TestDefaultModelExplainRareCharacters(t *testing.T) {
	model := cache.DefaultModel()
	_, err := os.Stat(model)
	require.NoError(t, err, "default model missing: run `make deps` (or `make test`)")
	assertExplainValid(t, model)
}
