package report

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func header(kind, cmd string) Run {
	return Run{Kind: kind, Command: cmd, WallS: 120, Model: "gemma3 270M", ModelFile: "m.gguf", Threads: 2,
		BuildFlags: "CGO_CFLAGS=-O3", CPU: "CPU : SSE3 = 1 | AVX = 1 | AMX = 0 | ", CPUModel: "Test CPU", Cores: 2, GoVersion: "go1.26",
		DefaultKeepRatio: 0.9, DefaultPruneLayers: []int{2, 4, 6}, SDTPScorer: "the attention scorer"}
}

func speedRow(mode string, n int, keep, prefill, speedup float64) Row {
	return Row{Mode: mode, PromptTokens: n, KeepRatio: keep, PruneLayers: []int{2, 4, 6}, DefaultSchedule: keep == 0.9, PrefillMS: prefill, SpeedupVsLlamaCpp: speedup,
		FLOPRatioVsDense: 1.5, KeptTokensPerLayer: []int{n, n, n / 2, n / 2, n / 4, n / 4, n / 8}, DecodeTokS: 70, KVBytes: 1 << 20}
}

func ref(mode string, n int, prefill, speedup float64) Row {
	return Row{Mode: mode, PromptTokens: n, KeepRatio: 1, PrefillMS: prefill, SpeedupVsLlamaCpp: speedup, FLOPRatioVsDense: 1,
		KeptTokensPerLayer: []int{n, n, n, n, n, n, n}}
}

// syntheticRuns is what make bench produces, with figures chosen so the
// tables' derived columns have known values.
func syntheticRuns() []Run {
	speed := header(KindSpeed, "bin/sdtp-bench --json --prompt-tokens 1024,2048")
	for _, n := range []int{1024, 2048} {
		speed.Results = append(speed.Results, ref("llamacpp", n, 1000, 1), ref("dense", n, 1020, 0.98),
			speedRow("attention", n, 0.9, 625, 1.6), speedRow("random", n, 0.9, 600, 1.666))
	}
	sweep := header(KindSpeed, "bin/sdtp-bench --json --prompt-tokens 2048 --keep-ratios 1,0.9,0.8")
	sweep.Results = []Row{ref("llamacpp", 2048, 1000, 1), ref("dense", 2048, 1010, 0.99),
		speedRow("attention", 2048, 1, 1050, 0.95), speedRow("attention", 2048, 0.9, 640, 1.5625), speedRow("attention", 2048, 0.8, 500, 2)}

	quality := header(KindQuality, "bin/sdtp-bench --json --quality")
	quality.Results = []Row{
		{Mode: "dense", PromptTokens: 2048, KeepRatio: 1, Samples: 8, PPL: 10, Top1VsDense: 1},
		{Mode: "attention", PromptTokens: 2048, KeepRatio: 0.9, PruneLayers: []int{2, 4, 6}, DefaultSchedule: true, Samples: 8, PPL: 11, KLVsDense: 0.1, Top1VsDense: 0.9,
			PPLRatioLow: 1.05, PPLRatioHigh: 1.15},
		{Mode: "attention", PromptTokens: 2048, KeepRatio: 0.8, PruneLayers: []int{2, 4, 6}, Samples: 8, PPL: 12, KLVsDense: 0.2, Top1VsDense: 0.8},
		{Mode: "random", PromptTokens: 2048, KeepRatio: 0.9, PruneLayers: []int{3, 6}, CustomLayers: true, Samples: 8, PPL: 13, KLVsDense: 0.3, Top1VsDense: 0.7},
	}

	passkey := header(KindPasskey, "bin/sdtp-bench --json --passkey")
	passkey.PasskeyDepths = []float64{0.1, 0.9}
	for _, n := range []int{1024, 2048} {
		passkey.Results = append(passkey.Results, Row{Mode: "dense", PromptTokens: n, KeepRatio: 1, Samples: 2, PasskeyAcc: 1, PasskeyDepthAcc: []float64{1, 1}})
	}
	passkey.Results = append(passkey.Results,
		Row{Mode: "attention", PromptTokens: 1024, KeepRatio: 0.9, DefaultSchedule: true, Samples: 2, PasskeyAcc: 0.5, PasskeyDepthAcc: []float64{1, 0}},
		Row{Mode: "attention", PromptTokens: 2048, KeepRatio: 0.9, DefaultSchedule: true, Samples: 2, PasskeyAcc: 1, PasskeyDepthAcc: []float64{1, 1}},
		Row{Mode: "attention", PromptTokens: 1024, KeepRatio: 0.8, Samples: 2, PasskeyAcc: 0, PasskeyDepthAcc: []float64{0, 0}},
		Row{Mode: "attention", PromptTokens: 2048, KeepRatio: 0.8, Samples: 2, PasskeyAcc: 0.5, PasskeyDepthAcc: []float64{0, 1}})

	mc := header(KindMC, "bin/sdtp-bench --json --mc arc.jsonl")
	mc.Results = []Row{{Mode: "dense", PromptTokens: 180, KeepRatio: 1, Samples: 60, MCAcc: 0.6},
		{Mode: "attention", PromptTokens: 180, KeepRatio: 0.9, DefaultSchedule: true, Samples: 60, MCAcc: 0.55}}
	return []Run{speed, sweep, quality, passkey, mc}
}

