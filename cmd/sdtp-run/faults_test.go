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

	"github.com/go-sdtp/sdtp/internal/cache"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/onnx/onnxtest"
	"github.com/go-sdtp/sdtp/sdtp"
)

// Issue 19: a value the user typed is a value, not "unset"; a setting
// the mode would ignore is refused.
func TestRunRefusesExplicitEdgeValues(t *testing.T) {
	model := tinyModel(t)
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"keep ratio 0":            {[]string{"--mode", "random", "--keep-ratio", "0"}, "--keep-ratio 0: the keep ratio"},
		"keep ratio 1.5":          {[]string{"--keep-ratio", "1.5"}, "keep ratio"},
		"n 0":                     {[]string{"-n", "0"}, "--n-predict 0 generates nothing"},
		"n -3":                    {[]string{"-n", "-3"}, "--n-predict -3"},
		"threads -2":              {[]string{"-t", "-2"}, "--threads -2"},
		"ctx -1":                  {[]string{"-c", "-1"}, "--ctx-size -1"},
		"kv budget, no policy":    {[]string{"--kv-budget", "0.5"}, "--kv-budget needs a --kv-policy"},
		"keep ratio, llamacpp":    {[]string{"--mode", "llamacpp", "--keep-ratio", "0.5"}, "keep ratio 0.5 given in mode llamacpp"},
		"prune layers, dense":     {[]string{"--mode", "dense", "--prune-layers", "3"}, "pruning layers [3] given in mode dense"},
		"predictors, attention":   {[]string{"--mode", "attention", "--predictors", "p"}, "predictors p given in mode attention"},
		"keep ratio 0, llamacpp ": {[]string{"--mode", "llamacpp", "--keep-ratio", "0"}, "--keep-ratio 0"},
		"onnx provider, random":   {[]string{"--mode", "random", "--onnx-provider", "cuda"}, "--onnx-provider applies to ONNX predictors"},
		"explain, llamacpp":       {[]string{"--mode", "llamacpp", "--explain"}, "--explain needs a staged mode"},
		"span -1":                 {[]string{"--span", "-1"}, "--span -1 / --span-trail 0 / --span-echo 0: want 0 (none)"},
		"span echo -2":            {[]string{"--span-echo", "-2"}, "--span-echo -2: want 0 (none)"},
		"span echo 1":             {[]string{"--span-echo", "1"}, "span echo 1 must be 0 (off) or an n-gram length of at least 2"},
		"span echo, dense":        {[]string{"--mode", "dense", "--span-echo", "3"}, "span echo 3 given in mode dense"},
		"echo hops, no echo":      {[]string{"--mode", "random", "--span-echo-hops", "2"}, "span echo hops 2 need a span echo"},
		"echo hops -1":            {[]string{"--span-echo-hops", "-1"}, "--span-echo-hops -1: want 0 (none)"},
		"trail end, no trail":     {[]string{"--mode", "random", "--span-trail-sentence"}, "without a trail to end"},
		"trail end, dense":        {[]string{"--mode", "dense", "--span-trail-sentence=false"}, `span trail end "open" given in mode dense`},
		"echo first, no echo":     {[]string{"--mode", "random", "--span-echo-first"}, "without an echo to rank"},
		"sentences, dense":        {[]string{"--mode", "dense", "--span-sentences"}, `span sentences "whole" given in mode dense`},
		"schedule, dense":         {[]string{"--mode", "dense", "--schedule", "paper"}, "schedule paper given in mode dense"},
		"schedule unknown":        {[]string{"--schedule", "fast"}, `unknown schedule "fast"`},
		"schedule empty":          {[]string{"--schedule", ""}, `--schedule ""`},
		"empty mode":              {[]string{"--mode", ""}, `--mode ""`},
		"empty kv policy":         {[]string{"--kv-policy", ""}, `--kv-policy ""`},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(append([]string{"-m", model, "-p", "the cat", "-c", "256"}, c.args...), &stdout, &stderr)
			assert.ErrorContains(t, err, c.want)
		})
	}
	// -p "" is an empty prompt (BOS alone), not a missing one.
	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"-m", model, "-p", "", "-n", "2", "--temp", "0", "-c", "64", "--json"}, &stdout, &stderr), stderr.String())
	var empty report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &empty))
	assert.Equal(t, 1, empty.PromptTokens)
	stdout.Reset()

	// llama-cli's -1s: -n -1 generates to the end of text or a full
	// context, -t -1 uses every core.
	require.NoError(t, run([]string{"-m", model, "-p", "the cat", "-c", "64", "-n", "-1", "-t", "-1", "--temp", "0", "--json"}, &stdout, &stderr), stderr.String())
	var r report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &r))
	assert.Positive(t, r.GeneratedTokens)
}

