package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/gguf"
	"github.com/go-sdtp/sdtp/predictor/onnx"
	"github.com/go-sdtp/sdtp/sdtp"
)

// checkTolerance is the largest score difference check accepts between
// ONNX Runtime and the in-graph heads: absolute for scores up to 1, else
// relative to the largest score. Both sum d float32 products in different
// orders; on Gemma's residual stream (values in the hundreds) random-init
// scores reach ~3000 and the sums then differ by ~1e-6 relative.
const checkTolerance = 1e-3

const builtinText = `The river rises in the hills north of the town and runs south through farmland for most of its length. In the nineteenth century mills were built along its banks, and the town grew around them; by 1900 it had a railway station, two schools and a market hall. Most of the mills closed after the war, and the buildings were turned into flats, workshops and a museum of local history. `

// check prefills one prompt twice — scoring with ONNX Runtime and with the
// same predictors as in-graph heads — and compares scores and kept sets.
func check(model, dir, textFile string, w io.Writer) error {
	text := strings.Repeat(builtinText, 12)
	if textFile != "" {
		raw, err := os.ReadFile(textFile)
		if err != nil {
			return err
		}
		text = string(raw)
	}
	m, err := bridge.LoadModel(model, bridge.ModelParams{UseMMap: true})
	if err != nil {
		return err
	}
	defer m.Free()
	set, err := onnx.LoadFor(dir, model, m.Arch(), m.NLayer(), m.NEmbd(), onnx.Options{})
	if err != nil {
		return err
	}
	defer set.Close()
	heads, err := gguf.FromONNX(set)
	if err != nil {
		return err
	}
	// Heads embedded in the model itself: both loaders must read the same
	// fusion block.
	embedded, err := gguf.Read(model)
	if err != nil {
		return err
	}
	if embedded != nil && !reflect.DeepEqual(embedded.Fusion, set.Manifest.Fusion) {
		return fmt.Errorf("the fusion block of the heads in %s (%+v) differs from %s's (%+v)", model, embedded.Fusion, onnx.ManifestName, set.Manifest.Fusion)
	}
	toks, err := m.Tokenize(text, true, false)
	if err != nil {
		return err
	}
	// Beyond its training context a model's scores mean little, and a whole
	// corpus given by mistake would run for hours.
	if len(toks) > m.NCtxTrain() {
		return fmt.Errorf("--text is %d tokens, more than the model's training context (%d): give a shorter prompt", len(toks), m.NCtxTrain())
	}
	ctx, err := m.NewContext(bridge.ContextParams{NCtx: len(toks) + 16})
	if err != nil {
		return err
	}
	defer ctx.Free()
	e, err := ctx.NewEngine(len(toks)+16, 0)
	if err != nil {
		return err
	}
	defer e.Free()
	inGraph, err := heads.Scorer(e)
	if err != nil {
		return err
	}
	sched := set.Manifest.Schedule()
	cmp := &comparer{onnx: set, layers: heads.Layers}
	if f := set.Manifest.Fusion; f != nil {
		// The hybrid in both forms: ONNX scores and in-graph heads, each
		// fused with the same accumulated question attention.
		if cmp.hybrid, err = predictor.NewHybrid(set, heads.Layers, *f); err != nil {
			return err
		}
		if inGraph, err = predictor.NewHybrid(inGraph, heads.Layers, *f); err != nil {
			return err
		}
	}
	viaONNX, err := sdtp.Prefill(context.Background(), e, cmp, sched, toks, 512)
	if err != nil {
		return err
	}
	viaGraph, err := sdtp.Prefill(context.Background(), e, inGraph, sched, toks, 512)
	if err != nil {
		return err
	}
	same := slices.EqualFunc(viaONNX.LivePositions, viaGraph.LivePositions, slices.Equal[[]int32])
	fmt.Fprintf(w, "%d prompt tokens, %d stages: max |ONNX − in-graph score| = %.2e (scores up to %.3g); kept sets identical: %v\n",
		len(toks), len(sched.Layers), cmp.diff, cmp.scale, same)
	ok := cmp.diff <= checkTolerance*math.Max(1, cmp.scale) // NaN fails too
	if cmp.hybrid != nil {
		f := cmp.hybrid.Fusion()
		fmt.Fprintf(w, "hybrid (%s fusion, attention weights %v): max |ONNX − in-graph fused score| = %.2e (fused scores up to %.3g)\n",
			f.Method, f.AttentionWeights, cmp.fusedDiff, cmp.fusedScale)
		ok = ok && cmp.fusedDiff <= checkTolerance*math.Max(1, cmp.fusedScale)
	}
	if !ok || !same {
		return fmt.Errorf("the two runtimes disagree (tolerance %.0e × max(1, largest score))", checkTolerance)
	}
	return nil
}

