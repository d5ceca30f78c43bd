package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/internal/report"
)

// tiny gemma3: layers × (K, V) × KV heads × head dim × F16 bytes per cached token.
const tinyCellBytes = 6 * 2 * 2 * 16 * 2

// KV policies compose with every staged mode in --quality: the caches stay
// within the budget through the continuation, and evicting costs quality.
func TestBenchQualityWithKVPolicies(t *testing.T) {
	model, text := tinyInputs(t, 6, 30)
	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"--model", model, "--text", text, "--quality", "--context-tokens", "200", "--continuation-tokens", "40",
		"--samples", "1", "--modes", "dense,attention", "--kv-policy", "none,streaming,h2o,snapkv", "--kv-budget", "0.4", "--json"}, &stdout, &stderr), stderr.String())
	var rep report.Run
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
	require.Len(t, rep.Results, 8, "2 modes × 4 policies")
	dense := rep.Results[0]
	require.Equal(t, "dense", dense.Mode)
	require.Empty(t, dense.KVPolicy)
	assert.Equal(t, int64(239*tinyCellBytes), dense.KVBytes, "every token of context and continuation but the last, in every layer")
	for _, r := range rep.Results[1:] {
		if r.KVPolicy == "" {
			continue
		}
		assert.Equal(t, r.KVPolicy, r.Mode[strings.Index(r.Mode, "+")+1:])
		assert.Equal(t, 0.4, r.KVBudget)
		assert.LessOrEqual(t, r.KVBytes, int64(80*tinyCellBytes), "%s %s: 0.4 × 200 cells per layer", r.Mode, r.KVPolicy)
		assert.Positive(t, r.KLVsDense, "%s %s", r.Mode, r.KVPolicy)
	}

	stdout.Reset()
	require.NoError(t, run([]string{"--model", model, "--text", text, "--quality", "--context-tokens", "200", "--continuation-tokens", "8",
		"--samples", "1", "--modes", "dense", "--kv-policy", "h2o"}, &stdout, &stderr), stderr.String())
	assert.Contains(t, stdout.String(), "dense+h2o")

	assert.Error(t, run([]string{"--model", model, "--kv-policy", "lru"}, &stdout, &stderr))
	assert.Error(t, run([]string{"--model", model, "--kv-policy", "h2o", "--kv-budget", "0"}, &stdout, &stderr))
}

// In the speed mode a policy evicts after the prefill and during decode;
// llamacpp runs only without one.
func TestBenchSpeedWithKVPolicy(t *testing.T) {
	model, text := tinyInputs(t, 6, 30)
	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"--model", model, "--text", text, "--prompt-tokens", "200", "--repeat", "1", "--decode-tokens", "50",
		"--modes", "llamacpp,random", "--kv-policy", "none,streaming", "--kv-budget", "64", "--json"}, &stdout, &stderr), stderr.String())
	var rep report.Run
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
	require.Len(t, rep.Results, 3, "llamacpp, random, random + streaming")
	streaming := rep.Results[2]
	assert.Equal(t, "streaming", streaming.KVPolicy)
	assert.Equal(t, "random+streaming", streaming.Mode)
	assert.Equal(t, int64(64*tinyCellBytes), streaming.KVBytes, "64 cells in every layer after the prefill")
	assert.Positive(t, streaming.DecodeTokS)
	assert.Less(t, streaming.KVBytes, rep.Results[1].KVBytes)
}
