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
	"github.com/go-sdtp/sdtp/llama"
)

func tinyModel(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	require.NoError(t, testmodel.Write(path, testmodel.Gemma3()))
	return path
}

func TestRunJSON(t *testing.T) {
	model := tinyModel(t)
	var stdout, stderr bytes.Buffer
	err := run([]string{"-m", model, "-p", "the cat sat", "-n", "12", "--temp", "0", "-t", "2", "-c", "256", "--json"}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	var r report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &r), stdout.String())
	assert.Greater(t, r.PromptTokens, 3)
	assert.LessOrEqual(t, r.GeneratedTokens, 12)
	assert.Greater(t, r.PrefillMS, 0.0)
	if r.GeneratedTokens > 0 {
		assert.NotEmpty(t, r.Text)
	}
}

func TestRunStreamsTextFromFile(t *testing.T) {
	model := tinyModel(t)
	prompt := filepath.Join(t.TempDir(), "prompt.txt")
	require.NoError(t, os.WriteFile(prompt, []byte("the dog ran"), 0o644))
	var plain, asJSON, stderr bytes.Buffer
	args := []string{"-m", model, "-f", prompt, "-n", "10", "--temp", "0", "--seed", "1"}
	require.NoError(t, run(args, &plain, &stderr))
	require.NoError(t, run(append(args, "--json"), &asJSON, &stderr))
	var r report
	require.NoError(t, json.Unmarshal(asJSON.Bytes(), &r))
	// A random model emits stray bytes; JSON carries each as U+FFFD.
	assert.Equal(t, r.Text+"\n", perByteValid(plain.String()), "streamed text equals the final text")
}

// perByteValid replaces every invalid byte by U+FFFD, as encoding/json does.
func perByteValid(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

func TestRunErrors(t *testing.T) {
	model := tinyModel(t)
	for name, args := range map[string][]string{
		"no prompt":       {"-m", model},
		"both prompts":    {"-m", model, "-p", "x", "-f", "y"},
		"missing file":    {"-m", model, "-f", "/nonexistent/prompt.txt"},
		"missing model":   {"-m", "/nonexistent/model.gguf", "-p", "x"},
		"unknown model":   {"-m", "llama-7b", "-p", "x"},
		"negative n":      {"-m", model, "-p", "x", "-n", "-3"},
		"stray arg":       {"-m", model, "-p", "x", "extra"},
		"unknown flag":    {"--bogus"},
		"prompt too long": {"-m", model, "-c", "256", "-p", string(bytes.Repeat([]byte("the cat "), 300))},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			assert.Error(t, run(args, &stdout, &stderr))
		})
	}
}

func TestRunPruningModesAndExplain(t *testing.T) {
	model := tinyModel(t)
	long := strings.Repeat("the quick brown fox jumps over the lazy dog. ", 8)
	page := filepath.Join(t.TempDir(), "explain.html")
	var stdout, stderr bytes.Buffer
	err := run([]string{"-m", model, "-p", long, "-n", "4", "--temp", "0", "-c", "1024", "--mode", "random",
		"--keep-ratio", "0.6", "--json", "--explain", "--explain-html", page}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	var r report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &r))
	assert.Equal(t, "random", r.Mode)
	assert.Greater(t, r.FLOPRatio, 1.2)
	assert.Len(t, r.KeptPerLayer, 6)
	assert.Equal(t, r.PromptTokens, r.KeptPerStage[0])
	assert.Less(t, r.KeptPerStage[len(r.KeptPerStage)-1], r.PromptTokens)
	assert.Positive(t, r.KVBytes)
	assert.Contains(t, stderr.String(), "\x1b[38;5;", "pruned tokens are dimmed")

	html, err := os.ReadFile(page)
	require.NoError(t, err)
	assert.Contains(t, string(html), "<!DOCTYPE html>")
	assert.Contains(t, string(html), "pruned at stage 1")
	assert.Contains(t, string(html), "kept to the last layer")

	// --explain needs a staged mode.
	err = run([]string{"-m", model, "-p", "x", "-n", "1", "--mode", "llamacpp", "--explain"}, &stdout, &stderr)
	assert.ErrorContains(t, err, "staged mode")
	err = run([]string{"-m", model, "-p", "x", "--mode", "bogus"}, &stdout, &stderr)
	assert.ErrorContains(t, err, "unknown SDTP mode")
	err = run([]string{"-m", model, "-p", "x", "--prune-layers", "0,9"}, &stdout, &stderr)
	assert.Error(t, err)
}

