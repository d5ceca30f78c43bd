package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/internal/report"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/onnx"
	"github.com/go-sdtp/sdtp/predictor/onnx/onnxtest"
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
	var rep report.Run
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
	require.Len(t, rep.Results, 10, "5 modes × 2 lengths")
	assert.Contains(t, rep.BuildFlags, "CGO_CFLAGS")
	for _, r := range rep.Results {
		assert.Len(t, r.KeptTokensPerLayer, 12)
		assert.Positive(t, r.PrefillMS)
		assert.Positive(t, r.DecodeTokS)
		assert.True(t, r.Default(), "no sweep flags: every row is the default schedule")
		switch r.Mode {
		case "llamacpp", "dense":
			assert.Equal(t, 1.0, r.Top1VsLlamaCpp, r.Mode)
			assert.Zero(t, r.MaxAbsLogitDiff, r.Mode)
			assert.Equal(t, 1.0, r.FLOPRatioVsDense)
			assert.Equal(t, r.PromptTokens, r.KeptTokensPerLayer[11])
			assert.Empty(t, r.Scorer)
		default:
			want := r.Mode
			if r.Mode == "sdtp" {
				want = "attention-acc" // no predictors for the tiny model
			}
			assert.Equal(t, want, r.Scorer, "the scorer that ran")
			assert.Greater(t, r.FLOPRatioVsDense, 1.3, r.Mode)
			assert.Less(t, r.KeptTokensPerLayer[11], r.PromptTokens/2, r.Mode)
		}
	}

	// The readable table names every mode.
	stdout.Reset()
	require.NoError(t, run([]string{"--model", model, "--text", text, "--prompt-tokens", "128", "--repeat", "1", "--decode-tokens", "2", "--modes", "llamacpp,random,sdtp"}, &stdout, &stderr))
	assert.Contains(t, stdout.String(), "random")
	assert.Contains(t, stdout.String(), "llamacpp")
	assert.Contains(t, stdout.String(), "sdtp (attention-acc)", "the row says what ran")

	assert.Error(t, run([]string{"--model", model, "--modes", "bogus"}, &stdout, &stderr))
	assert.Error(t, run([]string{"--model", model, "--text", text, "--prompt-tokens", "100000"}, &stdout, &stderr))
}

