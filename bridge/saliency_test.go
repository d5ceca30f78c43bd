package bridge

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf"
	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/internal/numeric"
)

// crossEntropy is the mean next-token cross-entropy of the predictions at
// rows from..n-2 of logits [n][nVocab] (float64 log-sum-exp).
func crossEntropy(logits []float32, toks []int32, nVocab, from int) float64 {
	var sum float64
	for i := from; i+1 < len(toks); i++ {
		row := logits[i*nVocab : (i+1)*nVocab]
		sum += numeric.LogSumExp(row) - float64(row[toks[i+1]])
	}
	return sum / float64(len(toks)-1-from)
}

func tinyGrad(t *testing.T, cfg testmodel.Config) (*Context, *Engine, *Grad) {
	c, e := tinyEngine(t, cfg)
	g, err := c.NewGrad(2)
	require.NoError(t, err)
	t.Cleanup(g.Free)
	return c, e, g
}

// The differentiable forward computes the same loss as the engine's
// (llama.cpp-exact) forward; its gradients match central finite
// differences of that loss, along the gradient and along single-token
// directions.
//
// With Q8_0 weights the pass multiplies by their F32 dequantization, the
// engine by the quantized matrices and activations (ggml's Q8_0 dot
// product), so the two losses agree to the activations' rounding only.
func TestGradMatchesFiniteDifferences(t *testing.T) {
	q8 := testmodel.Qwen2()
	q8.WeightType = gguf.GGMLTypeQ8_0
	for name, tc := range map[string]struct {
		cfg     testmodel.Config
		lossEps float64 // relative, against the engine's loss
	}{"llama": {testmodel.Llama(), 1e-4}, "gemma3": {testmodel.Gemma3(), 1e-4}, "qwen2": {testmodel.Qwen2(), 1e-4},
		"qwen3": {testmodel.Qwen3(), 1e-4}, "qwen2-q8_0": {q8, 1e-3}} {
		cfg := tc.cfg
		t.Run(name, func(t *testing.T) {
			c, e, g := tinyGrad(t, cfg)
			rng := rand.New(rand.NewPCG(7, 1))
			n, d := 48, c.Model().NEmbd()
			toks := testmodel.RandomTokens(rng, c.Model().NVocab(), n)
			layers := []int{1, e.NLayer() - 1}

			res, err := g.Run(GradInput{Tokens: toks, Layers: layers, Backward: true})
			require.NoError(t, err)
			out, err := e.Run(RunInput{First: 0, Last: e.NLayer(), Tokens: toks, Positions: seq(0, n), WantLogits: true, AllLogits: true})
			require.NoError(t, err)
			want := crossEntropy(out.Logits, toks, c.Model().NVocab(), 0)
			t.Logf("loss %.7f, engine's %.7f", res.Loss, want)
			assert.InEpsilon(t, want, res.Loss, tc.lossEps, "loss vs the engine's logits")
			tail, err := g.Run(GradInput{Tokens: toks, Layers: layers, LossFrom: n - 8, Backward: true})
			require.NoError(t, err)
			assert.InEpsilon(t, crossEntropy(out.Logits, toks, c.Model().NVocab(), n-8), tail.Loss, tc.lossEps, "loss over the last 7 predictions")
			for j := (n - 1) * d; j < n*d; j++ {
				require.Zero(t, tail.Grad[0][j], "the last token's stream changes no prediction in the loss")
			}
			_, err = g.Run(GradInput{Tokens: toks, Layers: layers, LossFrom: n - 1})
			assert.Error(t, err, "no prediction left in the loss")

			lossAt := func(layer int, u []float32, eps float32) float64 {
				delta := make([][]float32, len(layers))
				for k := range delta {
					delta[k] = make([]float32, n*d)
				}
				for j, v := range u {
					delta[layer][j] = eps * v
				}
				r, err := g.Run(GradInput{Tokens: toks, Layers: layers, Delta: delta})
				require.NoError(t, err)
				return r.Loss
			}
			// Along the gradient the derivative is |g|, large enough for a
			// relative check. Single-token derivatives are tiny next to
			// the F32 loss's rounding, so their error is measured against
			// |g|, the largest derivative any unit direction can have.
			worstGrad, worstToken := 0.0, 0.0
			for k := range layers {
				grad := res.Grad[k]
				norm := 0.0
				for _, v := range grad {
					norm += float64(v) * float64(v)
				}
				norm = math.Sqrt(norm)
				fd := func(u []float32, eps float32) (analytic, numeric float64) {
					for j := range u {
						analytic += float64(u[j]) * float64(grad[j])
					}
					return analytic, (lossAt(k, u, eps) - lossAt(k, u, -eps)) / (2 * float64(eps))
				}
				a, num := fd(unit(grad), 3e-2)
				worstGrad = math.Max(worstGrad, math.Abs(num-a)/math.Abs(num))
				for range 4 { // one token's row, random direction
					u := make([]float32, n*d)
					tok := 4 + rng.IntN(n-5)
					for j := range d {
						u[tok*d+j] = float32(rng.NormFloat64())
					}
					a, num := fd(unit(u), 5e-2)
					worstToken = math.Max(worstToken, math.Abs(num-a)/norm)
					t.Logf("layer %d token %d: analytic %.6e numeric %.6e", layers[k], tok, a, num)
				}
			}
			t.Logf("relative error along the gradient %.1e, single-token error / |g| %.1e", worstGrad, worstToken)
			assert.Less(t, worstGrad, 1e-3)
			assert.Less(t, worstToken, 1e-2)
		})
	}
}

func unit(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) / math.Sqrt(s))
	}
	return out
}
