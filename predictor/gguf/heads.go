// Package gguf stores SDTP predictor heads inside a model's GGUF file and
// scores with them in-graph, on the model's own backend.
//
// llama.cpp refuses to load a GGUF with tensors it does not expect
// ("wrong number of tensors"), so the heads live in metadata: float32
// arrays sdtp.<stage>.fc1.weight ([H][d] row-major), sdtp.<stage>.fc1.bias,
// sdtp.<stage>.fc2.weight ([2][H]), sdtp.<stage>.fc2.bias, beside
// sdtp.version, sdtp.layers, sdtp.keep_ratios, sdtp.head_keep,
// sdtp.tail_keep_frac, sdtp.model_hash, sdtp.training (JSON) and, for
// heads that read context features, sdtp.context_features (their names;
// fc1.weight is then [H][d+K]). A set with a fusion block
// (predictor.Fusion) adds sdtp.fusion.version, sdtp.fusion.method,
// sdtp.fusion.attention_weights (float32 per stage), sdtp.fusion.head_pool,
// sdtp.fusion.top_k, sdtp.fusion.layer_norm, sdtp.fusion.sliding_window and,
// when set, sdtp.fusion.attention_layers, sdtp.fusion.attention_window and
// sdtp.fusion.attention_sampled.
// The model file still loads in stock llama.cpp.
package gguf

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/go-sdtp/sdtp/bridge"
	ggufio "github.com/go-sdtp/sdtp/gguf"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/onnx"
	"github.com/go-sdtp/sdtp/sdtp"
)

// Version is the layout of the sdtp.* keys written by Embed.
const Version = 1

// Heads are a schedule and one predictor per stage.
type Heads struct {
	Layers       []int
	KeepRatios   []float64
	HeadKeep     int
	TailKeepFrac float64
	ModelHash    string // predictor.EmbeddingHash of the model
	Training     string // JSON, free form
	MLPs         []predictor.MLP
	Fusion       *predictor.Fusion // nil: learned scores alone
}

// Schedule is where the heads prune.
func (h *Heads) Schedule() sdtp.Schedule {
	return sdtp.Schedule{Layers: h.Layers, KeepRatios: h.KeepRatios}
}