func TestBenchLearnedPredictorModes(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Gemma3()))
	hash, err := predictor.EmbeddingHash(model)
	require.NoError(t, err)
	preds := filepath.Join(dir, "preds")
	onnxtest.WriteGemma3(t, preds, hash, []int{2, 4}, 0.7, nil)
	text := filepath.Join(dir, "text.txt")
	require.NoError(t, os.WriteFile(text, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. ", 20)), 0o644))

	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"--model", model, "--text", text, "--prompt-tokens", "200", "--repeat", "1", "--decode-tokens", "2",
		"--modes", "llamacpp,sdtp-onnx,sdtp-gguf,sdtp", "--predictors", preds, "--json"}, &stdout, &stderr), stderr.String())
	var rep report.Run
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
	byMode := map[string]report.Row{}
	for _, r := range rep.Results {
		byMode[r.Mode] = r
	}
	assert.Positive(t, byMode["sdtp-onnx"].PredictorMS)
	assert.Positive(t, byMode["sdtp-gguf"].PredictorMS)
	assert.Less(t, byMode["sdtp-onnx"].PredictorMS, byMode["sdtp-onnx"].PrefillMS)
	assert.Equal(t, byMode["sdtp-onnx"].KeptTokensPerLayer, byMode["sdtp-gguf"].KeptTokensPerLayer, "one set of predictors, two runtimes")
	assert.Less(t, byMode["sdtp-gguf"].KeptTokensPerLayer[5], 200)

	assert.Equal(t, 0.7, byMode["sdtp-gguf"].KeepRatio, "the trained ratio")
	assert.True(t, byMode["sdtp-gguf"].Default(), "the trained schedule is the learned modes' default")
	assert.Equal(t, []int{2}, byMode["sdtp"].PruneLayers, "sdtp: one cut at the predictors' layer nearest 0.4·6 (the retrieval schedule)")
	assert.Equal(t, "hybrid/onnx", byMode["sdtp"].Scorer, "fused with the question attention")
	// 2,4 @ 0.7 leaves 0.730 of the work on 6 layers; one cut at layer 2
	// leaves (2 + 4r)/6: r = 0.595.
	assert.Contains(t, rep.SDTPScorer, "fused with the question attention, at the retrieval schedule: keep 0.595 before layer 2, span 7, trail 48 (to the sentence's end), echo 5 ranked first, 3 echo hops")
	assert.Contains(t, rep.SDTPScorer, "whole sentences of at most 64 tokens when the prompt asks a question")
	assert.Equal(t, "gguf-heads", byMode["sdtp-gguf"].Scorer)

	// --keep-ratios replaces the learned predictors' trained ratio, and
	// --prune-layers picks a subset of their layers (the random scorer
	// prunes at the same layers).
	rep = benchJSON(t, "--model", model, "--text", text, "--prompt-tokens", "200", "--repeat", "1", "--decode-tokens", "2",
		"--modes", "sdtp-gguf,random", "--predictors", preds, "--keep-ratios", "0.5,1", "--prune-layers", "4")
	require.Len(t, rep.Results, 4)
	for i, keep := range []float64{0.5, 1} {
		learned, random := rep.Results[i], rep.Results[2+i]
		assert.Equal(t, keep, learned.KeepRatio)
		assert.Equal(t, []int{4}, learned.PruneLayers, "the user's layer, with its predictor")
		assert.True(t, learned.CustomLayers)
		assert.False(t, learned.Default(), "not the trained schedule")
		assert.Equal(t, 200, learned.KeptTokensPerLayer[3], "nothing pruned before layer 4 (the trained schedule prunes at 2)")
		assert.Equal(t, keep, random.KeepRatio)
		assert.Equal(t, []int{4}, random.PruneLayers)
		assert.True(t, random.CustomLayers)
	}
	// A layer the predictors were not trained for is refused, naming theirs.
	for _, mode := range []string{"sdtp-gguf", "sdtp-onnx", "sdtp"} {
		err := run([]string{"--model", model, "--text", text, "--prompt-tokens", "200", "--repeat", "1", "--decode-tokens", "2",
			"--modes", mode, "--predictors", preds, "--prune-layers", "3"}, &stdout, &stderr)
		assert.ErrorContains(t, err, "pruning layer 3 has no learned predictor: the predictors cover layers [2 4]", mode)
	}
	assert.Equal(t, 200, rep.Results[1].KeptTokensPerLayer[5], "keep 1 prunes nothing")
	assert.Less(t, rep.Results[0].KeptTokensPerLayer[4], 120, "keep 0.5 at layer 4 drops about half")

	assert.ErrorContains(t, run([]string{"--model", model, "--text", text, "--prompt-tokens", "200", "--modes", "sdtp-onnx"}, &stdout, &stderr), "needs learned predictors")
}

