package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/internal/fidelity"
	"github.com/go-sdtp/sdtp/internal/report"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/sdtp"
)

func fidelityRun(t *testing.T, args ...string) report.Run {
	t.Helper()
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(append(args, "--threads", "1", "--json"), &stdout, &stderr), stderr.String())
	var rep report.Run
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
	return rep
}

func TestFidelityOnTinyModel(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Gemma3())) // has a chat template
	var text strings.Builder
	for i := range 300 {
		fmt.Fprintf(&text, "The world was made in %d days. ", i)
	}
	hay := filepath.Join(dir, "hay.txt")
	require.NoError(t, os.WriteFile(hay, []byte(text.String()), 0o644))
	records := filepath.Join(dir, "records")
	args := []string{"--model", model, "--ruler", "--haystack", hay, "--tasks", "single-number,multi-key,common-words",
		"--lengths", "512", "--prompts", "2", "--modes", "dense,attention,random", "--records", records}

	rep := fidelityRun(t, args...)
	assert.Equal(t, report.KindFidelity, rep.Kind)
	assert.Equal(t, "chat", rep.PromptFormat, "auto: the model's template")
	require.Len(t, rep.Results, 9, "3 tasks × 3 modes")
	for _, r := range rep.Results {
		fd := r.Fidelity
		require.NotNil(t, fd)
		assert.Equal(t, 2, r.Samples)
		assert.Equal(t, report.FamilyNeedles, fd.Family)
		assert.LessOrEqual(t, fd.Low, fd.Acc)
		assert.GreaterOrEqual(t, fd.High, fd.Acc)
		assert.Zero(t, fd.Cached)
		assert.Positive(t, fd.ComputeS)
		if fd.Task == "common-words" {
			assert.Empty(t, fd.Bands, "no needle, no depth")
		} else {
			n := 0
			for _, b := range fd.Bands {
				n += b.N
			}
			assert.Equal(t, 2, n, "every prompt in a depth band")
		}
		assert.Equal(t, r.Mode != "dense", fd.Paired)
		assert.LessOrEqual(t, fd.DenseOnly+fd.ModeOnly, 2)
	}
	files, err := filepath.Glob(filepath.Join(records, "tiny", "*.jsonl"))
	require.NoError(t, err)
	assert.Len(t, files, 3, "one file per task and length")
	// Each record says how much of each needle reached the last layer:
	// all of it in dense, not all in random pruning.
	needles := map[string]int{"single-number": 1, "multi-key": 4, "common-words": 0}
	randomLost := false
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			var rec fidelity.Record
			require.NoError(t, json.Unmarshal([]byte(line), &rec))
			require.Len(t, rec.NeedlesKept, needles[rec.Task], rec.Task)
			for _, k := range rec.NeedlesKept {
				assert.True(t, k >= 0 && k <= 1, "a fraction: %v", k)
				if rec.Mode == "dense" {
					assert.Equal(t, 1.0, k, "dense keeps every token")
				}
				randomLost = randomLost || (rec.Mode == "random" && k < 1)
			}
		}
	}
	assert.True(t, randomLost, "random pruning drops part of some needle")

	// A second run answers nothing anew and reports the same.
	again := fidelityRun(t, args...)
	require.Len(t, again.Results, 9)
	for i, r := range again.Results {
		assert.Equal(t, 2, r.Fidelity.Cached)
		r.Fidelity.Cached = 0
		assert.Equal(t, rep.Results[i], r)
	}

	// --records-only reports what the records hold and answers nothing:
	// with more prompts asked than recorded, each cell stops at the 2 it
	// has; a task without records has no rows.
	partial := fidelityRun(t, append(slices.Clone(args[:5]), "--tasks", "single-number,multi-key,common-words,single-word",
		"--lengths", "512", "--prompts", "5", "--modes", "dense,attention,random", "--records", records, "--records-only")...)
	require.Len(t, partial.Results, 9, "single-word has no records")
	for i, r := range partial.Results {
		assert.Equal(t, 2, r.Samples)
		assert.Equal(t, 2, r.Fidelity.Cached)
		r.Fidelity.Cached = 0
		assert.Equal(t, rep.Results[i], r)
	}
	files, err = filepath.Glob(filepath.Join(records, "tiny", "*.jsonl"))
	require.NoError(t, err)
	assert.Len(t, files, 3, "nothing answered, nothing recorded")

	// Completion prompts are other prompts: answered anew.
	comp := fidelityRun(t, append(args, "--prompt-format", "completion", "--tasks", "single-word")...)
	assert.Equal(t, "completion", comp.PromptFormat)
	assert.Zero(t, comp.Results[0].Fidelity.Cached)

	// QA on a SQuAD-shaped file.
	var arts []string
	for a := range 3 {
		var paras []string
		for p := range 4 {
			paras = append(paras, fmt.Sprintf(`{"context": "Paragraph %d of article %d tells that the key of the box is green. %s", "qas": [{"id": "q%d%d", "question": "What colour is the key?", "is_impossible": false, "answers": [{"text": "green"}]}]}`,
				p, a, strings.Repeat("Filler words go here. ", 20), a, p))
		}
		arts = append(arts, fmt.Sprintf(`{"title": "t%d", "paragraphs": [%s]}`, a, strings.Join(paras, ",")))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "squad.json"), []byte(`{"version": "v2.0", "data": [`+strings.Join(arts, ",")+`]}`), 0o644))
	qa := fidelityRun(t, "--model", model, "--qa", "squad", "--qa-data", dir, "--lengths", "768", "--prompts", "2", "--modes", "dense,random")
	require.Len(t, qa.Results, 2)
	assert.Equal(t, "qa-squad", qa.Results[0].Fidelity.Task)
	assert.Equal(t, report.FamilyQA, qa.Results[1].Fidelity.Family)

	// The report turns the runs into FIDELITY.md.
	var files2 []string
	for i, r := range []report.Run{rep, qa} {
		raw, err := json.Marshal(r)
		require.NoError(t, err)
		p := filepath.Join(dir, fmt.Sprintf("run%d.json", i))
		require.NoError(t, os.WriteFile(p, raw, 0o644))
		files2 = append(files2, p)
	}
	var stdout, stderr bytes.Buffer
	out := filepath.Join(dir, "docs")
	require.NoError(t, run(append([]string{"report", "--out", out, "--commit", "x"}, files2...), &stdout, &stderr))
	assert.Contains(t, stdout.String(), filepath.Join(out, "FIDELITY.md"))
	assert.FileExists(t, filepath.Join(out, report.FidelityDir, "accuracy-tiny.png"))
}