// Read returns the heads stored in a model GGUF, or nil if it has none.
func Read(modelPath string) (*Heads, error) {
	f, err := ggufio.Open(modelPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if !f.KV.Has("sdtp.version") {
		return nil, nil
	}
	if v, err := f.GetInt("sdtp.version"); err != nil || v != Version {
		return nil, fmt.Errorf("predictor heads in %s: sdtp.version %d, this build reads %d", modelPath, v, Version)
	}
	var errs []error
	keep := func(err error) { errs = append(errs, err) }
	h := &Heads{}
	layers, err := f.GetInts("sdtp.layers")
	keep(err)
	for _, l := range layers {
		h.Layers = append(h.Layers, int(l))
	}
	ratios, err := f.GetFloat32s("sdtp.keep_ratios")
	keep(err)
	for _, r := range ratios {
		h.KeepRatios = append(h.KeepRatios, shortest(r))
	}
	hk, err := f.GetInt("sdtp.head_keep")
	keep(err)
	tk, err := f.GetFloat("sdtp.tail_keep_frac")
	keep(err)
	h.HeadKeep, h.TailKeepFrac = int(hk), shortest(float32(tk))
	h.ModelHash, _ = f.GetString("sdtp.model_hash")
	h.Training, _ = f.GetString("sdtp.training")
	nContext := 0
	if f.KV.Has("sdtp.context_features") {
		names, err := f.GetStrings("sdtp.context_features")
		keep(err)
		if err == nil && !slices.Equal(names, sdtp.ContextFeatures) {
			return nil, fmt.Errorf("%w: predictor heads in %s read context features %v, this build computes %v",
				predictor.ErrMismatch, modelPath, names, sdtp.ContextFeatures)
		}
		nContext = len(names)
	}
	for s := range h.Layers {
		get := func(name string) []float32 {
			v, err := f.GetFloat32s(fmt.Sprintf("sdtp.%d.%s", s, name))
			keep(err)
			return v
		}
		m := predictor.MLP{Context: nContext, W1: get("fc1.weight"), B1: get("fc1.bias"), W2: get("fc2.weight"), B2: get("fc2.bias")}
		m.H = len(m.B1)
		if m.H > 0 {
			m.D = len(m.W1)/m.H - nContext
		}
		keep(m.Validate())
		h.MLPs = append(h.MLPs, m)
	}
	if f.KV.Has("sdtp.fusion.version") {
		h.Fusion, err = readFusion(f)
		keep(err)
		if err == nil {
			keep(h.Fusion.Validate(len(h.Layers)))
		}
	}
	nLayer, err := f.GetInt(mustArch(f) + ".block_count")
	keep(err)
	if err == nil {
		keep(h.Schedule().Validate(int(nLayer)))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("predictor heads in %s: %w", modelPath, err)
	}
	if h.HeadKeep != sdtp.HeadKeep || h.TailKeepFrac != sdtp.TailKeepFrac {
		return nil, fmt.Errorf("%w: predictor heads in %s protect %d / %.2f tokens, this build %d / %.2f",
			predictor.ErrMismatch, modelPath, h.HeadKeep, h.TailKeepFrac, sdtp.HeadKeep, sdtp.TailKeepFrac)
	}
	return h, nil
}

// Embed writes out: the model in, plus the heads as sdtp.* metadata.
// in and out may be the same file.
func Embed(in, out string, h *Heads) error {
	if len(h.MLPs) != len(h.Layers) || len(h.KeepRatios) != len(h.Layers) {
		return fmt.Errorf("predictor heads: %d heads, %d layers, %d ratios", len(h.MLPs), len(h.Layers), len(h.KeepRatios))
	}
	f, err := ggufio.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	nLayer, err := f.GetInt(mustArch(f) + ".block_count")
	if err != nil {
		return err
	}
	if err := h.Schedule().Validate(int(nLayer)); err != nil {
		return err
	}
	w := ggufio.NewWriterFrom(f)
	for _, k := range w.KV.Keys() { // drop heads embedded before
		if len(k) > 5 && k[:5] == "sdtp." {
			w.Delete(k)
		}
	}
	layers := make([]int32, len(h.Layers))
	ratios := make([]float32, len(h.KeepRatios))
	for i := range h.Layers {
		layers[i], ratios[i] = int32(h.Layers[i]), float32(h.KeepRatios[i])
	}
	w.Set("sdtp.version", ggufio.Uint32(Version))
	w.Set("sdtp.layers", ggufio.Slice(layers))
	w.Set("sdtp.keep_ratios", ggufio.Slice(ratios))
	w.Set("sdtp.head_keep", ggufio.Uint32(uint32(h.HeadKeep)))
	w.Set("sdtp.tail_keep_frac", ggufio.Float32(float32(h.TailKeepFrac)))
	w.Set("sdtp.model_hash", ggufio.String(h.ModelHash))
	w.Set("sdtp.training", ggufio.String(h.Training))
	if fu := h.Fusion; fu != nil {
		if err := fu.Validate(len(h.Layers)); err != nil {
			return err
		}
		weights := make([]float32, len(fu.AttentionWeights))
		for i, w := range fu.AttentionWeights {
			weights[i] = float32(w)
		}
		w.Set("sdtp.fusion.version", ggufio.Uint32(uint32(fu.Version)))
		w.Set("sdtp.fusion.method", ggufio.String(fu.Method))
		w.Set("sdtp.fusion.attention_weights", ggufio.Slice(weights))
		w.Set("sdtp.fusion.head_pool", ggufio.String(fu.HeadPool))
		w.Set("sdtp.fusion.top_k", ggufio.Uint32(uint32(fu.TopK)))
		w.Set("sdtp.fusion.layer_norm", ggufio.String(fu.LayerNorm))
		w.Set("sdtp.fusion.sliding_window", ggufio.String(fu.SlidingWindow))
		if fu.AttentionLayers != nil {
			layers := make([]int32, len(fu.AttentionLayers))
			for i, l := range fu.AttentionLayers {
				layers[i] = int32(l)
			}
			w.Set("sdtp.fusion.attention_layers", ggufio.Slice(layers))
		}
		if fu.AttentionWindow != 0 {
			w.Set("sdtp.fusion.attention_window", ggufio.Uint32(uint32(fu.AttentionWindow)))
		}
		if fu.AttentionSampled != 0 {
			w.Set("sdtp.fusion.attention_sampled", ggufio.Uint32(uint32(fu.AttentionSampled)))
		}
	}
	for s, m := range h.MLPs {
		if err := m.Validate(); err != nil {
			return err
		}
		if m.Context != h.MLPs[0].Context {
			return errors.New("predictor heads: the stages must all read context features, or none")
		}
		if m.Context > 0 {
			w.Set("sdtp.context_features", ggufio.Slice(sdtp.ContextFeatures))
		}
		w.Set(fmt.Sprintf("sdtp.%d.fc1.weight", s), ggufio.Slice(m.W1))
		w.Set(fmt.Sprintf("sdtp.%d.fc1.bias", s), ggufio.Slice(m.B1))
		w.Set(fmt.Sprintf("sdtp.%d.fc2.weight", s), ggufio.Slice(m.W2))
		w.Set(fmt.Sprintf("sdtp.%d.fc2.bias", s), ggufio.Slice(m.B2))
	}
	return w.WriteFile(out)
}

// readFusion reads the sdtp.fusion.* keys.
func readFusion(f *ggufio.File) (*predictor.Fusion, error) {
	var errs []error
	str := func(k string) string {
		v, err := f.GetString("sdtp.fusion." + k)
		errs = append(errs, err)
		return v
	}
	num := func(k string) int {
		v, err := f.GetInt("sdtp.fusion." + k)
		errs = append(errs, err)
		return int(v)
	}
	fu := &predictor.Fusion{Version: num("version"), Method: str("method"), HeadPool: str("head_pool"), TopK: num("top_k"),
		LayerNorm: str("layer_norm"), SlidingWindow: str("sliding_window")}
	weights, err := f.GetFloat32s("sdtp.fusion.attention_weights")
	errs = append(errs, err)
	for _, w := range weights {
		fu.AttentionWeights = append(fu.AttentionWeights, shortest(w))
	}
	if f.KV.Has("sdtp.fusion.attention_window") {
		fu.AttentionWindow = num("attention_window")
	}
	if f.KV.Has("sdtp.fusion.attention_sampled") {
		fu.AttentionSampled = num("attention_sampled")
	}
	if f.KV.Has("sdtp.fusion.attention_layers") {
		layers, err := f.GetInts("sdtp.fusion.attention_layers")
		errs = append(errs, err)
		fu.AttentionLayers = []int{}
		for _, l := range layers {
			fu.AttentionLayers = append(fu.AttentionLayers, int(l))
		}
	}
	return fu, errors.Join(errs...)
}

// shortest widens a float32 to the float64 with the same shortest decimal
// form, so 0.9 stored as float32 reads back as 0.9.
func shortest(v float32) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(v), 'g', -1, 32), 64)
	return f
}