// comparer scores with ONNX Runtime and records how far the in-graph heads
// (computed in the same run) are from it; with a hybrid, it also fuses
// both with the same accumulated attention and returns the ONNX form's
// fused scores.
type comparer struct {
	onnx   *onnx.Set
	layers []int
	diff   float64 // max |ONNX − in-graph|
	scale  float64 // max |ONNX score|

	hybrid     *predictor.Hybrid
	attn       sdtp.Scorer // the hybrid's accumulated attention, this prefill
	fusedDiff  float64
	fusedScale float64
}

func (c *comparer) Needs() sdtp.Needs {
	n := sdtp.Needs{Hidden: true, Head: true, Context: c.onnx.Needs().Context}
	if c.hybrid != nil {
		n = n.WithLayerAttentionOf(c.hybrid.Needs())
	}
	return n
}

func (c *comparer) ForPrefill(nPrompt int) sdtp.Scorer {
	if c.hybrid != nil {
		c.attn = c.hybrid.AttentionScorer(nPrompt)
	}
	return c
}

func (c *comparer) Score(in sdtp.ScoreInput) ([]float32, error) {
	s, err := c.onnx.Score(in)
	if err != nil {
		return nil, err
	}
	for i := range s {
		c.diff = math.Max(c.diff, math.Abs(float64(s[i]-in.HeadScores[i])))
		c.scale = math.Max(c.scale, math.Abs(float64(s[i])))
	}
	if c.hybrid == nil {
		return s, nil
	}
	attn, err := c.hybrid.StageAttention(c.attn, in)
	if err != nil {
		return nil, err
	}
	stage := slices.Index(c.layers, in.Layer)
	f := c.hybrid.Fusion()
	viaONNX, err := f.Fuse(stage, s, attn, in.Positions, in.NPrompt)
	if err != nil {
		return nil, err
	}
	viaGraph, err := f.Fuse(stage, in.HeadScores, attn, in.Positions, in.NPrompt)
	if err != nil {
		return nil, err
	}
	for i := range viaONNX {
		c.fusedDiff = math.Max(c.fusedDiff, math.Abs(float64(viaONNX[i]-viaGraph[i])))
		c.fusedScale = math.Max(c.fusedScale, math.Abs(float64(viaONNX[i])))
	}
	return viaONNX, nil
}

// initRandom writes randomly initialised predictors (default architecture,
// default schedule) for a model: what SDTP runs until trained predictors
// exist, and a fixture for checks.
func initRandom(model, dir string, seed uint64, fusion string) error {
	arch, nLayer, nEmbd, err := modelShape(model)
	if err != nil {
		return err
	}
	sched, err := sdtp.DefaultSchedule(nLayer, sdtp.DefaultKeepRatio)
	if err != nil {
		return err
	}
	hash, err := predictor.EmbeddingHash(model)
	if err != nil {
		return err
	}
	var man onnx.Manifest
	man.Version = 1
	man.Model.Arch, man.Model.NLayer, man.Model.NEmbd, man.Model.EmbdHash = arch, nLayer, nEmbd, hash
	man.Layers, man.KeepRatios, man.HeadKeep, man.TailKeepFrac = sched.Layers, sched.KeepRatios, sdtp.HeadKeep, sdtp.TailKeepFrac
	man.Training = map[string]any{"init": "random", "seed": seed}
	if fusion != "" {
		f := predictor.DefaultFusion(len(sched.Layers))
		f.Method = fusion
		man.Fusion = &f // WriteSet validates it
	}
	var mlps []predictor.MLP
	for i := range sched.Layers {
		mlps = append(mlps, predictor.RandomMLP(nEmbd, max(1, nEmbd/4), seed+uint64(i)))
	}
	return onnx.WriteSet(dir, man, mlps)
}