// --prune-layers with learned predictors runs the user's layers with the
// predictors for them, and refuses layers they were not trained for,
// naming the ones they cover.
func TestRunPredictorsAtChosenLayers(t *testing.T) {
	model := tinyModel(t)
	hash, err := predictor.EmbeddingHash(model)
	require.NoError(t, err)
	preds := filepath.Join(t.TempDir(), "preds")
	onnxtest.WriteGemma3(t, preds, hash, []int{2, 4}, 0.7, nil)
	long := strings.Repeat("the quick brown fox jumps over the lazy dog. ", 8)

	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"-m", model, "-p", long, "-n", "2", "--temp", "0", "-c", "1024", "--mode", "learned",
		"--predictors", preds, "--prune-layers", "4", "--json"}, &stdout, &stderr), stderr.String())
	var r report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &r))
	assert.Len(t, r.KeptPerStage, 2, "one stage, before layer 4")
	assert.Equal(t, r.PromptTokens, r.KeptPerLayer[3])
	assert.Less(t, r.KeptPerLayer[4], r.PromptTokens)

	// Without --keep-ratio the trained ratio holds (0.7, not 0.9).
	stdout.Reset()
	require.NoError(t, run([]string{"-m", model, "-p", long, "-n", "2", "--temp", "0", "-c", "1024", "--mode", "learned",
		"--predictors", preds, "--json"}, &stdout, &stderr), stderr.String())
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &r))
	assert.Equal(t, sdtp.Schedule{Layers: []int{2, 4}, KeepRatios: []float64{0.7, 0.7}}.Expected(r.PromptTokens), r.KeptPerStage)

	err = run([]string{"-m", model, "-p", long, "-n", "2", "-c", "1024", "--mode", "learned",
		"--predictors", preds, "--prune-layers", "3"}, &stdout, &stderr)
	assert.ErrorContains(t, err, "pruning layer 3 has no learned predictor: the predictors cover layers [2 4]")
}

// The instance on the default model with the shipped predictors
// (integration): --prune-layers 9 is one stage before layer 9, not the
// predictors' own ten.
func TestRunDefaultModelShippedPredictorsAtLayer9(t *testing.T) {
	model := cache.DefaultModel()
	_, err := os.Stat(model)
	require.NoError(t, err, "default model missing: run `make deps` (or `make test`)")
	shipped := filepath.Join("..", "..", "predictors", "gemma-3-270m")
	prompt := strings.Repeat("The river rises in the hills north of the town, where the old mill still stands. ", 8)
	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"-m", model, "-p", prompt, "-n", "2", "--temp", "0", "-c", "1024", "-t", "1", "--mode", "sdtp",
		"--predictors", shipped, "--prune-layers", "9", "--json"}, &stdout, &stderr), stderr.String())
	var r report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &r))
	assert.Len(t, r.KeptPerStage, 2)
	assert.Equal(t, r.PromptTokens, r.KeptPerLayer[8])
	assert.Less(t, r.KeptPerLayer[9], r.PromptTokens)

	err = run([]string{"-m", model, "-p", prompt, "-n", "2", "-c", "1024", "-t", "1", "--mode", "sdtp",
		"--predictors", shipped, "--prune-layers", "3"}, &stdout, &stderr)
	assert.ErrorContains(t, err, "the predictors cover layers [2 4 5 7 9 10 12 14 15 17]")
}