// FromONNX reads an ONNX predictor set's weights as heads (the default
// Linear-GELU-Linear architecture only).
func FromONNX(set *onnx.Set) (*Heads, error) {
	m := set.Manifest
	h := &Heads{Layers: m.Layers, KeepRatios: m.KeepRatios, HeadKeep: m.HeadKeep, TailKeepFrac: m.TailKeepFrac, ModelHash: m.Model.EmbdHash,
		Fusion: m.Fusion}
	if m.Training != nil {
		training, err := json.Marshal(m.Training)
		if err != nil {
			return nil, err
		}
		h.Training = string(training)
	}
	for _, f := range m.Files {
		mlp, err := onnx.ReadMLP(filepath.Join(set.Dir, f))
		if err != nil {
			return nil, err
		}
		h.MLPs = append(h.MLPs, mlp)
	}
	return h, nil
}

func mustArch(f *ggufio.File) string {
	a, _ := f.Architecture()
	return a
}

// Scorer loads the heads into the engine and returns the scorer that
// reads their in-graph scores.
func (h *Heads) Scorer(e *bridge.Engine) (sdtp.Scorer, error) {
	var hs []bridge.Head
	for i, m := range h.MLPs {
		if m.D != e.NEmbd() {
			return nil, fmt.Errorf("%w: predictor heads of width %d, model %d", predictor.ErrMismatch, m.D, e.NEmbd())
		}
		hs = append(hs, bridge.Head{Layer: h.Layers[i], H: m.H, Context: m.Context, W1: m.W1, B1: m.B1, W2: m.W2, B2: m.B2})
	}
	if err := e.SetHeads(hs); err != nil {
		return nil, err
	}
	return inGraph{context: hs[0].Context > 0}, nil
}

// Hybrid is Scorer fused with the question attention by the heads' fusion
// block, or predictor.DefaultFusion when they have none.
func (h *Heads) Hybrid(e *bridge.Engine) (*predictor.Hybrid, error) {
	sc, err := h.Scorer(e)
	if err != nil {
		return nil, err
	}
	f := predictor.DefaultFusion(len(h.Layers))
	if h.Fusion != nil {
		f = *h.Fusion
	}
	return predictor.NewHybrid(sc, h.Layers, f)
}

// inGraph passes through the scores the engine computed in-graph.
type inGraph struct{ context bool }

func (g inGraph) Needs() sdtp.Needs { return sdtp.Needs{Head: true, Context: g.context} }

func (inGraph) Score(in sdtp.ScoreInput) ([]float32, error) {
	if len(in.HeadScores) != len(in.Positions) {
		return nil, fmt.Errorf("predictor heads: %d scores for %d tokens", len(in.HeadScores), len(in.Positions))
	}
	return in.HeadScores, nil
}