func TestRunKVPolicy(t *testing.T) {
	model := tinyModel(t)
	long := strings.Repeat("the quick brown fox jumps over the lazy dog. ", 8)
	var stdout, stderr bytes.Buffer
	err := run([]string{"-m", model, "-p", long, "-n", "60", "--temp", "0", "-c", "1024", "--mode", "attention",
		"--kv-policy", "h2o", "--kv-budget", "0.5", "--json"}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	var r report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &r))
	assert.Equal(t, "h2o", r.KVPolicy)
	assert.Equal(t, (r.PromptTokens+1)/2, r.KVLimit)
	assert.Positive(t, r.KVPeakBytes)
	const cellBytes = 6 * 2 * 2 * 16 * 2 // tiny gemma3: layers × (K, V) × KV heads × head dim × F16
	assert.LessOrEqual(t, r.KVPeakBytes, int64(r.KVLimit*cellBytes))

	err = run([]string{"-m", model, "-p", "x", "--mode", "llamacpp", "--kv-policy", "streaming"}, &stdout, &stderr)
	assert.ErrorContains(t, err, "staged mode")
	err = run([]string{"-m", model, "-p", "x", "--kv-policy", "lru"}, &stdout, &stderr)
	assert.ErrorContains(t, err, "unknown KV policy")
}

// On an architecture the staged engine does not run, the default mode falls
// back to llama.cpp's prefill with a notice; an explicit pruning mode fails
// and names the mode that works.
func TestRunUnstagedArchitecture(t *testing.T) {
	model := filepath.Join(t.TempDir(), "mistral3.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Mistral3()))
	var stdout, stderr bytes.Buffer
	err := run([]string{"-m", model, "-p", "the cat", "-n", "4", "--temp", "0", "-c", "256", "--json"}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	var r report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &r))
	assert.Equal(t, llama.ModeLlamaCpp, r.Mode)
	assert.Contains(t, stderr.String(), "architecture not supported by the staged engine: mistral3")
	assert.Contains(t, stderr.String(), "running with --mode llamacpp")

	err = run([]string{"-m", model, "-p", "the cat", "-c", "256", "--mode", "attention"}, &stdout, &stderr)
	assert.ErrorIs(t, err, llama.ErrUnsupportedArch)
	assert.ErrorContains(t, err, "mode llamacpp runs any model")
}

// --chat-template formats -p as one user message (after --system) with the
// model's template: the same run as the formatted text given by hand.
func TestRunChatTemplate(t *testing.T) {
	model := filepath.Join(t.TempDir(), "qwen2-chat.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Qwen2Chat()))
	common := []string{"-m", model, "-n", "6", "--temp", "0", "-c", "256", "--json"}
	var templated, byHand, stderr bytes.Buffer
	require.NoError(t, run(append(common, "--chat-template", "--system", "Be brief.", "-p", "the cat"), &templated, &stderr), stderr.String())
	require.NoError(t, run(append(common, "-p", "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nthe cat<|im_end|>\n<|im_start|>assistant\n"), &byHand, &stderr))
	var a, b report
	require.NoError(t, json.Unmarshal(templated.Bytes(), &a))
	require.NoError(t, json.Unmarshal(byHand.Bytes(), &b))
	assert.Equal(t, b.PromptTokens, a.PromptTokens)
	assert.Equal(t, b.Text, a.Text)

	var out bytes.Buffer

	base := filepath.Join(t.TempDir(), "llama.gguf")
	require.NoError(t, testmodel.Write(base, testmodel.Llama()))
	err := run([]string{"-m", base, "-p", "x", "--chat-template"}, &out, &stderr)
	assert.ErrorIs(t, err, llama.ErrNoChatTemplate)
	assert.ErrorContains(t, err, "without --chat-template")
	err = run([]string{"-m", model, "-p", "x", "--system", "Be brief."}, &out, &stderr)
	assert.ErrorContains(t, err, "--system needs --chat-template")
}

func TestRunAccumulatedAttentionWithSpans(t *testing.T) {
	model := tinyModel(t)
	prompt := strings.Repeat("the quick brown fox jumps over the lazy dog. ", 8)
	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"-m", model, "-p", prompt, "-n", "2", "--temp", "0", "-c", "256", "--mode", "attention-acc", "--span", "7", "--json"}, &stdout, &stderr), stderr.String())
	var r report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &r))
	assert.Equal(t, "attention-acc", r.Mode)
	assert.Less(t, r.KeptPerLayer[len(r.KeptPerLayer)-1], r.PromptTokens)
	assert.ErrorContains(t, run([]string{"-m", model, "-p", prompt, "-n", "2", "--mode", "attention-acc", "--span", "4"}, &stdout, &stderr), "span kernel 4")
	assert.ErrorContains(t, run([]string{"-m", model, "-p", prompt, "-n", "2", "--mode", "dense", "--span", "7"}, &stdout, &stderr), "which prunes nothing")
}
