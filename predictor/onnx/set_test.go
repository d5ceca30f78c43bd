package onnx

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/sdtp"
)

// randomMLP is a random predictor on d-wide hidden states, followed by the
// context features when withContext.
func randomMLP(d, h int, seed uint64, withContext bool) predictor.MLP {
	if !withContext {
		return predictor.RandomMLP(d, h, seed)
	}
	k := len(sdtp.ContextFeatures)
	m := predictor.RandomMLP(d+k, h, seed)
	m.D, m.Context = d, k
	return m
}

// writeSet writes a predictor set for a model of nLayer layers and width d.
func writeSet(t *testing.T, d, nLayer int, layers []int, withContext bool) (string, []predictor.MLP) {
	t.Helper()
	dir := t.TempDir()
	var m Manifest
	m.Version = 1
	m.Model.Arch, m.Model.NLayer, m.Model.NEmbd = "gemma3", nLayer, d
	m.Layers, m.HeadKeep, m.TailKeepFrac = layers, sdtp.HeadKeep, sdtp.TailKeepFrac
	var mlps []predictor.MLP
	for i := range layers {
		mlps = append(mlps, randomMLP(d, d/4, uint64(i+1), withContext))
		m.KeepRatios = append(m.KeepRatios, 0.7)
	}
	require.NoError(t, WriteSet(dir, m, mlps))
	return dir, mlps
}

func TestONNXPredictorMatchesGoMLP(t *testing.T) {
	t.Run("hidden state", func(t *testing.T) { testONNXPredictorMatchesGoMLP(t, false) })
	t.Run("with context", func(t *testing.T) { testONNXPredictorMatchesGoMLP(t, true) })
}

func testONNXPredictorMatchesGoMLP(t *testing.T, withContext bool) {
	const d = 64
	dir, mlps := writeSet(t, d, 6, []int{1, 3}, withContext)
	set, err := Load(dir)
	require.NoError(t, err)
	defer set.Close()
	assert.Equal(t, sdtp.Schedule{Layers: []int{1, 3}, KeepRatios: []float64{0.7, 0.7}}, set.Manifest.Schedule())
	assert.Equal(t, withContext, set.Needs().Context)

	r := rand.New(rand.NewPCG(9, 9))
	n := 37
	hidden := make([]float32, n*d)
	for i := range hidden {
		hidden[i] = float32(r.NormFloat64())
	}
	var context []float32
	if withContext {
		context = make([]float32, n*len(sdtp.ContextFeatures))
		for i := range context {
			context[i] = r.Float32()
		}
	}
	for stage, layer := range []int{1, 3} {
		got, err := set.Score(sdtp.ScoreInput{Layer: layer, Positions: make([]int32, n), Hidden: hidden, Context: context})
		require.NoError(t, err)
		assert.InDeltaSlice(t, mlps[stage].Scores(hidden, context), got, 1e-4, "stage %d", stage)
	}
	_, err = set.Score(sdtp.ScoreInput{Layer: 2, Positions: make([]int32, n), Hidden: hidden, Context: context})
	assert.ErrorContains(t, err, "no predictor for layer 2")
	_, err = set.Score(sdtp.ScoreInput{Layer: 1, Positions: make([]int32, n), Hidden: hidden[:10], Context: context})
	assert.Error(t, err)
	if withContext {
		_, err = set.Score(sdtp.ScoreInput{Layer: 1, Positions: make([]int32, n), Hidden: hidden})
		assert.ErrorContains(t, err, "0 context values for 37 tokens")
	}
}

