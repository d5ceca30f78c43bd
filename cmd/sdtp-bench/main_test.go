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
)

func TestBenchJSONOnTinyModel(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny.gguf")
	cfg := testmodel.Gemma3()
	cfg.NLayer = 12
	require.NoError(t, testmodel.Write(model, cfg))
	text := filepath.Join(dir, "text.txt")
	require.NoError(t, os.WriteFile(text, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. ", 40)), 0o644))

	var stdout, stderr bytes.Buffer
	err := run([]string{"--model", model, "--text", text, "--prompt-tokens", "128,256", "--repeat", "1",
		"--decode-tokens", "4", "--threads", "2", "--json"}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	var rep Report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
	require.Len(t, rep.Results, 10, "5 modes × 2 lengths")
	assert.Contains(t, rep.BuildFlags, "CGO_CFLAGS")
	for _, r := range rep.Results {
		assert.Len(t, r.KeptTokensPerLayer, 12)
		assert.Positive(t, r.PrefillMS)
		assert.Positive(t, r.DecodeTokS)
		switch r.Mode {
		case "llamacpp", "dense":
			assert.Equal(t, 1.0, r.Top1VsLlamaCpp, r.Mode)
			assert.Zero(t, r.MaxAbsLogitDiff, r.Mode)
			assert.Equal(t, 1.0, r.FLOPRatioVsDense)
			assert.Equal(t, r.PromptTokens, r.KeptTokensPerLayer[11])
		default:
			assert.Greater(t, r.FLOPRatioVsDense, 1.3, r.Mode)
			assert.Less(t, r.KeptTokensPerLayer[11], r.PromptTokens/2, r.Mode)
		}
	}

	// The readable table names every mode.
	stdout.Reset()
	require.NoError(t, run([]string{"--model", model, "--text", text, "--prompt-tokens", "128", "--repeat", "1", "--decode-tokens", "2", "--modes", "llamacpp,random"}, &stdout, &stderr))
	assert.Contains(t, stdout.String(), "random")
	assert.Contains(t, stdout.String(), "llamacpp")

	assert.Error(t, run([]string{"--model", model, "--modes", "bogus"}, &stdout, &stderr))
	assert.Error(t, run([]string{"--model", model, "--text", text, "--prompt-tokens", "100000"}, &stdout, &stderr))
}