func writeJSON(t *testing.T, dir, name string, v any) string {
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, raw, 0o644))
	return p
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i, run := range syntheticRuns() {
		paths = append(paths, writeJSON(t, dir, string(rune('a'+i))+".json", run))
	}
	runs, err := Load(paths)
	require.NoError(t, err)
	assert.Equal(t, syntheticRuns(), runs, "the JSON round trip keeps every field")

	_, err = Load([]string{writeJSON(t, dir, "old.json", map[string]any{"model": "m", "results": []any{}})})
	assert.ErrorContains(t, err, `unknown kind ""`)
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte("{"), 0o644))
	_, err = Load([]string{bad})
	assert.ErrorContains(t, err, "bad.json")
	_, err = Load([]string{filepath.Join(dir, "missing.json")})
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestDefaultAndLayers(t *testing.T) {
	assert.True(t, Row{Mode: "dense", KeepRatio: 1}.Default(), "baselines belong in the default tables")
	assert.True(t, Row{Mode: "random", KeepRatio: 0.9, DefaultSchedule: true}.Default())
	assert.False(t, Row{Mode: "random", KeepRatio: 0.8}.Default())
	assert.Equal(t, "-", Row{Mode: "llamacpp"}.Layers())
	assert.Equal(t, "default", Row{Mode: "sdtp", PruneLayers: []int{2, 4}}.Layers())
	assert.Equal(t, "3,6", Row{Mode: "sdtp", PruneLayers: []int{3, 6}, CustomLayers: true}.Layers())
}

func TestWriteReport(t *testing.T) {
	dir := t.TempDir()
	date := time.Date(2025, 3, 4, 5, 6, 0, 0, time.UTC)
	require.NoError(t, Write(dir, syntheticRuns(), Meta{Commit: "0123abc", Date: date}))
	raw, err := os.ReadFile(filepath.Join(dir, "BENCHMARKS.md"))
	require.NoError(t, err)
	md := string(raw)
	for _, want := range []string{
		"in 10.0 min of benchmarks", // 5 runs × 120 s
		"| machine | Test CPU, 2 cores |", "| threads | 2 |", "| CPU features (ggml) | SSE3, AVX |", "| commit | `0123abc` |",
		"| date | 2025-03-04 05:06 UTC |", "| paper schedule (the modes but sdtp) | keep 0.9 of the live tokens before each of layers 2, 4, 6 |",
		"| `sdtp` mode | the attention scorer |",
		// The default table takes 2048-token attention from the first run, not the sweep's 640 ms.
		"| 2048 | attention | 625.0 | 1.60× | 1.50× | 256 | 70.0 | 1.0 | - |",
		"| 2048 | attention | default | 0.80 | 500.0 | 2.00× | 1.50× | 256 |",
		"# wall 2.0 min, threads: 2\nbin/sdtp-bench --json --prompt-tokens 2048 --keep-ratios 1,0.9,0.8\n",
		"| 2048 | attention | 8 | 11.000 | 1.100 [1.050, 1.150] | 0.1000 | 0.900 |",
		"| 2048 | attention | default | 0.80 | 8 | 12.000 | 1.200 | 0.2000 | 0.800 |",
		"| 2048 | random | 3,6 | 0.90 | 8 | 13.000 | 1.300 | 0.3000 | 0.700 |",
		"| tokens | mode | prompts | accuracy | depth 0.1 | depth 0.9 |", "| 1024 | attention | 2 | 0.50 | 1.00 | 0.00 |",
		"| attention | default | 0.90 | 0.50 | 1.00 | 0.75 |", "| attention | default | 0.80 | 0.00 | 0.50 | 0.25 |",
		"| dense | 60 | 180 | 0.600 |", "| attention | 60 | 180 | 0.550 |",
	} {
		assert.Contains(t, md, want)
	}
	assert.NotContains(t, md, "| 2048 | attention | 640.0 |", "the sweep's default row stays in the sweep table")
	assert.NotContains(t, md, "| random | default |", "custom layers are never called default")
	for _, img := range []string{"speedup.png", "kept-per-layer.png", "quality-ppl.png", "passkey.png"} {
		assert.Contains(t, md, "](benchmarks/"+img+")")
		f, err := os.Open(filepath.Join(dir, PlotDir, img))
		require.NoError(t, err, img)
		_, err = png.Decode(f)
		f.Close()
		assert.NoError(t, err, img)
	}
}