func TestBenchQuality(t *testing.T) {
	model, text := tinyInputs(t, 6, 30)
	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"--model", model, "--text", text, "--quality", "--context-tokens", "200", "--continuation-tokens", "16",
		"--samples", "2", "--modes", "llamacpp,dense,random,attention,oracle", "--json"}, &stdout, &stderr), stderr.String())
	var rep report.Run
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
	require.Len(t, rep.Results, 4, "llamacpp is the dense reference, not repeated")
	dense := rep.Results[0]
	require.Equal(t, "dense", dense.Mode)
	for _, r := range rep.Results {
		assert.Equal(t, 2, r.Samples)
		assert.Greater(t, r.PPL, 1.0)
		require.Len(t, r.WindowNLL, 2, r.Mode)
		assert.InDelta(t, math.Log(r.PPL), (r.WindowNLL[0]+r.WindowNLL[1])/2, 1e-9, "perplexity is exp of the windows' mean NLL")
		switch r.Mode {
		case "dense":
			assert.Zero(t, r.KLVsDense)
			assert.Equal(t, 1.0, r.Top1VsDense)
			assert.Zero(t, r.PPLRatioLow, "dense has no interval against itself")
		default:
			assert.Positive(t, r.KLVsDense, r.Mode)
			ratio := r.PPL / dense.PPL
			assert.Less(t, r.PPLRatioLow, ratio, r.Mode)
			assert.Greater(t, r.PPLRatioHigh, ratio, r.Mode)
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
	var rep report.Run
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

func TestReadMCLayouts(t *testing.T) {
	dir := t.TempDir()
	arc := filepath.Join(dir, "arc.jsonl")
	require.NoError(t, os.WriteFile(arc, []byte(`{"query": "Question: 2+2?", "choices": ["3", "4"], "gold": 1}`+"\n"), 0o644))
	wino := filepath.Join(dir, "wino.jsonl")
	require.NoError(t, os.WriteFile(wino, []byte(`{"context_options": ["Tom gave Bob", "Bob gave Tom"], "continuation": "a book.", "gold": 0}`+"\n"), 0o644))
	piqa := filepath.Join(dir, "piqa.jsonl")
	require.NoError(t, os.WriteFile(piqa, []byte(`{"goal": "open a jar", "sol1": "twist the lid", "sol2": "eat the lid"}`+"\n"), 0o644))
	labels := filepath.Join(dir, "labels.lst")
	require.NoError(t, os.WriteFile(labels, []byte("0\n"), 0o644))

	items, err := readMC(arc, "")
	require.NoError(t, err)
	ctx, cont := items[0].pair(1)
	assert.Equal(t, "Question: 2+2?\nAnswer:", ctx)
	assert.Equal(t, " 4", cont)
	items, err = readMC(wino, "")
	require.NoError(t, err)
	ctx, cont = items[0].pair(1)
	assert.Equal(t, "Bob gave Tom", ctx)
	assert.Equal(t, " a book.", cont)
	items, err = readMC(piqa, labels)
	require.NoError(t, err)
	assert.Equal(t, 0, items[0].gold)
	assert.Equal(t, 2, items[0].choices())

	_, err = readMC(piqa, "")
	assert.ErrorContains(t, err, "--mc-labels")
	bad := filepath.Join(dir, "bad.jsonl")
	require.NoError(t, os.WriteFile(bad, []byte(`{"query": "q", "choices": ["a", "b"], "gold": 5}`+"\n"), 0o644))
	_, err = readMC(bad, "")
	assert.ErrorContains(t, err, "gold 5")
}

func TestBenchMultipleChoice(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Gemma3()))
	var lines []string
	for i := range 6 {
		lines = append(lines, fmt.Sprintf(`{"query": "Question: what is item %d of the list of the things we have?", "choices": ["the cat", "the dog", "a bird"], "gold": %d}`, i, i%3))
	}
	mc := filepath.Join(dir, "mc.jsonl")
	require.NoError(t, os.WriteFile(mc, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"--model", model, "--mc", mc, "--shots", "2", "--mc-items", "4", "--modes", "dense,random", "--json"}, &stdout, &stderr), stderr.String())
	var rep report.Run
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
	require.Len(t, rep.Results, 2)
	for _, r := range rep.Results {
		assert.Equal(t, 4, r.Samples)
		assert.Greater(t, r.PromptTokens, 50, "two solved examples precede each question")
		assert.GreaterOrEqual(t, r.MCAcc, 0.0)
		assert.LessOrEqual(t, r.MCAcc, 1.0)
	}
}

// Issue 19: an explicit 0 is a value, not "unset": a keep ratio of 0 is
// refused naming the keep ratio, a --kv-budget without a policy is
// refused, and llama.cpp's -t -1 means every core.
func TestBenchRefusesExplicitEdgeValues(t *testing.T) {
	var stderr bytes.Buffer
	for _, args := range [][]string{{"--keep-ratios", "0"}, {"--keep-ratio", "0"}, {"--keep-ratios", "0.9,0"}, {"--keep-ratios", "-0.1"}} {
		_, err := parseFlags(args, &stderr)
		assert.ErrorContains(t, err, "keep ratio", args)
	}
	_, err := parseFlags([]string{"--kv-budget", "0.5"}, &stderr)
	assert.ErrorContains(t, err, "--kv-budget needs a --kv-policy")
	_, err = parseFlags([]string{"--predictors", ""}, &stderr)
	assert.ErrorContains(t, err, `--predictors ""`)
	// A flag of another kind of run is refused, not ignored.
	for _, args := range [][]string{
		{"--depths", "0.5"}, {"--samples", "3"}, {"--shots", "0"}, {"--seed", "3"},
		{"--quality", "--text", "t", "--prompt-tokens", "64"}, {"--passkey", "--haystack", "h", "--text", "t"},
		{"--mc", "m.jsonl", "--decode-tokens", "4"},
	} {
		_, err := parseFlags(args, &stderr)
		assert.ErrorContains(t, err, "applies to", args)
	}
	// The oracle reads a continuation, which only --quality has.
	_, err = parseFlags([]string{"--modes", "dense,oracle"}, &stderr)
	assert.ErrorContains(t, err, "--quality runs only")
	for _, threads := range []string{"0", "-1"} {
		c, err := parseFlags([]string{"--threads", threads}, &stderr)
		require.NoError(t, err)
		assert.Equal(t, bridge.MaxThreads(), c.threads, threads)
	}
}

