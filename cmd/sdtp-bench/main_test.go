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
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/onnx"
	"github.com/go-sdtp/sdtp/sdtp"
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

func TestBenchLearnedPredictorModes(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Gemma3()))
	hash, err := predictor.EmbeddingHash(model)
	require.NoError(t, err)
	var m onnx.Manifest
	m.Version = 1
	m.Model.Arch, m.Model.NLayer, m.Model.NEmbd, m.Model.EmbdHash = "gemma3", 6, 64, hash
	m.Layers, m.KeepRatios, m.HeadKeep, m.TailKeepFrac = []int{2, 4}, []float64{0.7, 0.7}, sdtp.HeadKeep, sdtp.TailKeepFrac
	mlps := []predictor.MLP{predictor.RandomMLP(64, 16, 1), predictor.RandomMLP(64, 16, 2)}
	preds := filepath.Join(dir, "preds")
	require.NoError(t, onnx.WriteSet(preds, m, mlps))
	text := filepath.Join(dir, "text.txt")
	require.NoError(t, os.WriteFile(text, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. ", 20)), 0o644))

	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"--model", model, "--text", text, "--prompt-tokens", "200", "--repeat", "1", "--decode-tokens", "2",
		"--modes", "llamacpp,sdtp-onnx,sdtp-gguf,sdtp", "--predictors", preds, "--json"}, &stdout, &stderr), stderr.String())
	var rep Report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
	byMode := map[string]Row{}
	for _, r := range rep.Results {
		byMode[r.Mode] = r
	}
	assert.Positive(t, byMode["sdtp-onnx"].PredictorMS)
	assert.Positive(t, byMode["sdtp-gguf"].PredictorMS)
	assert.Less(t, byMode["sdtp-onnx"].PredictorMS, byMode["sdtp-onnx"].PrefillMS)
	assert.Equal(t, byMode["sdtp-onnx"].KeptTokensPerLayer, byMode["sdtp-gguf"].KeptTokensPerLayer, "one set of predictors, two runtimes")
	assert.Less(t, byMode["sdtp-gguf"].KeptTokensPerLayer[5], 200)

	assert.ErrorContains(t, run([]string{"--model", model, "--text", text, "--prompt-tokens", "200", "--modes", "sdtp-onnx"}, &stdout, &stderr), "needs learned predictors")
}

func TestBenchQuality(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Gemma3()))
	text := filepath.Join(dir, "text.txt")
	require.NoError(t, os.WriteFile(text, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. a cat sat on the mat. ", 30)), 0o644))
	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"--model", model, "--text", text, "--quality", "--context-tokens", "200", "--continuation-tokens", "16",
		"--samples", "2", "--modes", "llamacpp,dense,random,attention", "--json"}, &stdout, &stderr), stderr.String())
	var rep Report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
	require.Len(t, rep.Results, 3, "llamacpp is the dense reference, not repeated")
	for _, r := range rep.Results {
		assert.Equal(t, 2, r.Samples)
		assert.Greater(t, r.PPL, 1.0)
		switch r.Mode {
		case "dense":
			assert.Zero(t, r.KLVsDense)
			assert.Equal(t, 1.0, r.Top1VsDense)
		default:
			assert.Positive(t, r.KLVsDense, r.Mode)
		}
	}
	assert.Error(t, run([]string{"--model", model, "--quality"}, &stdout, &stderr), "--quality needs --text")
}

func TestBenchPasskey(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Gemma3()))
	hay := filepath.Join(dir, "hay.txt")
	require.NoError(t, os.WriteFile(hay, []byte(strings.Repeat("the grass is green. the sky is blue. the sun is warm. ", 40)), 0o644))
	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"--model", model, "--passkey", "--haystack", hay, "--lengths", "200,300", "--depths", "0.2,0.8",
		"--trials", "2", "--modes", "dense,random", "--json"}, &stdout, &stderr), stderr.String())
	var rep Report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
	require.Len(t, rep.Results, 4, "2 lengths × 2 modes")
	for _, r := range rep.Results {
		assert.Equal(t, 4, r.Samples)
		assert.Len(t, r.PasskeyDepthAcc, 2)
		assert.GreaterOrEqual(t, r.PasskeyAcc, 0.0)
		assert.LessOrEqual(t, r.PasskeyAcc, 1.0)
	}
	for _, bad := range [][]string{{"--passkey"}, {"--passkey", "--haystack", hay, "--depths", "1.5"},
		{"--passkey", "--haystack", hay, "--lengths", "20"}} {
		assert.Error(t, run(append([]string{"--model", model}, bad...), &stdout, &stderr), bad)
	}
}