func TestFidelityFlagsRefused(t *testing.T) {
	var stdout, stderr bytes.Buffer
	for _, args := range [][]string{
		{"--ruler", "--modes", "llamacpp,dense"},
		{"--ruler", "--qa", "squad"},
		{"--qa", "trivia"},
		{"--qa", "squad", "--tasks", "single-number"},
		{"--qa", "squad", "--haystack", "essays.json"},
		{"--qa", "hotpot", "--text-from", "0.7"},
		{"--ruler", "--tasks", "needle-in-a-pond"},
		{"--ruler", "--depths", "0.5"},
		{"--ruler", "--decode-tokens", "8"},
		{"--qa", "squad", "--passkey"},
		{"--ruler", "--prompts", "0"},
		{"--ruler", "--lengths", "100"},
		{"--ruler", "--prompt-format", "yaml"},
		{"--ruler", "--prompt-format", "completion", "--system", "Be brief."},
		{"--records", "x"},
		{"--ruler", "--records", ""},
		{"--ruler", "--records-only"},
		{"--ruler", "--chat"},
		{"--prompts", "4"},
	} {
		_, err := parseFlags(args, &stderr)
		assert.Error(t, err, "%v", args)
	}
	_, err := parseFlags([]string{"--ruler", "--modes", "dense,sdtp", "--lengths", "2048"}, &stderr)
	assert.NoError(t, err)
	_ = stdout
}

// A predictor set's fusion block keys the records of the modes that fuse,
// not those of mode learned, which prunes with the stage files alone.
func TestHashPredictorsFusion(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
	}
	write("predictors.json", `{"version":1,"layers":[2],"fusion":{"attention_weights":[0.25]}}`)
	write("stage0.onnx", "weights")
	base, err := hashPredictors(dir)
	require.NoError(t, err)

	write("predictors.json", `{"layers":[2], "version":1, "fusion":{"attention_weights":[0.5]}}`)
	fusion, err := hashPredictors(dir)
	require.NoError(t, err)
	assert.NotEqual(t, base.all, fusion.all)
	assert.Equal(t, base.stages, fusion.stages)

	write("stage0.onnx", "other weights")
	stage, err := hashPredictors(dir)
	require.NoError(t, err)
	assert.NotEqual(t, fusion.all, stage.all)
	assert.NotEqual(t, fusion.stages, stage.stages)

	write("predictors.json", `{"layers":`)
	_, err = hashPredictors(dir)
	assert.ErrorContains(t, err, "predictors.json")
}

// Without predictors, sdtp and the attention-acc modes key their records
// on the settings of the scorer they run, so changing a default or a
// mode's pooling cannot reuse another setting's answers.
func TestVariantIdentityFollowsScorer(t *testing.T) {
	b := &bench{}
	id := func(mode string) string { return b.variantIdentity(variant{mode: mode, kv: sdtp.KVNone}) }
	assert.Contains(t, id("sdtp"), fmt.Sprintf("%+v", predictor.DefaultAttentionAcc()))
	assert.Equal(t, strings.TrimPrefix(id("sdtp"), "sdtp"), strings.TrimPrefix(id("attention-acc"), "attention-acc"))
	assert.Contains(t, id("attention-acc-mean"), "Pool:mean")
	assert.Contains(t, id("attention-acc-top2"), "Pool:top-k TopK:2")
	assert.Equal(t, "random", id("random"), "nothing in code to key on")
}