func TestONNXPredictorBadInputs(t *testing.T) {
	dir, _ := writeSet(t, 64, 6, []int{1, 3}, false)
	edit := func(f func(m *Manifest)) string {
		raw, err := os.ReadFile(filepath.Join(dir, ManifestName))
		require.NoError(t, err)
		var m Manifest
		require.NoError(t, json.Unmarshal(raw, &m))
		f(&m)
		out := t.TempDir()
		for _, name := range m.Files {
			if data, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
				require.NoError(t, os.WriteFile(filepath.Join(out, name), data, 0o644))
			}
		}
		raw, err = json.Marshal(m)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(out, ManifestName), raw, 0o644))
		return out
	}
	for name, c := range map[string]struct {
		dir  string
		want string
	}{
		"no manifest":    {t.TempDir(), "predictors.json"},
		"wrong width":    {edit(func(m *Manifest) { m.Model.NEmbd = 32 }), "hidden_states [N, 32]"},
		"missing file":   {edit(func(m *Manifest) { m.Files[1] = "nope.onnx" }), "stage 1"},
		"stage count":    {edit(func(m *Manifest) { m.Files = m.Files[:1] }), "1 files for 2 stages"},
		"layer range":    {edit(func(m *Manifest) { m.Layers = []int{1, 9} }), "out of range"},
		"protection":     {edit(func(m *Manifest) { m.HeadKeep = 8 }), "protects"},
		"bad keep ratio": {edit(func(m *Manifest) { m.KeepRatios[0] = 0 }), "keep ratio"},
		"other context":  {edit(func(m *Manifest) { m.ContextFeatures = []string{"in_tail"} }), "read context features [in_tail]"},
		"no context input": {edit(func(m *Manifest) { m.ContextFeatures = sdtp.ContextFeatures }),
			"want float inputs hidden_states [N, 64] and context [N, 12]"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(c.dir)
			assert.ErrorContains(t, err, c.want)
		})
	}
	garbage := edit(func(*Manifest) {})
	require.NoError(t, os.WriteFile(filepath.Join(garbage, "stage0.onnx"), []byte("not onnx"), 0o644))
	_, err := Load(garbage)
	assert.Error(t, err)

	// A non-finite weight is refused at load rather than found mid-prefill
	// (every score NaN); WriteMLP will not write one.
	for name, v := range map[string]float32{"NaN": float32(math.NaN()), "+Inf": float32(math.Inf(1))} {
		bad := predictor.RandomMLP(64, 16, 2)
		bad.W2[3] = v
		dir := edit(func(*Manifest) {})
		data, err := proto.Marshal(mlpModel(bad))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "stage1.onnx"), data, 0o644))
		_, err = Load(dir)
		assert.ErrorContains(t, err, "stage 1", name)
		assert.ErrorContains(t, err, "fc2.weight[3] is "+name, name)
		assert.ErrorContains(t, WriteMLP(filepath.Join(t.TempDir(), "p.onnx"), bad), "must be finite", name)
	}
}

func TestReadMLPRoundTrip(t *testing.T) {
	for _, withContext := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "p.onnx")
		want := randomMLP(32, 8, 4, withContext)
		require.NoError(t, WriteMLP(path, want))
		got, err := ReadMLP(path)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := ReadMLP(filepath.Join(t.TempDir(), "missing.onnx"))
	assert.Error(t, err)
}

func TestExecutionProviders(t *testing.T) {
	dir, _ := writeSet(t, 64, 6, []int{1}, false)
	set, err := LoadWith(dir, Options{Provider: ProviderAuto})
	require.NoError(t, err, "auto falls back to what the library has")
	assert.Contains(t, []string{ProviderCPU, ProviderCUDA, ProviderCoreML}, set.Provider)
	set.Close()
	_, err = LoadWith(dir, Options{Provider: "tpu"})
	assert.ErrorContains(t, err, "unknown execution provider")
	if _, err := LoadWith(dir, Options{Provider: ProviderCoreML}); err != nil {
		assert.ErrorContains(t, err, "CoreML execution provider unavailable")
	}
	if _, err := LoadWith(dir, Options{Provider: ProviderCUDA}); err != nil {
		assert.ErrorContains(t, err, "CUDA execution provider unavailable")
	}
}