// The retrieval-safe modes side by side: attention-acc (with each head
// pooling), hybrid over learned predictors, and spans as a suffix of their
// own rows.
func TestBenchAccumulatedAttentionHybridAndSpans(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Gemma3()))
	hash, err := predictor.EmbeddingHash(model)
	require.NoError(t, err)
	preds := filepath.Join(dir, "preds")
	onnxtest.WriteGemma3(t, preds, hash, []int{2, 4}, 0.7, func(m *onnx.Manifest) {
		f := predictor.DefaultFusion(2)
		f.Method = predictor.FuseZScore
		m.Fusion = &f
	})
	text := filepath.Join(dir, "text.txt")
	require.NoError(t, os.WriteFile(text, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. ", 20)), 0o644))

	var stdout, stderr bytes.Buffer
	args := []string{"--model", model, "--text", text, "--prompt-tokens", "200", "--repeat", "1", "--decode-tokens", "2",
		"--modes", "attention,attention-acc,attention-acc-mean,attention-acc-top2,sdtp,hybrid", "--predictors", preds}
	rep := benchJSON(t, args...)
	byMode := map[string]report.Row{}
	for _, r := range rep.Results {
		byMode[r.Mode] = r
	}
	require.Len(t, byMode, 6)
	for _, mode := range []string{"attention-acc", "attention-acc-mean", "attention-acc-top2", "hybrid"} {
		r := byMode[mode]
		assert.Positive(t, r.PredictorMS, mode)
		assert.Less(t, r.PredictorMS, r.PrefillMS, mode)
		assert.Less(t, r.KeptTokensPerLayer[5], 200, mode)
	}
	assert.Equal(t, []int{2, 4}, byMode["hybrid"].PruneLayers, "the predictors' schedule")
	assert.Equal(t, byMode["attention"].KeptTokensPerLayer, byMode["attention-acc"].KeptTokensPerLayer, "same schedule, same budget")

	spans := benchJSON(t, append(args, "--span", "7")...)
	for _, r := range spans.Results {
		if r.Mode == "sdtp" {
			continue // the retrieval schedule's own kernel: nothing to name
		}
		assert.True(t, strings.HasSuffix(r.Mode, "+span7"), r.Mode)
	}
	// Spans other than a preset's are named; 0 given is none.
	rep = benchJSON(t, "--model", model, "--text", text, "--prompt-tokens", "200", "--repeat", "1", "--decode-tokens", "2",
		"--modes", "sdtp,attention", "--predictors", preds, "--span", "0", "--span-trail", "16")
	require.Len(t, rep.Results, 2)
	assert.Equal(t, "sdtp+span0+trail16", rep.Results[0].Mode)
	assert.Equal(t, "attention+trail16", rep.Results[1].Mode)
	// Trails stop at sentence ends as the preset says, unless told.
	rep = benchJSON(t, "--model", model, "--text", text, "--prompt-tokens", "200", "--repeat", "1", "--decode-tokens", "2",
		"--modes", "sdtp,attention", "--predictors", preds, "--span-trail", "16", "--span-trail-sentence=false")
	require.Len(t, rep.Results, 2)
	assert.Equal(t, "sdtp+trail16+open", rep.Results[0].Mode)
	assert.Equal(t, "attention+trail16", rep.Results[1].Mode)
	assert.ErrorContains(t, run(append(args, "--span-trail-sentence"), &stdout, &stderr), "mode attention has no trail to stop")
	// Echo hops likewise; they need an echo to start from.
	rep = benchJSON(t, "--model", model, "--text", text, "--prompt-tokens", "200", "--repeat", "1", "--decode-tokens", "2",
		"--modes", "sdtp", "--predictors", preds, "--span-echo-hops", "0")
	require.Len(t, rep.Results, 1)
	assert.Equal(t, "sdtp+hops0", rep.Results[0].Mode)
	assert.ErrorContains(t, run(append(args, "--span-echo-hops", "2"), &stdout, &stderr), "mode attention: sdtp: span echo hops 2 need a span echo")
	assert.ErrorContains(t, run(append(args, "--span-echo-hops", "-1"), &stdout, &stderr), "--span-echo-hops: sdtp: span echo hops -1")
	// Whole sentences and echoes first; echoes first need an echo.
	rep = benchJSON(t, "--model", model, "--text", text, "--prompt-tokens", "200", "--repeat", "1", "--decode-tokens", "2",
		"--modes", "sdtp,attention", "--predictors", preds, "--span-echo-first", "--span-sentences", "--span-echo", "3")
	require.Len(t, rep.Results, 2)
	assert.Equal(t, "sdtp+echo3", rep.Results[0].Mode, "the retrieval preset's own rank and sentences: nothing to name")
	assert.Equal(t, "attention+echo3+echofirst+sentences", rep.Results[1].Mode)
	rep = benchJSON(t, "--model", model, "--text", text, "--prompt-tokens", "200", "--repeat", "1", "--decode-tokens", "2",
		"--modes", "sdtp", "--predictors", preds, "--span-echo-first=false", "--span-sentences=false")
	require.Len(t, rep.Results, 1)
	assert.Equal(t, "sdtp+echoshared+tokens", rep.Results[0].Mode)
	// No echo: the preset's hops and rank go with it.
	rep = benchJSON(t, "--model", model, "--text", text, "--prompt-tokens", "200", "--repeat", "1", "--decode-tokens", "2",
		"--modes", "sdtp", "--predictors", preds, "--span-echo", "0")
	require.Len(t, rep.Results, 1)
	assert.Equal(t, "sdtp+echo0+hops0+echoshared", rep.Results[0].Mode)
	assert.ErrorContains(t, run(append(args, "--span-echo-first"), &stdout, &stderr), "--span-echo-first: mode attention has no echo to rank first")
	// --schedule sets every pruning mode's preset.
	rep = benchJSON(t, "--model", model, "--text", text, "--prompt-tokens", "200", "--repeat", "1", "--decode-tokens", "2",
		"--modes", "sdtp,learned,attention", "--predictors", preds, "--schedule", "retrieval")
	require.Len(t, rep.Results, 3)
	for i, layers := range [][]int{{2}, {2}, {2}} { // the layer nearest 0.4·6 of the predictors' 2,4 and of the paper's 1–5
		assert.Equal(t, layers, rep.Results[i].PruneLayers, rep.Results[i].Mode)
		assert.True(t, rep.Results[i].Default(), rep.Results[i].Mode)
	}
	assert.Equal(t, "learned", rep.Results[1].Mode, "the preset's spans are not named")
	// The retrieval schedule's layers given by hand run at the trained
	// ratio: not the default.
	rep = benchJSON(t, "--model", model, "--text", text, "--prompt-tokens", "200", "--repeat", "1", "--decode-tokens", "2",
		"--modes", "sdtp", "--predictors", preds, "--prune-layers", "2")
	require.Len(t, rep.Results, 1)
	assert.Equal(t, []int{2}, rep.Results[0].PruneLayers)
	assert.Equal(t, 0.7, rep.Results[0].KeepRatio)
	assert.False(t, rep.Results[0].Default())
	assert.True(t, rep.Results[0].CustomLayers)
	assert.ErrorContains(t, run(append(args, "--schedule", "fast"), &stdout, &stderr), `--schedule "fast"`)
	assert.ErrorContains(t, run(append(args, "--span", "6"), &stdout, &stderr), "span kernel 6")
	assert.ErrorContains(t, run([]string{"--model", model, "--modes", "llamacpp,dense", "--span", "7"}, &stdout, &stderr), "needs a pruning mode")
	assert.ErrorContains(t, run([]string{"--model", model, "--text", text, "--prompt-tokens", "200", "--modes", "hybrid"}, &stdout, &stderr), "needs learned predictors")
}

// Without --json each kind of run prints its own table: the header line,
// the column names and a line per result.
func TestPrintTables(t *testing.T) {
	row := report.Row{Mode: "sdtp", PromptTokens: 2048, KeepRatio: 0.9, Samples: 12, KeptTokensPerLayer: []int{2048, 700},
		PrefillMS: 1234.5, PPL: 33.291, MCAcc: 0.625, PasskeyAcc: 0.5, PasskeyDepthAcc: []float64{1, 0}}
	for kind, want := range map[string][]string{
		report.KindSpeed:   {"prefill ms", "1234.5", "700"},
		report.KindQuality: {"KL vs dense", "33.291"},
		report.KindMC:      {"items", "0.625"},
		report.KindPasskey: {"depth 0.2", "depth 0.8", "0.50", "1.00", "0.00"},
	} {
		var out bytes.Buffer
		b := &bench{}
		require.NoError(t, b.print(&out, report.Run{Kind: kind, Model: "tiny", Threads: 1, PasskeyDepths: []float64{0.2, 0.8}, Results: []report.Row{row}}))
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		require.Len(t, lines, 4, kind) // header, blank, column names, one row
		assert.Contains(t, lines[0], "model: tiny", kind)
		for _, w := range want {
			assert.Contains(t, out.String(), w, kind)
		}
		assert.Contains(t, lines[3], "2048", kind)
	}
}