func TestWriteDrawsOnlyWhatWasMeasured(t *testing.T) {
	dir := t.TempDir()
	runs := syntheticRuns()
	require.NoError(t, Write(dir, runs[4:], Meta{Commit: "x"}))
	raw, err := os.ReadFile(filepath.Join(dir, "BENCHMARKS.md"))
	require.NoError(t, err)
	assert.Contains(t, string(raw), "## Multiple choice")
	assert.NotContains(t, string(raw), "## Prefill speed")
	assert.NotContains(t, string(raw), "![")
	entries, err := os.ReadDir(filepath.Join(dir, PlotDir))
	require.NoError(t, err)
	assert.Empty(t, entries)
}

// A speed run of a second model gets its own table, with the same modes
// and lengths as the first model's (not merged into it); the plots and
// the other sections stay the first model's.
func TestWriteSecondModelSpeed(t *testing.T) {
	dir := t.TempDir()
	qwen := header(KindSpeed, "bin/sdtp-bench --json --model qwen --prompt-tokens 2048")
	qwen.Model, qwen.ModelFile, qwen.SDTPScorer = "qwen2 0.5B", "q.gguf", "question attention"
	qwen.DefaultPruneLayers = []int{3, 5}
	qwen.Results = []Row{ref("llamacpp", 2048, 3000, 1), ref("dense", 2048, 3030, 0.99), speedRow("attention", 2048, 0.9, 1800, 1.667)}
	require.NoError(t, Write(dir, append(syntheticRuns(), qwen), Meta{Commit: "x"}))
	raw, err := os.ReadFile(filepath.Join(dir, "BENCHMARKS.md"))
	require.NoError(t, err)
	md := string(raw)
	for _, want := range []string{
		"| model | gemma3 270M (`m.gguf`) |",
		"Every table is of this model but the prefill speed of `q.gguf`, which has its own table.",
		"### `q.gguf` (llama.cpp: qwen2 0.5B)\n\nPaper schedule: keep 0.9 of the live tokens before each of layers 3, 5. `sdtp` mode: question attention.",
		"| 2048 | attention | 1800.0 | 1.67× |",
		"| 2048 | attention | 625.0 | 1.60× |",
		"bin/sdtp-bench --json --model qwen --prompt-tokens 2048\n",
	} {
		assert.Contains(t, md, want)
	}
	assert.Less(t, strings.Index(md, "| 2048 | attention | 625.0 |"), strings.Index(md, "### `q.gguf`"), "the first model's table comes first")

	quality := syntheticRuns()[2]
	quality.ModelFile = "q.gguf"
	assert.ErrorContains(t, Write(t.TempDir(), append(syntheticRuns(), quality), Meta{}), "only speed runs may measure another model")
}

func TestWriteRejects(t *testing.T) {
	assert.ErrorContains(t, Write(t.TempDir(), nil, Meta{}), "no results")
	runs := syntheticRuns()
	other := runs[3]
	other.PasskeyDepths = []float64{0.5}
	assert.ErrorContains(t, Write(t.TempDir(), append(runs, other), Meta{}), "different depths")
}

func TestFeatures(t *testing.T) {
	assert.Equal(t, "SSE3, AVX2", features("CPU : SSE3 = 1 | AVX512 = 0 | AVX2 = 1 | "))
	assert.Equal(t, "NEON, Metal", features("NEON = 1 | Metal"))
}
