package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/internal/report"
)

// tinyInputs writes an nLayer-layer random-weight Gemma 3 model and a
// text file of repeats copies of two sentences (17 tokens a copy).
func tinyInputs(t *testing.T, nLayer, repeats int) (model, text string) {
	dir := t.TempDir()
	model = filepath.Join(dir, "tiny.gguf")
	cfg := testmodel.Gemma3()
	cfg.NLayer = nLayer
	require.NoError(t, testmodel.Write(model, cfg))
	text = filepath.Join(dir, "text.txt")
	require.NoError(t, os.WriteFile(text, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. a cat sat on the mat. ", repeats)), 0o644))
	return model, text
}

func benchJSON(t *testing.T, args ...string) report.Run {
	t.Helper()
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(append(args, "--json"), &stdout, &stderr), stderr.String())
	var rep report.Run
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
	return rep
}

func TestBenchSweep(t *testing.T) {
	model, text := tinyInputs(t, 12, 40)
	rep := benchJSON(t, "--model", model, "--text", text, "--prompt-tokens", "128", "--repeat", "1", "--decode-tokens", "2",
		"--modes", "llamacpp,dense,random,attention", "--keep-ratios", "1,0.8", "--prune-layers", "default;3,6", "--prune-layers", "9")
	assert.Equal(t, report.KindSpeed, rep.Kind)
	assert.Equal(t, []int{2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, rep.DefaultPruneLayers, "the 12-layer default schedule (docs/SCHEDULES.md rule)")
	require.Len(t, rep.Results, 2+2*3*2, "llamacpp and dense once; 2 scorers × 3 layer lists × 2 ratios")

	type key struct {
		mode, layers string
		keep         float64
	}
	rows := map[key]report.Row{}
	for _, r := range rep.Results {
		rows[key{r.Mode, r.Layers(), r.KeepRatio}] = r
	}
	require.Len(t, rows, len(rep.Results), "every row a distinct mode × schedule")
	for _, mode := range []string{"llamacpp", "dense"} {
		r := rows[key{mode, "-", 1}]
		assert.Empty(t, r.PruneLayers, mode)
		assert.True(t, r.Default(), mode)
	}
	for _, mode := range []string{"random", "attention"} {
		// Keeping everything prunes nothing, whatever the layers.
		all := rows[key{mode, "default", 1}]
		assert.Equal(t, rep.DefaultPruneLayers, all.PruneLayers)
		assert.False(t, all.CustomLayers)
		assert.Equal(t, 128, all.KeptTokensPerLayer[11], mode)
		assert.Equal(t, 1.0, all.FLOPRatioVsDense, mode)
		assert.False(t, all.Default(), "the default layers at another ratio are a sweep point")

		r := rows[key{mode, "3,6", 0.8}]
		assert.True(t, r.CustomLayers)
		assert.Equal(t, []int{3, 6}, r.PruneLayers)
		assert.Equal(t, []int{128, 128, 128}, r.KeptTokensPerLayer[:3], "nothing pruned before layer 3")
		assert.Less(t, r.KeptTokensPerLayer[3], 128)
		assert.Equal(t, r.KeptTokensPerLayer[3], r.KeptTokensPerLayer[5], "one segment from 3 to 5")
		assert.Less(t, r.KeptTokensPerLayer[6], r.KeptTokensPerLayer[3])
		assert.False(t, r.Default())

		late := rows[key{mode, "9", 0.8}]
		assert.Equal(t, 128, late.KeptTokensPerLayer[8])
		assert.Less(t, late.KeptTokensPerLayer[9], 128)
		assert.Greater(t, late.FLOPRatioVsDense, 1.0)
		assert.Less(t, late.FLOPRatioVsDense, r.FLOPRatioVsDense, "pruning later saves less")
	}

	// --keep-ratio, sdtp-run's spelling, is the same flag.
	rep = benchJSON(t, "--model", model, "--text", text, "--prompt-tokens", "128", "--repeat", "1", "--decode-tokens", "2",
		"--modes", "random", "--keep-ratio", "0.7")
	require.Len(t, rep.Results, 1)
	assert.Equal(t, 0.7, rep.Results[0].KeepRatio)
	assert.False(t, rep.Results[0].Default())
	assert.Contains(t, rep.Command, "--keep-ratio 0.7")

	var stdout, stderr bytes.Buffer
	for _, bad := range [][]string{{"--keep-ratios", "0"}, {"--keep-ratios", "1.5"}, {"--prune-layers", "3,x"}, {"--prune-layers", "0,3"}, {"--prune-layers", "6,3"}} {
		assert.Error(t, run(append([]string{"--model", model, "--text", text, "--prompt-tokens", "128", "--modes", "random"}, bad...), &stdout, &stderr), bad)
	}
}

func TestParsePruneLayers(t *testing.T) {
	got, err := parsePruneLayers([]string{"default; 3, 6", "9"})
	require.NoError(t, err)
	assert.Equal(t, [][]int{nil, {3, 6}, {9}}, got)
	_, err = parsePruneLayers([]string{"3;;6"})
	assert.ErrorContains(t, err, "not a layer number")
}

func TestCommandQuotesShellWords(t *testing.T) {
	assert.Equal(t, `bin/sdtp-bench --prune-layers 'default;3,6' --text 'my file.txt' --keep-ratios 0.9`,
		command([]string{"--prune-layers", "default;3,6", "--text", "my file.txt", "--keep-ratios", "0.9"}))
	assert.Equal(t, `bin/sdtp-bench --text 'it'\''s'`, command([]string{"--text", "it's"}))
}

// TestBenchReport is make bench in miniature: every kind of run with a
// keep-ratio sweep on a tiny model, then the report.
func TestBenchReport(t *testing.T) {
	model, text := tinyInputs(t, 12, 40)
	dir := t.TempDir()
	var items []string
	for i := range 5 {
		items = append(items, fmt.Sprintf(`{"query": "Question: what is item %d of the list of things?", "choices": ["the cat", "the dog"], "gold": %d}`, i, i%2))
	}
	mc := filepath.Join(dir, "mc.jsonl")
	require.NoError(t, os.WriteFile(mc, []byte(strings.Join(items, "\n")+"\n"), 0o644))
	common := []string{"--model", model, "--threads", "1"}
	runs := map[string][]string{
		"speed":       {"--text", text, "--prompt-tokens", "128,256", "--repeat", "1", "--decode-tokens", "2"},
		"speed-sweep": {"--text", text, "--prompt-tokens", "128", "--repeat", "1", "--decode-tokens", "2", "--keep-ratios", "1,0.9,0.8"},
		"quality": {"--text", text, "--quality", "--context-tokens", "200", "--continuation-tokens", "8", "--samples", "1",
			"--modes", "dense,sdtp,random,attention", "--keep-ratios", "0.9,0.8"},
		"passkey": {"--passkey", "--haystack", text, "--lengths", "200,300", "--depths", "0.2,0.8", "--trials", "1",
			"--modes", "dense,sdtp,random,attention", "--keep-ratios", "0.9,0.8"},
		"mc": {"--mc", mc, "--shots", "1", "--mc-items", "2", "--modes", "dense,sdtp,random,attention"},
	}
	var files []string
	for name, args := range runs {
		var stdout, stderr bytes.Buffer
		require.NoError(t, run(append(append(common, args...), "--json"), &stdout, &stderr), name+": "+stderr.String())
		f := filepath.Join(dir, name+".json")
		require.NoError(t, os.WriteFile(f, stdout.Bytes(), 0o644))
		files = append(files, f)
	}

	docs := filepath.Join(dir, "docs")
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(append([]string{"report", "--out", docs, "--commit", "abc123"}, files...), &stdout, &stderr), stderr.String())
	raw, err := os.ReadFile(filepath.Join(docs, "BENCHMARKS.md"))
	require.NoError(t, err)
	md := string(raw)
	for _, want := range []string{
		"| commit | `abc123` |",
		"## Prefill speed", "| tokens | mode | prefill ms | speedup vs llamacpp |", "| 256 | sdtp (attention-acc) |",
		"| tokens | mode | layers | keep | prefill ms |", "| 128 | random | default | 0.80 |", "| 128 | attention | default | 1.00 |",
		"## Continuation quality", "| context | mode | samples | ppl | ppl / dense |", "| 200 | dense | 1 |", "| 200 | attention | default | 0.80 | 1 |",
		"## Passkey retrieval", "| tokens | mode | prompts | accuracy | depth 0.2 | depth 0.8 |", "| mode | layers | keep | 200 | 300 | all |",
		"## Multiple choice", "| mode | items | mean prompt tokens | accuracy |",
		"bin/sdtp-bench --model " + model + " --threads 1 --passkey",
	} {
		assert.Contains(t, md, want)
	}
	for _, img := range []string{"speedup.png", "kept-per-layer.png", "quality-ppl.png", "passkey.png"} {
		assert.Contains(t, md, "("+report.PlotDir+"/"+img+")")
		f, err := os.Open(filepath.Join(docs, report.PlotDir, img))
		require.NoError(t, err)
		cfg, err := png.DecodeConfig(f)
		f.Close()
		require.NoError(t, err, img)
		assert.Greater(t, cfg.Width, 300, img)
	}
	assert.Error(t, run([]string{"report", "--out", docs}, &stdout, &stderr), "no input files")
}

// --same-work: each pruning mode also runs at schedules of its default's
// prefill work that prune later (tilt) or start later (from), as modes of
// their own; the tokens they keep per layer add up to about the same work.
func TestBenchSameWorkSchedules(t *testing.T) {
	model, text := tinyInputs(t, 12, 40)
	rep := benchJSON(t, "--model", model, "--text", text, "--prompt-tokens", "512", "--repeat", "1", "--decode-tokens", "2",
		"--modes", "dense,random", "--same-work", "tilt=0.5;from=6", "--same-work", "from=6,tilt=0.3", "--same-work", "from=6,stages=1")
	rows := map[string]report.Row{}
	for _, r := range rep.Results {
		rows[r.Mode] = r
	}
	require.Len(t, rows, 6, "dense, random and its four same-work schedules: %v", rows)
	work := func(r report.Row) float64 {
		var sum float64
		for _, k := range r.KeptTokensPerLayer {
			sum += float64(k) / 512
		}
		return sum / float64(len(r.KeptTokensPerLayer))
	}
	def := rows["random"]
	for name, layers := range map[string][]int{"random+tilt0.5": def.PruneLayers, "random+from6": {6, 7, 8, 9, 10, 11},
		"random+from6tilt0.3": {6, 7, 8, 9, 10, 11}, "random+from6stages1": {6}} {
		r, ok := rows[name]
		require.True(t, ok, name)
		assert.Equal(t, layers, r.PruneLayers, name)
		assert.True(t, r.CustomLayers, name)
		assert.InDelta(t, work(def), work(r), 0.02, "%s: the same work as the default", name)
	}
	assert.Greater(t, rows["random+tilt0.5"].KeptTokensPerLayer[2], def.KeptTokensPerLayer[2], "tilted: less pruning at the first stage")
	assert.Equal(t, 512, rows["random+from6"].KeptTokensPerLayer[5], "nothing pruned before layer 6")

	for _, bad := range []string{"tilt=1", "from=0", "size=3", "tilt=0.2,tilt=0.3", "from=11", "stages=0", "from=6,stages=7"} {
		var out, errb bytes.Buffer
		err := run([]string{"--model", model, "--text", text, "--prompt-tokens", "64", "--modes", "random", "--same-work", bad}, &out, &errb)
		assert.Error(t, err, bad)
	}
}
